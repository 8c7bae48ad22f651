"""Durations as people and Prometheus write them, formatted here and nowhere else.

Instants are written in one spelling too (`iso`, UTC to the second, for reasons and headers).
Three spellings of durations, each for its reader: `format_duration` for people (`1h30m`, in messages, headers
and help), `short_duration` for the names of recorded series (one unit, `90m`: the name must stay
the same for a given step across releases) and `promql_duration` for PromQL literals (`5400s`,
exact to the millisecond). Parsing lives with the other option parsers (`retire.config`).
"""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """`86400` -> `1d`, `5400` -> `1h30m`: the short form people write."""
    if seconds <= 0:
        return "0s"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def short_duration(seconds: float) -> str:
    """A duration for a metric name: `1h`, `30m`, `90s` (the largest unit that divides it)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return promql_duration(seconds)


def promql_duration(seconds: float) -> str:
    """Seconds as a PromQL duration literal (`86400s`, `1500ms`)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def iso(ts: float) -> str:
    """A Unix time as `2026-11-24T06:00:00Z`."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

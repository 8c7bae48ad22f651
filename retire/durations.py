"""Durations as people and Prometheus write them, formatted here and nowhere else.

Instants are written in one spelling too (`iso`, UTC to the second, for reasons and headers).
Three spellings of durations, each for its reader: `format_duration` for people (`1h30m`, in messages, headers
and help), `short_duration` for the names of recorded series (one unit, `90m`: the name must stay
the same for a given step across releases) and `promql_duration` for PromQL literals (`5400s`,
exact to the millisecond). `parse_duration` reads Prometheus's units, for options and for what the
server says of itself (scrape intervals, retention).
"""

from __future__ import annotations

import math
import re

from retire.errors import ConfigError, kind_of
from retire.escape import quoted


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


_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
# Longer durations are typos, and past ~292 years the OS's timeouts overflow.
MAX_DURATION = 100 * 31536000.0


def parse_duration(value: object, name: str = "duration") -> float:
    """Seconds from `90`, `"90"`, `"90s"`, `"15m"`, `"1h30m"`, `"1d"` (Prometheus's units)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{name}: expected a duration such as 24h or 900s, got {kind_of(value)}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION_RE.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
                pos = m.end()
            if pos != len(text) or not text:
                raise ConfigError(
                    f"{name}: {quoted(text)} is not a duration; use e.g. 24h, 90m, 1h30m or seconds"
                ) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{name}: must be a non-negative duration such as 24h")
    if seconds > MAX_DURATION:
        raise ConfigError(f"{name}: must be at most 100 years ({format_duration(MAX_DURATION)})")
    return seconds

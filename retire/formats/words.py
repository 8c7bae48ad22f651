"""Sentences shared by every format, so the table, Markdown and mail say the same thing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retire.advisor import Status, fmt_qps, human_bytes, iso
from retire.durations import format_duration

if TYPE_CHECKING:
    from retire.advisor import Report
    from retire.advisor.changes import History


BLOCKS = "▂▃▄▅▆▇█"


def sparkline(points: tuple[float | None, ...] | None) -> str:
    """One character per step, scaled to the row's own peak: ` ` no data, `▁` zero calls, and
    `▂`..`█` for traffic, so idle, fading and bursty versions stand out. Plain text, no images."""
    if not points:
        return ""
    finite = [p for p in points if p is not None and p == p and p not in (float("inf"), float("-inf"))]
    peak = max(finite, default=0.0)
    out = []
    for p in points:
        if p is None or p != p:
            out.append(" ")
        elif p <= 0:
            out.append("▁")
        elif peak <= 0 or p == float("inf"):
            out.append("█")
        else:
            out.append(BLOCKS[min(len(BLOCKS) - 1, int(p / peak * (len(BLOCKS) - 1) + 0.5))])
    return "".join(out)


def window_line(report: Report) -> str:
    h = report.header
    return (
        f"window {iso(h.window_start)} → {iso(h.evaluated_at)} ({format_duration(h.window)}, "
        f"step {format_duration(h.step)}), threshold {fmt_qps(h.threshold)} req/s, source {h.source}"
    )


def summary_line(report: Report) -> str:
    """One line for humans and cron mail: what to do, and why some rows could not be decided."""
    s = report.summary
    parts = [f"{s.safe} safe to offload ({human_bytes(s.safe_bytes)}{_freed_split(report)})"]
    for status in (Status.IN_USE, Status.PROTECTED, Status.UNKNOWN, Status.NOT_ON_DISK, Status.UNLOADED):
        if s.counts.get(status.value):
            parts.append(f"{s.counts[status.value]} {status.value}")
    line = ", ".join(parts)
    if s.unknown:
        why = "; ".join(s.unknown_causes) or "see the reasons of the unknown rows"
        line += f" — unknown because: {why}"
    return line


def _freed_split(report: Report) -> str:
    """What the bytes free, where anyone said what is loaded: memory (loaded versions, their size
    on disk as the estimate) and disk only."""
    s = report.summary
    if not (s.safe_bytes_loaded or s.safe_bytes_disk_only):
        return ""
    parts = [
        f"{human_bytes(s.safe_bytes_loaded)} loaded (memory, estimated by size)",
        f"{human_bytes(s.safe_bytes_disk_only)} disk only",
    ]
    if s.safe_bytes_loaded_unknown:
        parts.append(f"{human_bytes(s.safe_bytes_loaded_unknown)} not known")
    return ": " + ", ".join(parts)


def notes(report: Report) -> list[str]:
    """Header notes: coverage, warnings and infos from the server."""
    h = report.header
    out = [h.coverage, *h.notes]
    out += [f"warning: {w}" for w in h.warnings]
    out += [f"info: {i}" for i in h.infos]
    return out


def since_last(history: History | None) -> list[str]:
    """Plain-text lines for the report, mail and Markdown; none without --since-last."""
    if history is None:
        return []
    if history.problem:
        return [f"since last report: {history.problem}"]
    if history.previous_at is None:
        return ["since last report: no previous report (first run)"]
    if not history.changes:
        return [f"since last report ({history.previous_at}): no changes"]
    out = [f"since last report ({history.previous_at}):"]
    for c in history.changes:
        was = f" (was {c.before})" if c.before else " (new)"
        out.append(f"  {c.kind}: {c.model} {c.version}{was}")
    return out


_PROTECTED_WORDS = {"young": "younger than --min-age", "newest": "among the newest kept", "pinned": "pinned"}


def nothing_safe(report: Report) -> str:
    """Why no version is safe, in counts: each verdict, and for the protected ones each protection,
    so `plan` on a fresh model directory says that everything is younger than --min-age."""
    counts = report.summary.counts
    total = sum(counts.values())
    if not total:
        return "no model versions on disk or in Prometheus"
    parts = []
    for status, n in counts.items():
        if n and status != "safe":
            parts.append(f"{n} {status}")
            if status == "protected":
                by = [
                    f"{k} {_PROTECTED_WORDS.get(p, p)}" for p, k in report.summary.protected_by.items() if k
                ]
                parts[-1] += f" ({', '.join(by)})" if by else ""
    return f"no version is safe to offload; of {total}: " + ", ".join(parts)

"""A report's rows as the cells people read, shared by the table, Markdown and HTML formats."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retire.advisor import fmt_calls, fmt_qps, human_bytes
from retire.escape import printable
from retire.formats.words import sparkline

if TYPE_CHECKING:
    from retire.advisor import Report, Row

COLUMNS = ("MODEL", "VERSION", "STATUS", "LOADED", "TRAFFIC", "BUSIEST QPS", "CALLS", "SIZE", "REASON")
NUMERIC = ("BUSIEST QPS", "CALLS", "SIZE")


def columns(report: Report) -> tuple[str, ...]:
    """The TRAFFIC sparkline column only when the hourly series were fetched; LOADED only when
    some version's loaded state is known (asked of the server, or from its version policy)."""
    rows = list(report.rows())
    drop = set()
    if not any(r.hourly is not None for r in rows):
        drop.add("TRAFFIC")
    if not any(r.loaded_from for r in rows):
        drop.add("LOADED")
    return tuple(c for c in COLUMNS if c not in drop)


def loaded_cell(r: Row) -> str:
    """`yes`/`no` as the server said; `yes*`/`no*` inferred from the version policy; blank unknown."""
    if r.loaded is None:
        return ""
    return ("yes" if r.loaded else "no") + ("*" if r.loaded_from == "policy" else "")


def cells(r: Row, with_traffic: bool = True, with_loaded: bool = False) -> tuple[str, ...]:
    """A row's cells as text; names and reasons come from labels and directories, so every cell
    goes through `printable` (no escape sequence or line break reaches the reader)."""
    traffic = (sparkline(r.hourly),) if with_traffic else ()
    loaded = (loaded_cell(r),) if with_loaded else ()
    return tuple(
        printable(c)
        for c in (
            r.model,
            r.version,
            r.status.value,
            *loaded,
            *traffic,
            "" if r.max_hourly_qps is None else fmt_qps(r.max_hourly_qps),
            "" if r.calls is None else fmt_calls(r.calls),
            human_bytes(r.size_bytes),
            r.reason,
        )
    )

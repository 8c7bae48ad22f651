"""A report's rows as the cells people read, shared by the table, Markdown and HTML formats."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from retire.advisor import fmt_calls, fmt_qps, human_bytes
from retire.escape import printable
from retire.formats.words import sparkline

if TYPE_CHECKING:
    from collections.abc import Iterator

    from retire.advisor import Report, Row

SHOWN_VERSIONS = 4  # a merged row names this many versions, then counts the rest

COLUMNS = ("MODEL", "VERSION", "STATUS", "LOADED", "TRAFFIC", "BUSIEST QPS", "CALLS", "SIZE", "REASON")
NUMERIC = ("BUSIEST QPS", "CALLS", "SIZE")


def people_rows(report: Report) -> Iterator[Row]:
    """The rows people read. With evidence per model (stock TF Serving), a model's versions that
    share their verdict, reason and loaded state are one row (VERSION lists them, SIZE adds them
    up): a called model is one line, not one identical line per version. Otherwise every row."""
    rows = report.rows()
    if not report.header.policy.per_model:
        yield from rows
        return
    run: list[Row] = []
    for r in rows:
        if run and _same(r) != _same(run[0]):
            yield _merged(run)
            run = []
        run.append(r)
    if run:
        yield _merged(run)


def _same(r: Row) -> tuple[object, ...]:
    return (r.model, r.status, r.reason, r.loaded, r.loaded_from, r.loaded_on)


def _merged(run: list[Row]) -> Row:
    if len(run) == 1:
        return run[0]
    names = [r.version for r in run]
    shown = ", ".join(names[:SHOWN_VERSIONS]) + (
        f" +{len(names) - SHOWN_VERSIONS}" if len(names) > SHOWN_VERSIONS else ""
    )
    sizes = [r.size_bytes for r in run]
    size = None if any(b is None for b in sizes) else sum(b for b in sizes if b is not None)
    return replace(run[0], version=shown, path=None, size_bytes=size)


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
    """`yes`/`no` as the server said; `yes*`/`no*` inferred from the version policy; blank unknown.
    Where --server replicas disagree, on how many it is loaded: `1/2` (`?` where one did not say)."""
    states = [state for _, state in r.loaded_on or ()]
    if len(set(states)) > 1:
        return f"{sum(s is True for s in states)}/{len(states)}" + ("?" if None in states else "")
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

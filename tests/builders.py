"""Reports built by hand, for the tests of what reads a Report (formats, history, plan, mail).

No `advise()`, no server, no clock: a test names the rows it needs and the few header fields it
cares about; everything else is a plain, plausible default. The table has Row's columns, as
`advise()` builds it (status as its text value), and the summary is counted from the rows the way
the advisor counts it, so a renderer sees exactly the shape it sees in production.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from retire.advisor import Header, Policy, Report, Row, Status, Summary

END = 1_700_000_000.0  # 2023-11-14T22:13:20Z: any fixed instant will do
HOUR = 3600.0
COLUMNS = tuple(f.name for f in fields(Row))
# The dtypes advise() gives the columns that are not objects (tests/test_builders.py checks).
DTYPES = {
    "model": "str",
    "version": "str",
    "on_disk": bool,
    "series": "int64",
    "status": "str",
    "reason": "str",
}
PROMQL = (
    "max_over_time(sum by (model_name, model_version) (rate(:tensorflow:serving:request_count[1h]))[30d:1h])"
)
REASONS = {
    Status.SAFE: "busiest hour 0 req/s ≤ threshold 0; counter flat all window (1 series, 0 calls)",
    Status.IN_USE: "busiest hour 2.5 req/s > threshold 0; 9,000 calls in window",
    Status.PROTECTED: "latest version (--keep-latest 1)",
    Status.UNKNOWN: "would be safe (no series in window) but data gap: no samples for 3h",
    Status.NOT_ON_DISK: "called in window, but no directory on disk",
    Status.UNLOADED: "unloaded by retire at 2026-01-01T00:00:00Z from http://triton:8000; no call "
    "counted since, which proves nothing (calls to an unloaded version fail uncounted); load it back "
    "with `retire unload --undo --only alpha:1 --archive-dir /archive --server http://triton:8000 "
    "--preset triton`",
}


def row(
    model: str = "alpha", version: str = "1", status: Status = Status.SAFE, **given: Any
) -> dict[str, Any]:
    """One row as a dict of Row's fields: on disk under /models unless NOT_ON_DISK, 1 KiB, one
    series, no sparkline, the loaded state unknown; `given` overrides any field."""
    on_disk = status is not Status.NOT_ON_DISK
    busy = status is Status.IN_USE
    out: dict[str, Any] = {
        "model": model,
        "version": version,
        "path": f"/models/{model}/{version}" if on_disk else None,
        "on_disk": on_disk,
        "size_bytes": 1024 if on_disk else None,
        "max_hourly_qps": 2.5 if busy else 0.0,
        "calls": 9000.0 if busy else 0.0,
        "series": 1,
        "status": status,
        "reason": REASONS[status],
        "hourly": None,
        "loaded": None,
        "loaded_from": None,
        "loaded_on": None,
    }
    unknown = set(given) - set(COLUMNS)
    assert not unknown, f"not a Row field: {unknown}"
    return out | given


def table(rows: list[dict[str, Any]]) -> Any:
    """The report's DataFrame: Row's columns in Row's order, with the advisor's dtypes (text
    status), objects elsewhere (None kept, NaN kept)."""
    import pandas as pd

    columns: dict[str, Any] = {}
    for name in COLUMNS:
        values = [Status(r[name]).value if name == "status" else r[name] for r in rows]
        dtype: Any = DTYPES.get(name, object)
        columns[name] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(columns)


def summary(
    rows: list[dict[str, Any]], unknown_causes: tuple[str, ...] = (), advice: tuple[str, ...] = ()
) -> Summary:
    """Counted as the advisor counts: every status, bytes of the safe rows by model and by
    loaded state (None sizes count 0)."""
    counts = {s.value: sum(1 for r in rows if Status(r["status"]) is s) for s in Status}
    safe = [r for r in rows if Status(r["status"]) is Status.SAFE]
    by_model: dict[str, int] = {}
    for r in safe:
        by_model[r["model"]] = by_model.get(r["model"], 0) + int(r["size_bytes"] or 0)

    def freed(loaded: bool | None) -> int:
        return sum(int(r["size_bytes"] or 0) for r in safe if r["loaded"] is loaded)

    return Summary(
        counts=counts,
        safe_bytes=sum(by_model.values()),
        safe_bytes_by_model=by_model,
        unknown_causes=unknown_causes,
        safe_bytes_loaded=freed(True),
        safe_bytes_disk_only=freed(False),
        safe_bytes_loaded_unknown=freed(None),
        advice=advice,
    )


def report(
    *rows: dict[str, Any],
    evaluated_at: float = END,
    window: float = 30 * 24 * HOUR,
    step: float = HOUR,
    threshold: float = 0.0,
    source: str = "http://127.0.0.1:9090",
    queries: dict[str, str] | None = None,
    warnings: tuple[str, ...] = (),
    infos: tuple[str, ...] = (),
    coverage: str = 'coverage: up{job="tfs"} checked, no holes longer than 1h',
    notes: tuple[str, ...] = (),
    policy: Policy | None = None,
    model_roots: tuple[str, ...] = ("/models",),
    unknown_causes: tuple[str, ...] = (),
    advice: tuple[str, ...] = (),
    ignored: tuple[tuple[str, str], ...] = (),
) -> Report:
    """A Report of `rows` (from `row`), in the order given."""
    header = Header(
        generated_at=evaluated_at,
        evaluated_at=evaluated_at,
        window_start=evaluated_at - window,
        source=source,
        queries={"max_hourly_qps": PROMQL} if queries is None else queries,
        window=window,
        step=step,
        threshold=threshold,
        warnings=warnings,
        infos=infos,
        coverage=coverage,
        notes=notes,
        policy=policy or Policy(),
        model_roots=model_roots,
    )
    listed = list(rows)
    return Report(header, table(listed), summary(listed, unknown_causes, advice), ignored)


def every_status(**given: Any) -> list[dict[str, Any]]:
    """One row of each Status, versions 1.. in Status order, all of model `alpha` unless given."""
    return [row(version=str(n), status=s, **given) for n, s in enumerate(Status, start=1)]

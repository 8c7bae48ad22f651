"""A report's rows as plain records, shared by the formats for scripts (JSON, CSV): numbers of
the right kind, names exactly as they came."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from retire import __version__
from retire.durations import iso

if TYPE_CHECKING:
    from retire.advisor import Report

REPORT_COLUMNS = (
    "model",
    "version",
    "path",
    "on_disk",
    "size_bytes",
    "max_hourly_qps",
    "calls",
    "series",
    "status",
    "reason",
    "loaded",
    "loaded_from",
)
# JSON rows also carry hourly_qps (a list per step) when the sparkline query was run.
SAFE_COLUMNS = ("model", "version", "path", "size_bytes", "max_hourly_qps", "calls", "reason", "loaded")


def _json_number(x: float | None) -> float | str | None:
    """JSON has no NaN/Infinity: spell them as Prometheus does, as strings."""
    if x is None:
        return None
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return x


def rate(x: float | None) -> float | str | None:
    """A rate rounded to 6 significant digits: 0.325, not the 0.32499999999999996 float
    arithmetic leaves behind (no reader needs more, and diffs between reports stay quiet)."""
    value = _json_number(x)
    return float(f"{value:.6g}") if isinstance(value, float) else value


def count(x: float | None) -> int | float | str | None:
    """A count (calls, seconds) as an integer when it is whole: 25884, not 25884.0."""
    value = _json_number(x)
    if isinstance(value, float):
        return int(value) if value.is_integer() else rate(value)
    return value


def header_dict(report: Report) -> dict[str, Any]:
    h = report.header
    return {
        "tool": f"retire {__version__}",
        "generated_at": iso(h.generated_at),
        "evaluated_at": iso(h.evaluated_at),
        "window_start": iso(h.window_start),
        "prometheus": h.source,
        "queries": h.queries,
        "promql": h.queries.get("max_hourly_qps"),
        "window_seconds": count(h.window),
        "step_seconds": count(h.step),
        "threshold": rate(h.threshold),
        "warnings": list(h.warnings),
        "infos": list(h.infos),
        "coverage": h.coverage,
        "notes": list(h.notes),
        "policy": {
            "keep_latest": h.policy.keep_latest,
            "min_age_seconds": count(h.policy.min_age),
            "age_source": h.policy.age_source,
            "pins": [f"{m}:{v}" for m, v in h.policy.pins],
        },
        "model_roots": list(h.model_roots),
    }


def records(report: Report) -> list[dict[str, Any]]:
    """Report rows as JSON-ready dicts, straight from the table's columns (no per-row objects:
    this runs for every version of the fleet)."""
    t = report.table
    columns = {c: t[c].tolist() for c in REPORT_COLUMNS}
    columns["max_hourly_qps"] = [rate(x) for x in columns["max_hourly_qps"]]
    columns["calls"] = [count(x) for x in columns["calls"]]
    columns["on_disk"] = [bool(x) for x in columns["on_disk"]]
    columns["size_bytes"] = [None if x is None else int(x) for x in columns["size_bytes"]]
    columns["series"] = [int(x) for x in columns["series"]]
    columns["loaded"] = [None if x is None else bool(x) for x in columns["loaded"]]
    rows = [dict(zip(REPORT_COLUMNS, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    # `max_qps`: the busiest step's rate, whatever --step is. `max_hourly_qps` (the same value) is
    # kept for scripts written when the step was always an hour.
    for row in rows:
        row["max_qps"] = row["max_hourly_qps"]
    # With several --server replicas, each one's word: {server URL without credentials: loaded}.
    for row, replicas in zip(rows, t["loaded_on"].tolist(), strict=True):
        if replicas is not None:
            row["loaded_on"] = {url: state for url, state in replicas}
    hourly = t["hourly"].tolist()
    for row, points in zip(rows, hourly, strict=True):
        if points is not None:
            row["hourly_qps"] = [rate(p) for p in points]
    return rows


def safe_records(report: Report) -> list[dict[str, Any]]:
    return [{c: r[c] for c in SAFE_COLUMNS} for r in records(report) if r["status"] == "safe"]

"""Machine-readable formats: JSON and CSV reports, and the safe-list formats scripts consume."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import TYPE_CHECKING, Any

from retire import __version__
from retire.advisor import iso
from retire.escape import has_unsafe, printable

if TYPE_CHECKING:
    from retire.advisor import Report
    from retire.advisor.changes import History

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


def _csv_cell(value: Any) -> Any:
    """CSV spells booleans as JSON does (true/false), not Python's True/False."""
    if isinstance(value, bool):
        return "true" if value else "false"
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


def _records(report: Report) -> list[dict[str, Any]]:
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
    hourly = t["hourly"].tolist()
    for row, points in zip(rows, hourly, strict=True):
        if points is not None:
            row["hourly_qps"] = [rate(p) for p in points]
    return rows


def report_json(report: Report, history: History | None = None) -> str:
    s = report.summary
    doc = {
        "header": header_dict(report),
        "summary": {
            "counts": s.counts,
            "safe_bytes": s.safe_bytes,
            "safe_bytes_by_model": s.safe_bytes_by_model,
            # What retiring the safe versions frees: loaded ones free memory (size on disk as the
            # estimate), the others disk only; unknown where nobody said what is loaded.
            "safe_bytes_loaded": s.safe_bytes_loaded,
            "safe_bytes_disk_only": s.safe_bytes_disk_only,
            "safe_bytes_loaded_unknown": s.safe_bytes_loaded_unknown,
            "advice": list(s.advice),
            "unknown_causes": list(s.unknown_causes),
        },
        "rows": _records(report),
        "ignored": [{"path": p, "reason": why} for p, why in report.ignored],
    }
    if history is not None:
        doc["since_last"] = {
            "previous_evaluated_at": history.previous_at,
            "problem": history.problem,
            "changes": [
                {"model": c.model, "version": c.version, "before": c.before, "after": c.after, "kind": c.kind}
                for c in history.changes
            ],
        }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """OWASP's advice for CSV injection: a text cell that a spreadsheet would read as a formula
    gets a leading `'` and is quoted. Numbers stay numbers (a negative number is not text here)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        cells = {k: csv_cell(v) for k, v in row.items()}
        defused = any(cells.get(k) is not v and isinstance(v, str) for k, v in row.items())
        if defused or any(isinstance(v, str) and "\r" in v for v in row.values()):
            # A defused formula is also quoted, as OWASP says (csv would leave it bare); so is a
            # bare CR, which csv quotes only when it is part of the line terminator it writes.
            buf.write(",".join(_quoted(cells.get(k, "")) for k in columns) + "\n")
        else:
            writer.writerow(cells)
    return buf.getvalue()


def _quoted(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    return "" if value is None else str(value)


def report_csv(report: Report) -> str:
    return _csv([{c: _csv_cell(r[c]) for c in REPORT_COLUMNS} for r in _records(report)], REPORT_COLUMNS)


def _tsv_unfit(*fields: str) -> bool:
    """A tab or line break would split a line or a field; a backslash is undone by `read`
    without -r; other control characters mislead a terminal. TSV cannot carry such a name."""
    return any("\\" in f or has_unsafe(f) for f in fields)


def safe_tsv(report: Report) -> str:
    """`model<TAB>version<TAB>path`, one safe version a line, nothing else: for `while read`.

    A version whose model, version or path cannot be written as one TSV line is left out (never
    escaped: a script would act on the escaped, wrong path); `tsv_refused` says which, for stderr.
    """
    return "".join(
        f"{r.model}\t{r.version}\t{r.path}\n"
        for r in report.safe_rows()
        if not _tsv_unfit(r.model, r.version, str(r.path))
    )


def tsv_refused(report: Report) -> list[str]:
    """Why safe versions were left out of the TSV safe list, one sentence each."""
    return [
        f"not listed: {printable(r.model)} {printable(r.version)} ({printable(str(r.path))}) is safe, but "
        "its name holds a tab, line break, backslash or control character, which TSV cannot carry; "
        "use --format json"
        for r in report.safe_rows()
        if _tsv_unfit(r.model, r.version, str(r.path))
    ]


def _safe_records(report: Report) -> list[dict[str, Any]]:
    return [{c: r[c] for c in SAFE_COLUMNS} for r in _records(report) if r["status"] == "safe"]


def safe_json(report: Report) -> str:
    return json.dumps(_safe_records(report), indent=2, ensure_ascii=False) + "\n"


def safe_csv(report: Report) -> str:
    return _csv(_safe_records(report), SAFE_COLUMNS)

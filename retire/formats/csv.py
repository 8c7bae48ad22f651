"""CSV, for spreadsheets and scripts: one row per version (the whole report, or the safe versions
only), defused against formula injection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retire.formats import REPORT, SAFE_LIST, SCRIPTS, Format, MailPart, View

if TYPE_CHECKING:
    from retire.advisor import Report

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """CSV spells booleans as JSON does (true/false), not Python's True/False."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def csv_cell(value: object) -> object:
    """OWASP's advice for CSV injection: a text cell that a spreadsheet would read as a formula
    gets a leading `'` and is quoted. Numbers stay numbers (a negative number is not text here)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    import csv
    import io

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
    from retire.formats.records import REPORT_COLUMNS, records

    return _csv([{c: _csv_cell(r[c]) for c in REPORT_COLUMNS} for r in records(report)], REPORT_COLUMNS)


def safe_csv(report: Report) -> str:
    from retire.formats.records import SAFE_COLUMNS, safe_records

    return _csv(safe_records(report), SAFE_COLUMNS)


def _report(report: Report, view: View) -> str:
    return report_csv(report)  # one row per version: what changed has no row of its own


FORMAT = Format(
    name="csv",
    audience=SCRIPTS,
    commands=(REPORT, SAFE_LIST),
    mail=MailPart("text/csv", "retire-report.csv"),
    report=_report,
    safe_list=safe_csv,
)

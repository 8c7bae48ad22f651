"""JSON, for scripts: the whole report (header, summary, every row, what changed since the last
report), or the safe versions only. Strictly valid JSON: NaN and infinities as strings."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from retire.formats import PLAN, REPORT, SAFE_LIST, SCRIPTS, Format, MailPart, View

if TYPE_CHECKING:
    from retire.advisor import Report
    from retire.advisor.changes import History
    from retire.advisor.plan import Plan


def report_json(report: Report, history: History | None = None) -> str:
    from retire.formats.records import header_dict, records

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
        "rows": records(report),
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


def safe_json(report: Report) -> str:
    from retire.formats.records import safe_records

    return json.dumps(safe_records(report), indent=2, ensure_ascii=False) + "\n"


def _report(report: Report, view: View) -> str:
    return report_json(report, view.history)


def _plan(plan: Plan, model_config: bool, advice: tuple[str, ...], why: str = "") -> str:
    """The plan as `offload --plan` reads it back (the plan model's own JSON)."""
    return plan.to_json()


FORMAT = Format(
    name="json",
    audience=SCRIPTS,
    changes=True,
    commands=(REPORT, SAFE_LIST, PLAN),
    mail=MailPart("application/json", "retire-report.json"),
    report=_report,
    safe_list=safe_json,
    plan=_plan,
)

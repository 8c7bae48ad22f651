"""What changed since the previous report (`--since-last`): a pure comparison of two reports'
verdicts. Reading and keeping the previous report is `retire.delivery.history`'s; the words are
`retire.formats.words.since_last`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retire.advisor.report import Report


@dataclass(frozen=True)
class Change:
    model: str
    version: str
    before: str | None  # status in the previous report, None if it was not there
    after: str | None  # status now, None if it is gone
    kind: str  # "became safe", "used again", "disappeared"


@dataclass(frozen=True)
class History:
    previous_at: str | None  # evaluated_at of the previous report
    changes: tuple[Change, ...]
    problem: str | None = None  # why the previous report could not be read


def compare(previous: dict[tuple[str, str], str] | None, report: Report) -> tuple[Change, ...]:
    if previous is None:
        return ()
    now = {(r.model, r.version): r.status.value for r in report.rows()}
    changes = []
    for key, status in now.items():
        before = previous.get(key)
        if status == "safe" and before != "safe":
            changes.append(Change(*key, before, status, "became safe"))
        elif status == "in-use" and before is not None and before != "in-use":
            changes.append(Change(*key, before, status, "used again"))
    for key, before in previous.items():
        if key not in now:
            changes.append(Change(*key, before, None, "disappeared"))
    return tuple(sorted(changes, key=lambda c: (c.kind, c.model, c.version)))

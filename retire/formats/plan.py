"""How `retire plan` (and `retire offload` before it acts) prints a plan: for people, or as the
JSON that `offload --plan` reads back (the plan model's own, advisor/plan.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, assert_never

if TYPE_CHECKING:
    from retire.advisor.plan import Plan


class PlanFormat(StrEnum):
    """How `retire plan` prints a plan: for people, or for `offload --plan`."""

    TEXT = "text"
    JSON = "json"


def render_plan(plan: Plan, fmt: PlanFormat, model_config: bool, advice: tuple[str, ...] = ()) -> str:
    if fmt is PlanFormat.JSON:
        return plan.to_json()
    if fmt is PlanFormat.TEXT:
        return plan_text(plan, model_config, advice)
    assert_never(fmt)  # mypy fails here when a PlanFormat member has no branch above


def plan_text(plan: Plan, model_config: bool, advice: tuple[str, ...] = ()) -> str:
    """The plan for people, directory names with control characters escaped. The model config
    note only where there is a model config file; the server-config changes that would free
    loaded idle versions (retire never edits a config)."""
    from retire.advisor import human_bytes
    from retire.escape import printable

    tail = ["to free memory, change the server config (retire does not edit it):"]
    tail += [f"  {a}" for a in advice]
    if not plan.moves:
        lines = ["plan: nothing to move (no version is safe to offload)", *(tail if advice else [])]
        return "\n".join(map(printable, lines)) + "\n"
    lines = [f"plan: move {len(plan.moves)} version(s) to {plan.archive}"]
    lines += [f"  mv {m.src} -> {m.dst}  ({human_bytes(m.size_bytes)})" for m in plan.moves]
    if model_config:
        lines.append(
            "config: no change (a version listed under a `specific` policy or a version label is "
            "protected, so it is never moved)"
        )
    if advice:
        lines += tail
    return "\n".join(map(printable, lines)) + "\n"

"""Text for people: how `retire plan` (and `retire offload` before it acts) prints a plan."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retire.formats import PEOPLE, PLAN, Format

if TYPE_CHECKING:
    from retire.advisor.plan import Plan


def plan_text(plan: Plan, model_config: bool, advice: tuple[str, ...] = (), why: str = "") -> str:
    """The plan for people, directory names with control characters escaped. The model config
    note only where there is a model config file; the server-config changes that would free
    loaded idle versions (retire never edits a config). `why`: why nothing moves (words.unmoved)."""
    from retire.advisor import human_bytes
    from retire.escape import printable

    tail = ["to free memory, change the server config (retire does not edit it):"]
    tail += [f"  {a}" for a in advice]
    if not plan.moves:
        lines = [
            f"plan: nothing to move ({why or 'no version is safe to offload'})",
            *(tail if advice else []),
        ]
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


FORMAT = Format("text", PEOPLE, commands=(PLAN,), plan=plan_text)

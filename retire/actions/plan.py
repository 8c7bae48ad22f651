"""Making a plan from a report, and checking one against a fresh scan before it is carried out.

Only versions whose verdict is `safe` are ever in a plan. A plan file is untrusted (files can be
edited): each of its moves must be exactly what the fresh scan finds (same source, destination
and archive), or the whole plan is refused; a move no longer safe is skipped and said.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from retire.actions.paths import check_archive, destination, real_archive, source_of
from retire.advisor.plan import Move, Plan
from retire.errors import OffloadError
from retire.servers import canonical_version

if TYPE_CHECKING:
    from retire.advisor import Report


def make_plan(report: Report, archive: Path, only: tuple[tuple[str, str], ...] = ()) -> Plan:
    """Moves for the report's safe versions (or exactly `only`, each of which must be safe)."""
    rows = {(r.model, r.version): r for r in report.rows()}
    if only:
        chosen = []
        for key in only:
            # As written first (TorchServe's `01` and `1` are two versions), then by TF Serving's
            # number rule (`007` names `7`), as --pin reads it.
            row = rows.get(key) or rows.get((key[0], canonical_version(key[1])))
            if row is None or row.status.value != "safe":
                status = row.status.value if row else "not found"
                raise OffloadError(f"--only {key[0]}:{key[1]} is {status}, not safe: nothing was moved")
            chosen.append(row)
    else:
        if report.summary.unknown:
            raise OffloadError(
                f"{report.summary.unknown} version(s) are unknown (evidence incomplete); refusing to act. "
                "Fix the evidence, or name exactly the versions to move with --only MODEL:VERSION"
            )
        chosen = report.safe_rows()
    moves = []
    for r in chosen:
        _, src = source_of(r, report.header.model_roots)
        dst = destination(archive, r.model, src)
        moves.append(Move(r.model, r.version, src, dst, int(r.size_bytes or 0)))
    return Plan(str(real_archive(archive)), tuple(moves), report.header.evaluated_at)


@dataclass(frozen=True)
class Checked:
    move: Move
    root: str


def checked_moves(
    plan: Plan, fresh: Report, archive: Path, where: str, on_skip: Callable[[str], None]
) -> list[Checked]:
    """The plan's moves that are still safe in the fresh report, each exactly as the fresh scan
    finds it. A move naming another source or destination than the scan's refuses the whole plan:
    plans are files, and files can be edited."""
    if plan.archive != str(real_archive(archive)):
        raise OffloadError(
            f"{where} was made for the archive {plan.archive!r}, not --archive-dir {real_archive(archive)}; "
            "nothing was moved (make a new plan with this --archive-dir)"
        )
    now = {(r.model, r.version): r for r in fresh.rows()}
    seen: set[tuple[str, str]] = set()
    out = []
    for m in plan.moves:
        if (m.model, m.version) in seen:
            raise OffloadError(f"{where} names {m.model} {m.version} twice; nothing was moved")
        seen.add((m.model, m.version))
        r = now.get((m.model, m.version))
        if r is None or r.status.value != "safe":
            why = f"now {r.status.value} ({r.reason})" if r else "no longer on disk"
            on_skip(f"skipped {m.model} {m.version}: {why}")
            continue
        root, src = source_of(r, fresh.header.model_roots)
        dst = destination(archive, r.model, src)
        if (m.src, m.dst) != (src, dst):
            raise OffloadError(
                f"{where} moves {m.model} {m.version} from {m.src!r} to {m.dst!r}, but this scan finds it "
                f"at {src} (to go to {dst}); refusing the plan, nothing was moved (make a new one)"
            )
        out.append(Checked(Move(m.model, m.version, src, dst, int(r.size_bytes or 0)), root))
    return out


def read_plan(path: Path) -> Plan:
    """A plan file written by `retire plan --format json` (its shape only; see `checked_moves`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise OffloadError(f"cannot read --plan {path}: {e}") from None
    return Plan.from_json(text, str(path))


def plan_for(
    report: Report,
    archive: Path,
    plan_file: Path | None,
    only: tuple[tuple[str, str], ...],
    on_skip: Callable[[str], None],
) -> Plan:
    """What `offload` would move: the --plan file's moves still safe in `report` (a plan file is
    untrusted: each move must be what the scan finds), or a new plan from `report`."""
    check_archive(archive, report.header.model_roots)
    if plan_file is None:
        return make_plan(report, archive, only)
    plan = read_plan(plan_file)
    checked_moves(plan, report, archive, str(plan_file), on_skip)
    return plan

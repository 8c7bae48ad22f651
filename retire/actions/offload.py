"""Carrying a plan out: offload (after a re-check at the present, under the locks), resume, restore.

Every move is refused before the first one starts rather than half-way; each is journaled first
(journal.py) and made one crash-safe step at a time (step.py). Once the run's `--deadline` has
passed no further move starts (one under way is finished: a move is never cut midway).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retire.actions.journal import Journal
from retire.actions.locks import locked, locked_roots
from retire.actions.paths import MODELS, PARTIAL, check_archive, entry_kind, opened_dir
from retire.actions.plan import Checked, checked_moves
from retire.actions.step import ends, run_step
from retire.deadline import NO_DEADLINE, Deadline
from retire.errors import OffloadError

if TYPE_CHECKING:
    from retire.advisor import Report
    from retire.advisor.plan import Move, Plan


def recheck(
    plan: Plan,
    fresh: Callable[[], Report],
    archive: Path,
    roots: Iterable[str],
    where: str,
    say: Callable[[str], None],
    deadline: Deadline = NO_DEADLINE,
) -> list[Move]:
    """Carry out `plan`, re-checked against `fresh()`: a report made under the locks, right before
    acting. Safe in the fresh report is the whole test: any doubt (a gap, a warning) has already
    turned every would-be-safe version unknown there, and a version called since the plan was made
    is skipped and reported. Journals into `archive`, the archive that was locked and checked.
    `fresh()` must end by `deadline` (the run's); no move starts after it."""
    roots = tuple(roots)
    with locked(archive), locked_roots(roots):
        report = fresh()
        unlocked = {os.path.realpath(r) for r in report.header.model_roots} - {
            os.path.realpath(r) for r in roots
        }
        if unlocked:  # a library caller passes the roots and the report separately
            raise OffloadError(
                f"the fresh report's model root(s) {', '.join(sorted(unlocked))} were not locked; "
                "nothing was moved"
            )
        check_archive(archive, report.header.model_roots)
        return apply(archive, checked_moves(plan, report, archive, where, say), say, deadline)


def _check_writable(path: Path) -> None:
    if not os.access(path, os.W_OK | os.X_OK):
        raise OffloadError(
            f"{path} is not writable by this user; nothing was moved (run as the owner of the model tree)"
        )


def archive_dir_for(archive: Path, model: str) -> None:
    """Make `<archive>/models/<model>/`, one level at a time, never through a symlink. Each
    descriptor is closed exactly once, by the stack that opened it: closing one twice closes
    whatever another thread opened under the reused number since (a Prometheus connection)."""
    with contextlib.ExitStack() as stack:
        fd = stack.enter_context(opened_dir(archive))
        for part in (MODELS, model):
            try:
                os.mkdir(part, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as e:
                raise OffloadError(f"cannot create {archive / part}: {e.strerror}") from None
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                where = archive / MODELS / model if part == model else archive / MODELS
                raise OffloadError(
                    f"{where} is not a directory (a symlink?); retire never follows a link inside the "
                    "archive: remove it. Nothing was moved"
                ) from None
            stack.callback(os.close, nxt)
            fd = nxt


def preflight_offload(archive: Path, c: Checked) -> None:
    src, dst = Path(c.move.src), Path(c.move.dst)
    _check_writable(src.parent)
    with opened_dir(src.parent) as fd:
        if entry_kind(fd, src.name) not in ("dir", "file"):
            raise OffloadError(f"{src} is not a directory or file any more; nothing was moved")
    for inside in (archive / MODELS, archive / MODELS / c.move.model):
        if os.path.islink(inside) or (os.path.lexists(inside) and not inside.is_dir()):
            raise OffloadError(
                f"{inside} is a symlink or not a directory; retire never follows a link inside the "
                "archive: remove it. Nothing was moved"
            )
    for path in (dst, dst.with_name(dst.name + PARTIAL)):
        if os.path.lexists(path):
            raise OffloadError(f"{path} already exists in the archive; nothing was moved")


def apply(
    archive: Path, moves: list[Checked], on_step: Callable[[str], None], deadline: Deadline = NO_DEADLINE
) -> list[Move]:
    """Carry out `moves` (already checked against a fresh scan), journal first. No move starts
    once `deadline` has passed; the one under way is finished (the journal's guarantees hold for
    whole steps), and what was done is said."""
    journal = Journal(archive)
    if journal.unfinished():
        raise OffloadError(
            f"{archive} has unfinished steps from an interrupted run: run `retire offload --resume` first"
        )
    for c in moves:  # refuse before the first move, not half-way
        preflight_offload(journal.archive, c)
    done: list[Move] = []
    step = journal.next_step()
    for c in moves:
        m = c.move
        if deadline.passed:
            raise OffloadError(
                f"the run's --deadline ({deadline.shown}) passed before {m.model} {m.version} was moved; "
                f"{len(done)} version(s) were moved, the other {len(moves) - len(done)} were not started "
                "(nothing is unfinished): run the command again, or raise --deadline"
            )
        archive_dir_for(journal.archive, m.model)
        record = {"step": step, "phase": "begin", "op": "offload", **asdict(m), "root": c.root}
        try:
            journal.append(record)
            run_step(journal, record)
        except OffloadError as e:
            if done:
                raise OffloadError(f"{e.message} ({len(done)} version(s) were moved before it)") from None
            raise
        on_step(f"moved {m.src} -> {m.dst}")
        done.append(m)
        step += 1
    return done


def _roots(records: Iterable[dict[str, Any]]) -> list[str]:
    return [r["root"] for r in records if isinstance(r.get("root"), str)]


def resume(archive: Path, on_step: Callable[[str], None]) -> int:
    """Complete every step an interrupted run began, under the archive's lock; returns how many."""
    with locked(archive):
        journal = Journal(archive)
        pending = journal.unfinished()
        with locked_roots(_roots(pending)):
            for r in pending:
                run_step(journal, r, verified=r["phase"] == "verified")
                frm, to = ends(r)
                on_step(f"completed {r['op']} of {r['model']} {r['version']}: {frm} -> {to}")
        return len(pending)


def preflight_restore(r: dict[str, Any]) -> None:
    src, dst = Path(r["src"]), Path(r["dst"])
    what = f"{r['model']} {r['version']}"
    try:
        with opened_dir(src.parent) as fd:
            there = entry_kind(fd, src.name)
    except OffloadError as e:
        raise OffloadError(f"cannot restore {what}: {e.message} (nothing was restored)") from None
    if there is not None:
        kind = "a symlink" if there == "link" else "something"
        raise OffloadError(f"{src} exists again ({kind}); refusing to overwrite it (nothing was restored)")
    _check_writable(src.parent)
    with opened_dir(dst.parent) as fd:
        if entry_kind(fd, dst.name) not in ("dir", "file"):
            raise OffloadError(
                f"the archived copy {dst} of {what} is missing or not a directory or file; "
                "nothing was restored"
            )


def archived(journal: Journal, model: str | None, version: str | None) -> list[dict[str, Any]]:
    """The `done` offloads not restored since (all, or one model/version)."""
    archived: dict[tuple[str, str], dict[str, Any]] = {}
    for r in journal.records():
        if r["phase"] != "done":
            continue
        key = (r["model"], r["version"])
        if r["op"] == "offload":
            archived[key] = r
        else:
            archived.pop(key, None)
    return [
        r
        for key, r in archived.items()
        if (model is None or key[0] == model) and (version is None or key[1] == version)
    ]


def restore(archive: Path, model: str | None, version: str | None, on_step: Callable[[str], None]) -> int:
    """Move archived versions back where they were served from (all, or one model/version),
    under the archive's lock."""
    with locked(archive):
        journal = Journal(archive)
        if journal.unfinished():
            raise OffloadError(
                f"{archive} has unfinished steps from an interrupted run: run `retire offload --resume` first"
            )
        chosen = archived(journal, model, version)
        if not chosen:
            raise OffloadError(f"nothing archived in {archive} matches; see {journal.path}")
        with locked_roots(_roots(chosen)):
            for r in chosen:  # refuse before the first move, not half-way
                preflight_restore(r)
            step = journal.next_step()
            for r in chosen:
                keys = ("model", "version", "src", "dst", "size_bytes", "root")
                record: dict[str, Any] = {"step": step, "phase": "begin", "op": "restore"}
                record.update({k: r[k] for k in keys if k in r})
                journal.append(record)
                run_step(journal, record)
                on_step(f"restored {r['dst']} -> {r['src']}")
                step += 1
        return len(chosen)

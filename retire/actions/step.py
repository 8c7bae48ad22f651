"""One step (an offload or a restore of one version), crash-safely.

Nothing is ever deleted: a step is an atomic rename on one filesystem; across filesystems it is
a copy to `<dst>.partial`, verified, renamed into place, journaled as verified, and only then is
the source removed. A failure (no space, I/O error) undoes the step's partial copy and journals
it as failed; a crash at any point leaves a state that running the step again completes.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from retire.actions import copying
from retire.actions.journal import Journal
from retire.actions.paths import PARTIAL, entry_kind, opened_dir, os_problem
from retire.errors import OffloadError


def ends(record: dict[str, Any]) -> tuple[Path, Path]:
    """(from, to) of a step: offload moves src to dst, restore dst back to src."""
    src, dst = Path(record["src"]), Path(record["dst"])
    return (src, dst) if record["op"] == "offload" else (dst, src)


def run_step(journal: Journal, record: dict[str, Any], verified: bool = False) -> None:
    """Carry out, or finish, one step whose `begin` is journaled. Idempotent: a resumed step
    calls it again whatever the crash left. On return the step is journaled done; when it
    cannot be done, the state is put back as before the step, journaled failed, and raised."""
    frm, to = ends(record)
    partial = to.with_name(to.name + PARTIAL)
    base = {k: v for k, v in record.items() if k not in ("time", "phase", "reason")}
    what = f"{record['op']} of {record['model']} {record['version']}"

    def fail(message: str) -> NoReturn:
        journal.append({**base, "phase": "failed", "reason": message})
        raise OffloadError(f"{what} failed and was undone: {message}")

    def done() -> None:
        journal.append({**base, "phase": "done"})

    with opened_dir(frm.parent) as src_fd, opened_dir(to.parent) as dst_fd:
        s, d = entry_kind(src_fd, frm.name), entry_kind(dst_fd, to.name)
        p = entry_kind(dst_fd, partial.name)
        if verified:  # the copy at `to` was verified; what is left of the source goes
            if d not in ("dir", "file"):
                raise OffloadError(
                    f"{what}: the journal says {to} was copied and verified, but it is gone; "
                    f"{frm} {'still exists' if s else 'is gone too'}: resolve by hand"
                )
            _remove_source(frm, to, what, journal.resume)
            return done()
        if s in ("link", "other") or d in ("link", "other"):
            odd = frm if s in ("link", "other") else to
            fail(f"{odd} is a symlink or special file, not what retire moved; it was left as it is")
        if s is None:
            if d is not None and p is None:
                return done()  # renamed before a crash
            if d is None and p is None:
                fail(f"{frm} is gone and was never moved (someone removed it); nothing to do")
            raise OffloadError(f"{what}: {frm} is gone but {partial} is there; resolve by hand")
        if d is not None:  # a crash between renaming the verified copy and journaling it
            if copying.same(frm, to):
                journal.append({**base, "phase": "verified"})
                _remove_source(frm, to, what, journal.resume)
                return done()
            fail(f"{to} already exists and is not a copy of {frm}; both were left as they are")
        try:
            os.rename(frm.name, to.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)  # one filesystem: atomic
        except OSError as e:
            if e.errno != errno.EXDEV:
                fail(f"cannot move {frm} to {to}: {os_problem(e)}")
        else:
            _sync(dst_fd)
            return done()
        _copy_verified(frm, to, partial, p is not None, dst_fd, fail, journal.resume)
        journal.append({**base, "phase": "verified"})
        _remove_source(frm, to, what, journal.resume)
        return done()


def _sync(dir_fd: int) -> None:
    """Make a rename durable; the rename is done either way, so a failure here changes nothing."""
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)


def _copy_verified(
    frm: Path,
    to: Path,
    partial: Path,
    reuse: bool,
    dst_fd: int,
    fail: Callable[[str], NoReturn],
    resume: str,
) -> None:
    """Across filesystems: copy to `partial` (or reuse a crash's partial copy when it verifies),
    verify, rename into place. On any failure the partial copy is removed and the step fails."""
    try:
        if not (reuse and copying.same(frm, partial)):
            copying.remove(partial)
            copying.copy(frm, partial)
        problem = None if copying.same(frm, partial) else f"the copy {partial} does not match {frm}"
        if problem is None:
            os.rename(partial.name, to.name, src_dir_fd=dst_fd, dst_dir_fd=dst_fd)
    except OSError as e:
        problem = f"{os_problem(e)} while copying {frm} to {partial}"
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            problem += f" (free space on the filesystem of {to.parent}, then run the command again)"
    if problem is None:
        _sync(dst_fd)
        return
    try:
        copying.remove(partial)
    except OSError as e:
        raise OffloadError(
            f"{problem}, and the partial copy could not be removed ({os_problem(e)}); "
            f"fix that, then run `{resume}`"
        ) from None
    fail(f"{problem}; the partial copy was removed, {frm} is untouched")


def _remove_source(frm: Path, to: Path, what: str, resume: str) -> None:
    try:
        copying.remove(frm)
    except OSError as e:
        raise OffloadError(
            f"{what}: the copy {to} is verified, but removing {frm} failed ({os_problem(e)}); "
            f"fix that, then run `{resume}` to finish"
        ) from None

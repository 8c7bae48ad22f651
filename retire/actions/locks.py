"""One run at a time per archive (`<archive>/.lock`) and per model root (a lock on the root
directory itself). Taken without waiting: a held lock is a refusal, not a wait, so no run can
be held up by another past its `--deadline`."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from retire.actions.paths import os_problem, real_archive
from retire.errors import OffloadError


@contextlib.contextmanager
def locked(archive: Path) -> Iterator[None]:
    """One run at a time per archive."""
    try:
        archive.mkdir(parents=True, exist_ok=True)
        fd = os.open(real_archive(archive) / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        f = os.fdopen(fd, "r+")
    except OSError as e:
        raise OffloadError(f"cannot use --archive-dir {archive}: {os_problem(e)}") from None
    with f:
        _take(
            f.fileno(),
            f"another retire offload or restore is running on {archive} (it holds {archive / '.lock'}); "
            "wait for it to finish",
        )
        yield


@contextlib.contextmanager
def locked_roots(roots: Iterable[str]) -> Iterator[None]:
    """One offload at a time per model root, whatever its archive: a lock on the root directory
    itself (nothing is written into the served tree)."""
    with contextlib.ExitStack() as stack:
        for root in sorted({os.path.realpath(r) for r in roots}):
            try:
                fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue  # a root that is gone has nothing to move; the checks per move say so
            stack.callback(os.close, fd)
            _take(
                fd,
                f"another retire run is moving versions in the model root {root} (it holds a lock on "
                "that directory), perhaps to another archive; wait for it to finish",
            )
        yield


def _take(fd: int, refusal: str) -> None:
    """The lock on `fd`, without waiting: a lock held by another run is a refusal."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OffloadError(refusal) from None

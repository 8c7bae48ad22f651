"""Writing reports: all or nothing. A failed run never leaves a half-written file behind.

Only a regular file (or a new path) is replaced through a temporary file and a rename. Anything
else that can be opened for writing (a terminal, a pipe, a FIFO, `/dev/null`, `/dev/stdout`) is
written in place: renaming over a device would replace it with a regular file, which, run as root,
breaks every other program that uses it. A symlink to a regular file is followed, so the link
stays a link. Directories and sockets are refused.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from pathlib import Path

from retire.errors import OutputError

# Temporary files being written, so an interrupted run (Ctrl-C, cli) can remove them on its way out.
_in_progress: set[str] = set()
_lock = threading.Lock()


def remove_partial() -> None:
    """Delete every temporary file still being written (called when the run is interrupted)."""
    with _lock:
        for tmp in list(_in_progress):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _in_progress.clear()


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it (regular files and new
    paths); write in place to devices and pipes."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except (OSError, ValueError) as e:
        raise OutputError(f"cannot write {path}: {getattr(e, 'strerror', None) or e}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot write {path}: it is a directory; name a file")
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISSOCK(st.st_mode):
            raise OutputError(f"cannot write {path}: it is a socket; name a file")
        _write_in_place(path, text)
        return
    if st is not None and os.path.islink(path):
        path = Path(os.path.realpath(path))  # keep the link; replace the file it points to
    _replace(path, text)


def _write_in_place(path: Path, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}") from None


def _replace(path: Path, text: str) -> None:
    directory = path.parent if str(path.parent) else Path()
    try:
        # A state directory that does not exist yet (`~/.local/state` under a fresh HOME, as cron
        # runs it): made, private to the user, instead of a failed first run.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"cannot write {path}: cannot create {directory} ({e.strerror}); create it, or name another file"
        ) from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise OutputError(
            f"cannot write {path}: {e.strerror}; check that {directory} exists and is writable"
        ) from None
    with _lock:
        _in_progress.add(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"cannot write {path}: {e.strerror}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        with _lock:
            _in_progress.discard(tmp)

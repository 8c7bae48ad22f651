"""Paths: what may be moved and where to, and reaching a directory without following a symlink.

A source is reached from its (resolved) model root with not a single symlink below it; a
destination is exactly `<archive>/models/<model>/<name of the source>`; names are plain path
components. Every later step opens directories from `/` one component at a time, so what was
checked is what is used.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from retire.errors import OffloadError
from retire.sources.disk.inventory import unsafe_component

if TYPE_CHECKING:
    from retire.advisor import Row

MODELS = "models"  # <archive>/models/<model>/<version>
PARTIAL = ".partial"  # a copy across filesystems, until it is verified


def real_archive(archive: Path) -> Path:
    """The archive as an absolute path without symlinks: the user names it, retire follows
    nothing below it."""
    return Path(os.path.realpath(archive))


def _inside(child: Path, parent: Path) -> bool:
    try:
        Path(os.path.realpath(child)).relative_to(os.path.realpath(parent))
        return True
    except ValueError:
        return False


def check_archive(archive: Path, roots: Iterable[str]) -> None:
    for root in roots:
        if _inside(archive, Path(root)) or _inside(Path(root), archive):
            raise OffloadError(
                f"--archive-dir {archive} overlaps the model root {root}; TF Serving would keep serving "
                "what is archived there: choose a directory outside every model root"
            )


def _name_ok(what: str, name: str) -> None:
    why = unsafe_component(name)
    if why is not None:
        raise OffloadError(f"{what} {name!r} is not a safe directory name ({why}); refusing to move it")


def normal_absolute(path: str) -> bool:
    """Absolute and already normalised (no `..`, `.`, doubled or trailing slashes)."""
    return os.path.isabs(path) and os.path.normpath(path) == path and not path.startswith("//")


def source_of(row: Row, roots: Iterable[str]) -> tuple[str, str]:
    """(resolved model root, absolute source) for a scanned version, or a refusal.

    The root is resolved (it may be reached through a symlink: the user named it); below it not a
    single component may be a symlink, and the source must be a directory or a `.mar` file.
    """
    _name_ok("model name", row.model)
    _name_ok("version", row.version)
    if row.path is None:
        raise OffloadError(f"{row.model} {row.version} is not on disk; nothing to move")
    path = os.path.abspath(row.path)
    for root in roots:
        base = os.path.abspath(root)
        rel = os.path.relpath(path, base)
        if rel == "." or rel.startswith(".."):
            continue
        real_root = os.path.realpath(base)
        src = os.path.join(real_root, rel)
        _check_source(src, real_root, row)
        return real_root, src
    raise OffloadError(f"{row.path} is not inside any model root; refusing to move it")


def _check_source(src: str, root: str, row: Row) -> None:
    where = f"{row.model} {row.version} ({src})"
    current = root
    for part in os.path.relpath(src, root).split(os.sep):
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except OSError as e:
            raise OffloadError(f"cannot read {current}: {e.strerror}; {where} was not moved") from None
        if stat.S_ISLNK(st.st_mode):
            raise OffloadError(
                f"{current} is a symlink; retire never moves a version through a symlink, so {where} "
                "was not moved (offload the directory it points to under its own name)"
            )
    if not (stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and src.endswith(".mar"))):
        raise OffloadError(f"{where} is neither a directory nor a .mar model archive; refusing to move it")


def destination(archive: Path, model: str, src: str) -> str:
    """Where a version goes: `<archive>/models/<model>/<name of the source>`, nothing else."""
    _name_ok("model name", model)
    name = os.path.basename(src)
    _name_ok("version directory", name)
    return str(real_archive(archive) / MODELS / model / name)


def os_problem(e: OSError) -> str:
    """An OSError in words for a one-line error: what, and on which path."""
    where = f" ({e.filename})" if e.filename else ""
    return f"{e.strerror or e}{where}"


# --------------------------------------------------------------------------------------------
# Walking without following symlinks


def _open_dir(path: Path) -> int:
    """`path` opened from `/` one component at a time, following no symlink: what is checked is
    what is used."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    current = Path("/")
    try:
        for part in path.parts[1:]:
            current = current / part
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(current):
                    raise OffloadError(
                        f"{current} is a symlink; retire never follows one while moving versions "
                        f"(under {path}): replace it with the directory itself, or remove it"
                    ) from None
                raise OffloadError(f"cannot open {current}: {e.strerror}") from None
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def opened_dir(path: Path) -> Iterator[int]:
    """A descriptor of the directory `path`, reached without following a symlink; closed after."""
    fd = _open_dir(path)
    try:
        yield fd
    finally:
        os.close(fd)


def entry_kind(dir_fd: int, name: str) -> str | None:
    """What `name` is in the directory, without following it: dir, file, link, other or None."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "file" if stat.S_ISREG(st.st_mode) else "other"

"""Copying across filesystems, verifying, and removing: symlinks as symlinks, never followed.

All three walk iteratively (a tree of any depth). A copy is fsynced before it counts; it is
verified against the source entry by entry (type, mode, size, SHA-256, link target) before the
source may go.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from pathlib import Path


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entry(path: str, st: os.stat_result) -> tuple[object, ...]:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", mode)
    if stat.S_ISREG(st.st_mode):
        return ("file", mode, st.st_size, _digest(path))
    return ("other", st.st_mode)


def manifest(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below root (root itself as '.'): type, mode, size, SHA-256, link target.
    Iterative: a tree of any depth."""
    out = {".": _entry(str(root), os.lstat(root))}
    stack = [(str(root), "")] if out["."][0] == "dir" else []
    while stack:
        current, rel = stack.pop()
        with os.scandir(current) as entries:
            for e in entries:
                name = f"{rel}/{e.name}" if rel else e.name
                out[name] = _entry(e.path, e.stat(follow_symlinks=False))
                if out[name][0] == "dir":
                    stack.append((e.path, name))
    return out


def same(a: Path, b: Path) -> bool:
    """`b` is a verified copy of `a` (False where either cannot be read)."""
    try:
        return manifest(a) == manifest(b)
    except OSError:
        return False


def _own(src: str, dst: str) -> None:
    """Run as root, the copy keeps the source's owner and group: a folder moved across
    filesystems and back (`retire unload` of MLServer, offload and restore) must stay readable by
    the server that runs as its owner. Others cannot give files away; they own their copies.
    Before the modes are copied: a change of owner clears setuid bits."""
    if os.geteuid() == 0:
        st = os.lstat(src)
        os.lchown(dst, st.st_uid, st.st_gid)


def _copy_file(src: str, dst: str) -> None:
    with open(src, "rb") as fin, open(dst, "xb") as fout:  # x: never through an existing name
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    _own(src, dst)
    shutil.copystat(src, dst, follow_symlinks=False)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy(src: Path, dst: Path) -> None:
    """Copy a file or a tree, symlinks as symlinks, iteratively (any depth); data fsynced."""
    if not stat.S_ISDIR(os.lstat(src).st_mode):
        _copy_file(str(src), str(dst))
        return
    os.mkdir(dst, 0o700)
    dirs = [(str(src), str(dst))]
    stack = [dirs[0]]
    while stack:
        s, d = stack.pop()
        with os.scandir(s) as entries:
            for e in entries:
                target = os.path.join(d, e.name)
                if e.is_symlink():
                    os.symlink(os.readlink(e.path), target)
                    _own(e.path, target)
                elif e.is_dir(follow_symlinks=False):
                    os.mkdir(target, 0o700)
                    dirs.append((e.path, target))
                    stack.append((e.path, target))
                elif e.is_file(follow_symlinks=False):
                    _copy_file(e.path, target)
                else:
                    raise OSError(errno.EINVAL, "not a file, directory or symlink", e.path)
    for s, d in reversed(dirs):  # children first, so no later write changes a parent's times
        _own(s, d)
        shutil.copystat(s, d, follow_symlinks=False)
        _fsync_dir(d)


def remove(path: Path) -> None:
    """Remove a file, symlink or tree, iteratively (any depth); never follows a symlink."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    order: list[str] = []
    stack = [str(path)]
    while stack:
        current = stack.pop()
        order.append(current)
        with os.scandir(current) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    os.unlink(e.path)
    for d in reversed(order):  # a directory is listed before everything below it
        os.rmdir(d)

"""What is on disk: models, their versions, sizes and times, in TF Serving's layout.

`<root>/<model>/<version>/` where a version directory's name is what TF Serving's
`safe_strto64` accepts (surrounding spaces, digits, int64 range), limited to non-negative values:
`00123` is version 123. When two names give the same number (`7` and `007`), TF Serving serves the
one that sorts last, and so do we; the other is listed as ignored. Entries that are not versions
are kept as data with a reason (shown with --verbose), never silently dropped.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from retire.errors import InventoryError

INT64_MAX = 2**63 - 1
_SPACES = " \t\n\v\f\r"


@dataclass(frozen=True)
class DiskVersion:
    model: str
    version: str  # canonical decimal text, the join key with Prometheus's label
    number: int
    path: Path
    size_bytes: int
    mtime: float
    ctime: float


@dataclass(frozen=True)
class Ignored:
    path: Path
    reason: str


@dataclass(frozen=True)
class Inventory:
    roots: tuple[Path, ...]
    versions: tuple[DiskVersion, ...]
    ignored: tuple[Ignored, ...] = ()

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted({v.model for v in self.versions}))


def parse_version(name: str) -> int | None:
    """The version number TF Serving would read from a directory name, or None."""
    text = name.strip(_SPACES)
    if not text.isascii() or not text.isdigit():
        return None  # also refuses "-1": negative versions are not served
    number = int(text)
    return number if number <= INT64_MAX else None


def canonical_version(text: str) -> str:
    """The join key for a version label or name: `00123` -> `123`; non-numbers stay as written."""
    number = parse_version(text)
    return str(number) if number is not None else text


def tree_size(path: Path) -> int:
    """Apparent size in bytes of the regular files below `path` (like `du -sb`, symlinks not followed)."""
    total = 0
    stack = [str(path)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
                    elif stat.S_ISREG(st.st_mode):
                        total += st.st_size
        except OSError as e:
            raise InventoryError(
                f"cannot read {e.filename or current}: {e.strerror}; retire needs read access to "
                "every version directory to size it"
            ) from None
    return total


def _list_dir(path: Path, what: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return sorted(entries, key=lambda e: e.name)
    except FileNotFoundError:
        raise InventoryError(f"{what} {path} does not exist; check --model-dir / --model-base-path") from None
    except NotADirectoryError:
        raise InventoryError(f"{what} {path} is not a directory") from None
    except OSError as e:
        raise InventoryError(f"cannot read {what} {path}: {e.strerror}") from None


def scan_model(base_path: Path, model: str) -> tuple[list[DiskVersion], list[Ignored]]:
    """The versions of one model under its base path."""
    versions: dict[int, DiskVersion] = {}
    ignored: list[Ignored] = []
    for entry in _list_dir(base_path, f"base path of model {model!r}"):
        path = Path(entry.path)
        number = parse_version(entry.name)
        if number is None:
            ignored.append(Ignored(path, "not a version directory (name is not a non-negative integer)"))
            continue
        try:
            st = path.stat()  # follows a symlinked version directory, as TF Serving does
        except OSError as e:
            ignored.append(Ignored(path, f"cannot stat: {e.strerror}"))
            continue
        if not stat.S_ISDIR(st.st_mode):
            ignored.append(Ignored(path, "not a directory"))
            continue
        if number in versions:  # names are sorted, so this one wins, as in TF Serving
            loser = versions[number].path
            ignored.append(Ignored(loser, f"duplicate of version {number}; {entry.name}/ is served"))
        versions[number] = DiskVersion(
            model=model,
            version=str(number),
            number=number,
            path=path,
            size_bytes=tree_size(path),
            mtime=st.st_mtime,
            ctime=st.st_ctime,
        )
    return list(versions.values()), ignored


def scan_model_dir(root: Path) -> Inventory:
    """Every model under a root: each subdirectory is a model's base path."""
    versions: list[DiskVersion] = []
    ignored: list[Ignored] = []
    for entry in _list_dir(root, "model directory"):
        path = Path(entry.path)
        if entry.name.startswith("."):
            ignored.append(Ignored(path, "hidden entry"))
        elif not entry.is_dir():
            ignored.append(Ignored(path, "not a directory"))
        else:
            found, skipped = scan_model(path, entry.name)
            versions += found
            ignored += skipped
    return Inventory((root,), tuple(versions), tuple(ignored))


def scan_base_path(base_path: Path, model: str) -> Inventory:
    found, skipped = scan_model(base_path, model)
    return Inventory((base_path,), tuple(found), tuple(skipped))

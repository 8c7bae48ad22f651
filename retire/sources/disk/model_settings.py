"""An MLServer model repository: every `model-settings.json` under the root, read as MLServer reads it.

MLServer (1.7, `mlserver/repository/`) globs `<root>/**/model-settings.json` recursively: hidden
directories are not entered, symlinked directories are followed (out of the root too), and each
file found is one model version, whose files are the folder holding it. A file it cannot read or
validate is logged and skipped. So is it here, kept as ignored data with the reason:

- not JSON, or not a JSON object;
- no `implementation`, or one that is not a string (pydantic's `str`: a number is refused);
- a `name` that is not a string; an empty or missing one is the folder's name;
- `parameters` not an object, or `parameters.version` not a string (`7` is refused, `"7"` is
  version 7); a missing, null or empty version makes the model unversioned.

Other fields are not validated (MLServer would skip a file whose `max_batch_size` is `"x"`; retire
lists it, a version nobody can call).

Join keys. MLServer labels a call with the version its request named, exactly as written (`007`
is not `7`), and a request that names none with `version="None"`, whichever version served it:
the model's unversioned entry while that is loaded, else its newest version (integers compared as
numbers, other strings as text). So a model with one unversioned entry is joined under `None`
(all its calls are its own), while an unversioned entry beside versioned ones of the same name is
listed as ignored and never moved: its calls may have reached the others, and, kept out of the
inventory, they make every would-be-safe version of the model `unknown` (the unattributed rule).
A name and version declared twice are served from whichever folder MLServer loads last (it
lists directories unsorted): the first by path is listed and protected, the others ignored.

Protected, with the reason: a version reached through a symlink, and one whose folder holds
another model's folder (or is the root itself): moving it would take the others with it. Also a
version whose files another entry uses, since MLServer would break or serve it under another name
once it moved: a folder a `parameters.uri` points into, a folder whose model-settings.json another
folder links to, and a folder a symlink loop leads back to (MLServer's glob follows loops, about 40
levels deep, and serves what it finds there under the link's name).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cmp_to_key
from pathlib import Path

from retire.errors import kind_of
from retire.sources.columns import Columns
from retire.sources.disk.inventory import (
    CODED,
    DiskVersion,
    Ignored,
    Inventory,
    _list_dir,
    one_row_per_version,
    tree_size,
)

SETTINGS = "model-settings.json"
UNVERSIONED = "None"  # the version label of a call that names no version: str(None)


@dataclass(frozen=True)
class Declared:
    """One model-settings.json MLServer would load: the model and version it declares."""

    name: str
    version: str  # the join key: as written, or UNVERSIONED
    folder: Path  # the folder holding the file: the version's files
    via_link: Path | None  # the symlinked directory it was reached through, if any
    uri: str | None = None  # parameters.uri: where its files are read from, if not its folder


@dataclass(frozen=True)
class Claim:
    """Files that something other than their own entry uses: a real path, who, and how."""

    path: str  # a real path (symlinks resolved)
    why: str
    owner: str | None = None  # the real folder of the entry making the claim (its own files are its own)


def scan_model_settings(root: Path) -> Inventory:
    """The versions an MLServer serving `root` loads, and what it would not load, with why."""
    _list_dir(root, "model repository")  # a missing or unreadable root: one line, as for the others
    files, ignored, claims = _find(root)
    declared: list[Declared] = []
    for path, via in files:
        found = _read(path, root, via)
        if isinstance(found, str):
            ignored.append(Ignored(path, found))
        else:
            declared.append(found)
    claims += [c for d in declared if (c := _uri_claim(d)) is not None]
    kept, pins = _one_per_version(declared, ignored)
    for d in kept:
        why = _never_moved(d, root, declared) or _claimed(d, claims)
        if why is not None:
            pins.setdefault((d.name, d.version), why)  # the first reason found stays
    versions = []
    for model in sorted({d.name for d in kept}):
        mine = sorted((d for d in kept if d.name == model), key=lambda d: d.version)
        for rank, d in enumerate(sorted(mine, key=cmp_to_key(_is_newer))):
            try:
                st = d.folder.stat()
            except OSError as e:
                ignored.append(Ignored(d.folder, f"cannot stat: {e.strerror}"))
                continue
            size = tree_size(d.folder)
            versions.append(
                DiskVersion(model, d.version, rank, str(d.folder), size, st.st_mtime, st.st_ctime)
            )
    inv = Inventory((root,), Columns.of(DiskVersion, versions, CODED), tuple(ignored), {}, pins)
    return one_row_per_version(inv)


def _find(root: Path) -> tuple[list[tuple[Path, Path | None]], list[Ignored], list[Claim]]:
    """Every model-settings.json MLServer's recursive glob finds (sorted by path), with the
    symlinked directory it was reached through; hidden directories and symlink loops, ignored;
    and the folders that links (a loop, a linked settings file) make used by other names."""
    found: list[tuple[Path, Path | None]] = []
    ignored: list[Ignored] = []
    claims: list[Claim] = []
    # (directory, symlinked directory on the way, real paths of the directories above it)
    stack: list[tuple[Path, Path | None, frozenset[str]]] = [
        (root, None, frozenset({os.path.realpath(root)}))
    ]
    while stack:
        folder, via, above = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:  # MLServer's glob skips what it cannot list, silently
            ignored.append(Ignored(folder, f"cannot list: {e.strerror}; MLServer does not look inside"))
            continue
        subdirs = []
        for entry in entries:
            path = Path(entry.path)
            if entry.name == SETTINGS:
                found.append((path, via))
                if entry.is_symlink():
                    target = os.path.realpath(path)
                    claims.append(Claim(os.path.dirname(target), f"its model-settings.json is also "
                        f"the one of {path.parent} (a symlink to it): that model reads it",
                        os.path.realpath(path.parent)))  # fmt: skip
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks, as MLServer's glob does
            except OSError:
                continue
            if not is_dir:
                continue
            if entry.name.startswith("."):
                if next(path.rglob(SETTINGS), None) is not None:
                    ignored.append(Ignored(path, "hidden directory: MLServer does not look inside"))
                continue
            real = os.path.realpath(path)
            if real in above:
                ignored.append(Ignored(path, f"symlink loop (-> {real}): not followed"))
                claims.append(Claim(real, f"MLServer also reaches it through the symlink loop {path} "
                    "and serves it under that name"))  # fmt: skip
                continue
            subdirs.append((path, via or (path if entry.is_symlink() else None), above | {real}))
        stack.extend(reversed(subdirs))
    found.sort(key=lambda f: str(f[0]))
    return found, ignored, claims


def declared_by(folder: Path) -> tuple[str, str] | None:
    """(model, version) that `folder`'s model-settings.json declares, or None where MLServer
    would not load it or it is a symlink (`retire unload` checks an archived folder before it
    goes back into the repository)."""
    path = folder / SETTINGS
    if os.path.islink(path):
        return None
    found = _read(path, folder, None)
    return None if isinstance(found, str) else (found.name, found.version)


def _read(path: Path, root: Path, via: Path | None) -> Declared | str:
    """What the file declares, or why MLServer would skip it."""
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO waits for a writer, /dev/zero never ends
            return "not a regular file: retire does not read it (MLServer would hang or fail on it)"
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        return "not a file: MLServer skips it"
    except (OSError, UnicodeDecodeError) as e:
        return f"cannot read: {getattr(e, 'strerror', None) or type(e).__name__}; MLServer skips it"
    try:
        data = json.loads(text)
    except ValueError as e:
        return f"not valid JSON ({e.args[0].split(':')[0]}): MLServer skips it"
    if not isinstance(data, dict):
        return f"{kind_of(data, json=True)}, not a JSON object: MLServer skips it"
    if "implementation" not in data:
        return "no implementation: MLServer skips it"
    if not isinstance(data["implementation"], str):
        return (
            f"implementation is {kind_of(data['implementation'], json=True)}, not a string: MLServer skips it"
        )
    name = data.get("name", "")
    if not isinstance(name, str):
        return f"name is {kind_of(name, json=True)}, not a string: MLServer skips it"
    parameters = data.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        return f"parameters is {kind_of(parameters, json=True)}, not an object: MLServer skips it"
    version = (parameters or {}).get("version")
    if version is not None and not isinstance(version, str):
        return f"parameters.version is {kind_of(version, json=True)}, not a string: MLServer skips it"
    uri = (parameters or {}).get("uri")
    folder = path.parent
    return Declared(
        name or folder.name, version or UNVERSIONED, folder, via, uri if isinstance(uri, str) else None
    )


def _one_per_version(
    declared: list[Declared], ignored: list[Ignored]
) -> tuple[list[Declared], dict[tuple[str, str], str]]:
    """Each (model, version) once; an unversioned entry only where it is its model's only one."""
    pins: dict[tuple[str, str], str] = {}
    by_key: dict[tuple[str, str], list[Declared]] = {}
    for d in declared:
        by_key.setdefault((d.name, d.version), []).append(d)
    versioned = {name for name, version in by_key if version != UNVERSIONED}
    kept = []
    for (name, version), same in by_key.items():
        if version == UNVERSIONED and name in versioned:
            for d in same:
                ignored.append(Ignored(d.folder, f"model {name!r} without a version beside versioned ones: "
                    "calls that name no version reach it (or, while it is not loaded, the newest version), "
                    "so they are doubt for every version; never moved"))  # fmt: skip
            continue
        same.sort(key=lambda d: (d.via_link is not None, str(d.folder)))  # a direct path first
        first, others = same[0], same[1:]
        kept.append(first)
        for d in others:
            ignored.append(Ignored(d.folder, f"declares model {name!r} version {version!r} again "
                f"(also in {first.folder}); listed once, never moved"))  # fmt: skip
        if others:
            where = ", ".join(str(d.folder) for d in others)
            pins[(name, version)] = (
                f"declared more than once (also in {where}): MLServer serves whichever it loads last"
            )
    return kept, pins


def _never_moved(d: Declared, root: Path, declared: list[Declared]) -> str | None:
    if d.via_link is not None:
        target = os.path.realpath(d.via_link)
        return f"reached through a symlink ({d.via_link} -> {target}); retire never moves through one"
    if d.folder == root:
        return "its model-settings.json is at the repository root: moving it would move the repository"
    inside = sorted(
        str(o.folder) for o in declared if o.folder != d.folder and o.folder.is_relative_to(d.folder)
    )
    if inside:
        return f"its folder holds another model's folder ({inside[0]}): moving it would move that one too"
    return None


def _uri_claim(d: Declared) -> Claim | None:
    """The files a parameters.uri reads (relative to the model's folder, as MLServer resolves
    it; a URI with a scheme is not on this disk)."""
    if not d.uri or "://" in d.uri:
        return None
    target = os.path.realpath(d.folder / d.uri)
    return Claim(target, f"model {d.name!r} ({d.folder}) loads its files from it (parameters.uri "
        f"{d.uri!r})", os.path.realpath(d.folder))  # fmt: skip


def _claimed(d: Declared, claims: list[Claim]) -> str | None:
    """Why another entry, a link or a loop uses this version's files, if one does."""
    real = os.path.realpath(d.folder)
    for c in claims:
        if c.owner == real:
            continue  # its own files
        if c.path == real or Path(c.path).is_relative_to(real) or Path(real).is_relative_to(c.path):
            return c.why
    return None


def _is_newer(a: Declared, b: Declared) -> int:
    """MLServer's order of versions (registry._is_newer): the unversioned first, then as
    integers where both are, else as text; the newest is what a call naming no version gets."""
    if a.version == UNVERSIONED:
        return 1
    if b.version == UNVERSIONED:
        return -1
    try:
        return int(a.version) - int(b.version)
    except ValueError:
        return (a.version > b.version) - (a.version < b.version)

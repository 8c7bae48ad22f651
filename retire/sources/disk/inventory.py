"""What is on disk: models, their versions, sizes and times, and what the servers' config files
say must stay loaded.

Every scan applies one server's rules (`retire.servers`): which directory names it reads as
versions, which config file holds a model's version policy, and whether models are directory
trees or a TorchServe model store. So `--model-dir`, `--model-base-path` and `--model-config`
list the same versions for the same server.

Layouts:
- TF Serving and Triton: `<root>/<model>/<version>/`. TF Serving reads `00123/` as version 123 and,
  when two names give one number (`7` and `007`), serves the one that sorts last (so do we; the
  other is listed as ignored). Triton reads only canonical names (`3/`, never `03/`); each model's
  `config.pbtxt` `version_policy` becomes protection.
- TorchServe: a model store of `.mar` archives; each archive's `MAR-INF/MANIFEST.json` names its
  model and version.
- A TF Serving `--model_config_file`: each config's name and base path, with `specific` and
  `version_labels` versions pinned and `latest { num_versions: N }` as keep-latest N.

Entries that are not versions are kept as data with a reason (shown with --verbose), never
silently dropped.
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from retire.errors import InventoryError
from retire.sources.columns import Columns
from retire.sources.disk.server_configs import ModelEntry, VersionPolicy


class Layout(Protocol):
    """What a scan needs of the server whose rules it applies (a `retire.servers.Server`). A
    protocol, so the disk source does not import the servers above it (tests/test_layers.py)."""

    @property
    def preset(self) -> str: ...
    @property
    def version_of(self) -> Callable[[str], int | None]: ...
    @property
    def not_a_version(self) -> str: ...
    @property
    def store(self) -> Callable[[Path], Inventory] | None: ...
    @property
    def policy_file(self) -> str | None: ...
    @property
    def read_policy(self) -> Callable[[Path], VersionPolicy] | None: ...
    @property
    def read_model_config(self) -> Callable[[Path], list[ModelEntry]] | None: ...


@dataclass(frozen=True)
class DiskVersion:
    model: str
    version: str  # canonical decimal text (or TorchServe's version string): the join key
    number: int  # orders versions: the number itself, or the rank in natural order (TorchServe)
    path: str  # text, not Path: reports and joins use it as text, for a million versions
    size_bytes: int
    mtime: float
    ctime: float


# Models and versions repeat: they travel as categorical codes (the join numbers them by code).
CODED = ("model", "version")


@dataclass(frozen=True)
class Ignored:
    path: Path
    reason: str


@dataclass(frozen=True)
class Inventory:
    roots: tuple[Path, ...]
    # `Columns` from every scan (one_row_per_version), so a million versions join as arrays; any
    # sequence of records is accepted (hand-built inventories).
    versions: Sequence[DiskVersion]
    ignored: tuple[Ignored, ...] = ()
    # What server configs say: per-model keep-latest, and pinned (model, version) -> why.
    keep_latest: dict[str, int] = field(default_factory=dict)
    pins: dict[tuple[str, str], str] = field(default_factory=dict)
    # The version policy each model is served with, where a server config says it (model ->
    # (policy, file)): which versions are loaded, so what retiring one frees (memory or disk).
    policies: dict[str, tuple[VersionPolicy, str]] = field(default_factory=dict)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted({v.model for v in self.versions}))

    def __add__(self, other: Inventory) -> Inventory:
        clash = {v.model for v in self.versions} & {v.model for v in other.versions}
        if clash:
            name = sorted(clash)[0]
            raise InventoryError(
                f"model {name!r} is found under more than one model root; give each model once"
            )
        return Inventory(
            self.roots + other.roots,
            Columns.of(DiskVersion, [*self.versions, *other.versions], CODED),
            self.ignored + other.ignored,
            {**self.keep_latest, **other.keep_latest},
            {**self.pins, **other.pins},
            {**self.policies, **other.policies},
        )

    def policies_unprotected(self) -> Inventory:
        """The same, without the protection the server configs' version policies give (their
        `specific` lists and `latest N`): for `retire unload` through the config file, which
        changes exactly those policies, so they are what it acts on, not a reason to keep a
        version. Which versions the policies load stays known (`policies`); version labels,
        --pin and --keep-latest still protect."""
        policy_pins = {
            (model, str(v)): _specific_pin(where)
            for model, (policy, where) in self.policies.items()
            if policy.kind == "specific"
            for v in policy.versions
        }
        pins = {k: why for k, why in self.pins.items() if policy_pins.get(k) != why}
        keep = {m: n for m, n in self.keep_latest.items() if m not in self.policies}
        return Inventory(self.roots, self.versions, self.ignored, keep, pins, self.policies)


def unsafe_component(name: str) -> str | None:
    """Why `name` cannot be one directory name (under the archive, say), or None when it can.
    Model names come from labels, config files and archive manifests: untrusted text."""
    if name in ("", ".", ".."):
        return "it is empty, '.' or '..'"
    if "/" in name or "\\" in name:
        return "it contains a slash"
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        return "it contains a control character"
    return None


def one_row_per_version(inv: Inventory) -> Inventory:
    """One physical version, one row; what retire must never move is protected, saying why.

    A version reached through a symlink (a symlinked model or version directory), or listed under
    two names (two configs over one base path), is the same files served under several names, and
    the server counts each name's calls apart. The row kept is the one reached without a symlink;
    it is protected, naming its aliases (the aliases are listed as ignored), so nothing is ever
    moved through an alias or while an alias may be busy. A version reached only through a
    symlink is protected too, and so is one whose model, version or directory name is not a plain
    path component (`..`, `a/b`, control characters).
    """
    paths = _Paths({str(r) for r in inv.roots})
    records = list(inv.versions)
    groups: dict[str, list[DiskVersion]] = {}
    for v in records:
        groups.setdefault(paths.identity(v.path), []).append(v)
    pins, ignored, kept = dict(inv.pins), list(inv.ignored), []
    for same in groups.values():
        direct = [v for v in same if not paths.via_link(v.path)]
        row = (direct or same)[0]
        kept.append(row)
        aliases = [v for v in same if v is not row]
        for a in aliases:
            note = f"alias of {row.model} {row.version} ({row.path}): the same files under another name"
            ignored.append(Ignored(Path(a.path), f"{note}, listed once and never moved"))
        why = _never_moved(row, aliases, bool(direct))
        if why is not None:
            pins.setdefault((row.model, row.version), why)
    if len(kept) == len(records) and pins == inv.pins:
        return replace(inv, versions=Columns.of(DiskVersion, records, CODED))
    order = {id(v): n for n, v in enumerate(records)}
    kept.sort(key=lambda v: order[id(v)])
    return Inventory(
        inv.roots, Columns.of(DiskVersion, kept, CODED), tuple(ignored), inv.keep_latest, pins, inv.policies
    )


class _Paths:
    """Symlink tests and real paths of version directories, each parent looked up once (a fleet
    has thousands of versions under a few hundred model directories)."""

    def __init__(self, roots: set[str]) -> None:
        self.roots = roots
        self.links: dict[str, bool] = {}
        self.reals: dict[str, str] = {}

    def via_link(self, path: str) -> bool:
        parent = os.path.dirname(path)
        if parent not in self.links:
            self.links[parent] = parent not in self.roots and os.path.islink(parent)
        return self.links[parent] or os.path.islink(path)

    def identity(self, path: str) -> str:
        if self.via_link(path):
            return os.path.realpath(path)
        parent = os.path.dirname(path)
        if parent not in self.reals:
            self.reals[parent] = os.path.realpath(parent)
        return os.path.join(self.reals[parent], os.path.basename(path))


def _never_moved(row: DiskVersion, aliases: list[DiskVersion], direct: bool) -> str | None:
    """Why retire must never move this version (its protection's words), or None."""
    if aliases:
        names = ", ".join(f"{a.model} {a.version}" for a in aliases)
        return f"also served as {names} (the same files): calls under that name are not counted here"
    if not direct:
        target = os.path.realpath(row.path)
        return f"reached through a symlink ({row.path} -> {target}); retire never moves through one"
    for label, text in (
        ("model name", row.model),
        ("version", row.version),
        ("directory name", os.path.basename(row.path)),
    ):
        problem = unsafe_component(text)
        if problem:
            return f"its {label} {text!r} is not a safe path component ({problem}); retire never moves it"
    return None


def tree_size(path: Path | str) -> int:
    """Apparent size in bytes of the regular files below `path` (like `du -sb`, symlinks not followed).

    Directory entries' types come from the directory listing itself (no stat call); only regular
    files are stat'ed, for their size.
    """
    total = 0
    stack = [os.fspath(path)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
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


def scan_model(base_path: Path, model: str, srv: Layout) -> tuple[list[DiskVersion], list[Ignored]]:
    """The versions of one model under its base path, as `srv` reads them."""
    versions: dict[int, DiskVersion] = {}
    ignored: list[Ignored] = []
    for entry in _list_dir(base_path, f"base path of model {model!r}"):
        number = srv.version_of(entry.name)
        if number is None:
            if entry.name != srv.policy_file:
                ignored.append(Ignored(Path(entry.path), srv.not_a_version))
            continue
        try:
            st = entry.stat()  # follows a symlinked version directory, as TF Serving does
        except OSError as e:
            ignored.append(Ignored(Path(entry.path), f"cannot stat: {e.strerror}"))
            continue
        if not stat.S_ISDIR(st.st_mode):
            ignored.append(Ignored(Path(entry.path), "not a directory"))
            continue
        if number in versions:  # names are sorted, so this one wins, as in TF Serving
            loser = Path(versions[number].path)
            ignored.append(Ignored(loser, f"duplicate of version {number}; {entry.name}/ is served"))
        versions[number] = DiskVersion(
            model=model,
            version=str(number),
            number=number,
            path=entry.path,
            size_bytes=tree_size(entry.path),
            mtime=st.st_mtime,
            ctime=st.st_ctime,
        )
    return list(versions.values()), ignored


def scan_model_dir(root: Path, srv: Layout) -> Inventory:
    """Every model under a root: each subdirectory is a model's base path."""
    if srv.store is not None:
        return srv.store(root)
    versions: list[DiskVersion] = []
    ignored: list[Ignored] = []
    keep: dict[str, int] = {}
    pins: dict[tuple[str, str], str] = {}
    policies: dict[str, tuple[VersionPolicy, str]] = {}
    models = []
    for entry in _list_dir(root, "model directory"):
        path = Path(entry.path)
        if entry.name.startswith("."):
            ignored.append(Ignored(path, "hidden entry"))
        elif not entry.is_dir():
            ignored.append(Ignored(path, "not a directory"))
        else:
            models.append((path, entry.name))
    # Serial on purpose: threads were measured 2x slower here (the GIL-bound Python work per
    # entry dominates the syscalls they would overlap).
    for path, name in models:
        found, skipped = scan_model(path, name, srv)
        versions += found
        ignored += skipped
        _model_policy(path, name, srv, keep, pins, policies)
    return one_row_per_version(Inventory((root,), tuple(versions), tuple(ignored), keep, pins, policies))


def _model_policy(
    path: Path,
    model: str,
    srv: Layout,
    keep: dict[str, int],
    pins: dict[tuple[str, str], str],
    policies: dict[str, tuple[VersionPolicy, str]],
) -> None:
    """The version policy in the model's own config file, for servers that have one (Triton)."""
    if srv.policy_file is not None and srv.read_policy is not None and (path / srv.policy_file).is_file():
        policy = srv.read_policy(path / srv.policy_file)
        _apply_policy(model, policy, f"{path.name}/{srv.policy_file}", keep, pins, policies)


def _specific_pin(where: str) -> str:
    return f"listed under a specific version policy in {where}"


def _apply_policy(
    model: str,
    policy: VersionPolicy,
    where: str,
    keep: dict[str, int],
    pins: dict[tuple[str, str], str],
    policies: dict[str, tuple[VersionPolicy, str]] | None = None,
) -> None:
    """A server's version policy as protection: specific versions are pinned, latest N kept."""
    if policies is not None:
        policies[model] = (policy, where)
    if policy.kind == "specific":
        for v in policy.versions:
            pins[(model, str(v))] = _specific_pin(where)
    elif policy.kind == "latest":
        keep[model] = policy.num_versions


def scan_base_path(base_path: Path, model: str, srv: Layout) -> Inventory:
    """One model's versions (`--model-base-path`), with its own policy file if the server has one."""
    if srv.store is not None:
        raise InventoryError(
            f"--model-base-path names one model's version directories; {srv.preset} reads each "
            "version's model and version from its own files: pass the model store or repository "
            "with --model-dir"
        )
    found, skipped = scan_model(base_path, model, srv)
    keep: dict[str, int] = {}
    pins: dict[tuple[str, str], str] = {}
    policies: dict[str, tuple[VersionPolicy, str]] = {}
    _model_policy(base_path, model, srv, keep, pins, policies)
    return one_row_per_version(Inventory((base_path,), tuple(found), tuple(skipped), keep, pins, policies))


def scan_model_config(path: Path, srv: Layout) -> Inventory:
    """The models a TF Serving --model_config_file lists, each at its base path."""
    if srv.read_model_config is None:
        raise InventoryError(
            f"--model-config is TF Serving's --model_config_file; {srv.preset} does not read it: "
            "pass the model repository or store with --model-dir"
        )
    total = Inventory((), ())
    for entry in srv.read_model_config(path):
        found, skipped = scan_model(entry.base_path, entry.name, srv)
        keep: dict[str, int] = {}
        pins: dict[tuple[str, str], str] = {}
        policies: dict[str, tuple[VersionPolicy, str]] = {}
        _apply_policy(entry.name, entry.policy, path.name, keep, pins, policies)
        for label, version in entry.labels.items():
            pins[(entry.name, str(version))] = f"version label {label!r} points at it in {path.name}"
        total = total + Inventory((entry.base_path,), tuple(found), tuple(skipped), keep, pins, policies)
    return one_row_per_version(total)


def _natural(text: str) -> tuple[tuple[int, object], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p)


def scan_model_store(store: Path) -> Inventory:
    """A TorchServe model store: one `.mar` archive (a zip) per model version."""
    found: list[tuple[str, str, Path, os.stat_result]] = []
    ignored: list[Ignored] = []
    for entry in _list_dir(store, "model store"):
        path = Path(entry.path)
        if not entry.name.endswith(".mar") or not entry.is_file():
            ignored.append(Ignored(path, "not a .mar model archive"))
            continue
        try:
            with zipfile.ZipFile(path) as z:
                manifest = json.loads(z.read("MAR-INF/MANIFEST.json"))
            model = manifest["model"]["modelName"]
            version = str(manifest["model"].get("modelVersion") or "1.0")
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
            ignored.append(Ignored(path, f"unreadable model archive ({type(e).__name__})"))
            continue
        found.append((model, version, path, path.stat()))
    versions = []
    for model in sorted({f[0] for f in found}):
        mine = sorted((f for f in found if f[0] == model), key=lambda f: _natural(f[1]))
        for rank, (_, version, path, st) in enumerate(mine):
            times = (st.st_mtime, st.st_ctime)
            versions.append(DiskVersion(model, version, rank, str(path), st.st_size, *times))
    return one_row_per_version(Inventory((store,), tuple(versions), tuple(ignored)))

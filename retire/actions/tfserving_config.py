"""Rewriting a TF Serving --model_config_file so that the server unloads versions (issue #24).

TF Serving unloads a version when the config file it polls (--model_config_file_poll_wait_seconds)
or reloads (HandleReloadConfigRequest) stops asking for it. Per model asked for, `rewrite` does:
- `specific { versions: ... }`: the versions leave the list (order and the rest kept). Refused: a
  version not in the list (this file does not load it, so it is not the config the server runs),
  and a list that would become empty (TF Serving would unload every version of the model).
- `latest { num_versions: N }`, and no policy (latest 1): TF Serving serves the newest
  min(N, versions on disk), so the versions on disk are an argument. N becomes
  min(N, on disk) - count, only where the versions to unload are exactly the oldest of those
  served (plain N - count would unload nothing when fewer than N are on disk); never 0 (TF Serving
  reads 0 as 1). The change's note says that a version arriving later pushes out the oldest kept.
- `all {}`: refused by default: no `all` leaves a version out, and the only edit that does (a
  `specific` list of the kept versions) also stops the server loading versions that arrive later,
  which is a change of policy, not an unload. `all_to_specific=True` makes that conversion, with
  the versions on disk that are kept, and the change's note says so.
- A version a `version_labels` entry points at is refused (a client reaches it by label), and
  so is a model listed twice (TF Serving refuses the file) or not listed.
A refusal is data (a reason per model; that model's text untouched), not an exception; one model
is changed as asked or not at all.

How the text is edited. Reprinting the whole file with text_format.MessageToString would drop
every comment and reorder and reformat the user's file (a file under version control or in a
ConfigMap would show every line changed, and a reviewer could not see the one that matters). So
the edit is textual: protobuf's own tokenizer (the parser's) locates each changed model's
`model_version_policy` field, and only that field's text is replaced by the new policy as
protobuf prints it (on one line, or indented as the old one was); every other byte is kept, line
endings included. Comments inside a replaced policy are lost (the note says so). Then the whole
result is read back with protobuf's text_format against the schema of model_server_config.proto
(retire/sources/disk/server_configs.py) and must equal the intended config, message for message,
or `rewrite` raises and nothing is written.

Writing, in the order a caller journals it: `read_config`, `rewrite`, `keep_original` (a copy
next to the journal, named by its SHA-256 so a rerun after a crash finds the same file),
`write_atomically` (temporary file in the same directory, fsynced, mode and owner of the old
file, os.replace, directory fsynced; a symlink stays a link and its target is replaced; a file
with other hard links is refused, as they would keep the old text; extended attributes and ACLs
are not copied), and `restore` to undo. Each takes the text the file must still hold, so an edit
made by someone else since it was read is refused rather than overwritten (the check and the
rename are not one step: an edit in between is lost, a narrow window). delivery/output.py's
write_atomic is not reused: its temporary file keeps mkstemp's mode 0600 and the writer as
owner, so a server running as another user could no longer read its own config.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from retire.errors import InventoryError, OffloadError
from retire.sources.disk.server_configs import VersionPolicy, parse_tfserving_text, tfserving_policy

FIELD = "model_version_policy"


@dataclass(frozen=True)
class Change:
    """One model's policy, before and after; `note` says what else the change means."""

    model: str
    unloaded: tuple[int, ...]
    before: VersionPolicy
    after: VersionPolicy
    note: str = ""


@dataclass(frozen=True)
class Refusal:
    """A model left as it was, and why."""

    model: str
    versions: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class Rewrite:
    """The new text (the old one where nothing changed), what changed and what was refused."""

    text: str
    changes: tuple[Change, ...]
    refusals: tuple[Refusal, ...]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _listed(versions: Iterable[int]) -> str:
    return ", ".join(str(v) for v in sorted(versions))


def _are(versions: Iterable[int]) -> str:
    """`version 4 is` or `versions 4, 5 are`."""
    vs = sorted(versions)
    return f"versions {_listed(vs)} are" if len(vs) > 1 else f"version {_listed(vs)} is"


def _plan(
    config: Any, unload: frozenset[int], disk: frozenset[int] | None, all_to_specific: bool
) -> tuple[VersionPolicy, str] | str:
    """The policy after unloading (and a note), or why not."""
    labelled = sorted((v, k) for k, v in config.version_labels.items() if v in unload)
    if labelled:
        which = ", ".join(f"{k!r} -> {v}" for v, k in labelled)
        return (
            f"version label {which} still points at a version to unload, so a client can reach it "
            "by label: move the label first"
        )
    policy = tfserving_policy(config.model_version_policy)
    if policy.kind == "specific":
        listed = set(policy.versions)
        missing = unload - listed
        if missing:
            return (
                f"{_are(missing)} not in its specific list, so this file does not load it: it may not "
                "be the config the server runs"
            )
        kept = tuple(v for v in policy.versions if v not in unload)
        if not kept:
            return (
                f"unloading {_listed(unload)} would empty its specific list, and TF Serving would then "
                "unload every version of the model: keep at least one"
            )
        return VersionPolicy("specific", versions=kept), ""
    if disk is None:
        return (
            f"its policy is {_describe(policy)}, and which versions that loads depends on the versions "
            "on disk, which were not given"
        )
    if policy.kind == "all":
        missing = unload - disk
        if missing:
            return f"{_are(missing)} not on disk, so `all` does not load it"
        if not all_to_specific:
            return (
                "its policy is `all`, which no edit can narrow without becoming a specific list of "
                "the kept versions, and then the server would no longer load versions that arrive "
                "later; retire converts it only when asked"
            )
        kept = tuple(sorted(disk - unload))
        if not kept:
            return f"unloading {_listed(unload)} would unload every version on disk: keep at least one"
        note = f"all -> specific {_listed(kept)}: versions that arrive later will no longer be loaded"
        return VersionPolicy("specific", versions=kept), note
    n = policy.num_versions
    served = sorted(disk)[-n:] if disk else []
    missing = unload - set(served)
    if missing:
        return (
            f"{_are(missing)} not among the {len(served)} newest on disk that latest {n} loads "
            f"({_listed(served) or 'none'})"
        )
    oldest = served[: len(unload)]
    if set(oldest) != unload:
        return (
            f"latest {n} loads {_listed(served)}; lowering it unloads the oldest first, and "
            f"{_listed(unload)} are not the oldest {len(unload)} of them (that would be "
            f"{_listed(oldest)}): change the policy to a specific list yourself"
        )
    left = len(served) - len(unload)
    if left == 0:
        return (
            f"unloading {_listed(unload)} would leave none of the versions latest {n} loads (and TF "
            "Serving reads latest 0 as latest 1): keep at least one"
        )
    note = f"latest {n} -> {left}: a version that arrives later will push out the oldest one kept"
    return VersionPolicy("latest", num_versions=left), note


def _describe(policy: VersionPolicy) -> str:
    return "`all`" if policy.kind == "all" else f"`latest {policy.num_versions}`"


def _set_policy(message: Any, policy: VersionPolicy) -> None:
    message.Clear()
    if policy.kind == "specific":
        message.specific.versions.extend(policy.versions)
    else:
        message.latest.num_versions = policy.num_versions


def _plan_add(
    config: Any, add: frozenset[int], disk: frozenset[int] | None
) -> tuple[VersionPolicy, str] | str:
    """The policy after loading `add` back (unchanged where it loads them already), or why not.
    Only ever adds: a `specific` list grows by them; `latest N` grows only where they are exactly
    the next older versions on disk (else it would load others too, or need a list)."""
    policy = tfserving_policy(config.model_version_policy)
    if policy.kind == "specific":
        new = tuple(sorted(add - set(policy.versions)))
        return VersionPolicy("specific", versions=(*policy.versions, *new)), ""
    if disk is None:
        return (
            f"its policy is {_describe(policy)}, and which versions that loads depends on the versions "
            "on disk, which were not given"
        )
    missing = add - disk
    if missing:
        return f"{_are(missing)} not on disk, so no version policy can load it back"
    if policy.kind == "all":
        return policy, ""
    n = policy.num_versions
    served = set(sorted(disk)[-n:])
    wanted = served | add
    newest = set(sorted(disk)[-len(wanted) :])
    if newest != wanted:
        return (
            f"latest {n} loads {_listed(served)}; raising it to load {_listed(add - served)} back would "
            f"also load {_listed(newest - wanted)}: change the policy to a specific list yourself"
        )
    return VersionPolicy("latest", num_versions=max(n, len(wanted))), ""


def add_back(
    text: str,
    versions: Mapping[str, Iterable[int]],
    on_disk: Mapping[str, Iterable[int]] | None = None,
    *,
    where: str = "config",
) -> Rewrite:
    """`text` with the versions in `versions` (model -> versions) asked for again (the undo of
    `rewrite` when the file is no longer what retire wrote): a model whose policy loads them
    already is left as it is; one where only adding them cannot be done is refused, as data."""
    return _edit(text, versions, on_disk, lambda c, vs, disk: _plan_add(c, vs, disk), where)


def rewrite(
    text: str,
    unload: Mapping[str, Iterable[int]],
    on_disk: Mapping[str, Iterable[int]] | None = None,
    *,
    all_to_specific: bool = False,
    where: str = "config",
) -> Rewrite:
    """`text` (a --model_config_file) with the versions in `unload` (model -> versions) no longer
    asked for, where that can be done (module docstring); `on_disk` (model -> version numbers TF
    Serving finds there) is needed for `latest` and `all`. Raises InventoryError if `text` does
    not parse as TF Serving parses it."""
    return _edit(text, unload, on_disk, lambda c, vs, disk: _plan(c, vs, disk, all_to_specific), where)


_Planner = Callable[[Any, frozenset[int], "frozenset[int] | None"], "tuple[VersionPolicy, str] | str"]


def _edit(
    text: str,
    asked: Mapping[str, Iterable[int]],
    on_disk: Mapping[str, Iterable[int]] | None,
    plan: _Planner,
    where: str,
) -> Rewrite:
    """Each asked model's policy replaced by `plan`'s (module docstring: how the text is edited)."""
    root = parse_tfserving_text(text, where)
    if root.WhichOneof("config") != "model_config_list":
        raise InventoryError(f"{where}: no model_config_list {{ config {{ ... }} }} entries found")
    configs = list(root.model_config_list.config)
    intended = type(root)()
    intended.CopyFrom(root)
    disk = {m: frozenset(int(v) for v in vs) for m, vs in (on_disk or {}).items()}
    planned: list[tuple[int, Change]] = []
    refusals = []
    for model in sorted(asked):
        versions = frozenset(int(v) for v in asked[model])
        if not versions:
            continue
        indexes = [i for i, c in enumerate(configs) if c.name == model]
        if len(indexes) != 1:
            why = (
                f"it is not in {where}, so TF Serving does not load it from this file"
                if not indexes
                else f"it is listed {len(indexes)} times in {where}, a file TF Serving refuses"
            )
            refusals.append(Refusal(model, tuple(sorted(versions)), why))
            continue
        (i,) = indexes
        outcome = plan(configs[i], versions, disk.get(model))
        if isinstance(outcome, str):
            refusals.append(Refusal(model, tuple(sorted(versions)), outcome))
            continue
        after, note = outcome
        before = tfserving_policy(configs[i].model_version_policy)
        if after == before:
            continue  # it loads them already (add_back): nothing to write
        if not configs[i].HasField(FIELD):
            why = "its policy is not written in the file (TF Serving's default, latest 1): write it out first"
            refusals.append(Refusal(model, tuple(sorted(versions)), why))
            continue
        planned.append((i, Change(model, tuple(sorted(versions)), before, after, note)))
        _set_policy(intended.model_config_list.config[i].model_version_policy, after)
    if not planned:
        return Rewrite(text, (), tuple(refusals))
    spans = _policy_spans(text, where)
    if len(spans) != len(configs):
        raise _not_as_intended(where)
    new, changes = text, []
    for i, change in sorted(planned, key=lambda p: -p[0]):  # last first: earlier offsets stay valid
        span = spans[i]
        if span is None:  # every policy retire can change is written out in the file
            raise _not_as_intended(where)
        start, end = span
        old = text[start:end]
        printed = _printed(intended.model_config_list.config[i].model_version_policy, text, start, old)
        new = new[:start] + printed + new[end:]
        if "#" in old:  # a policy holds no strings, so `#` starts a comment
            change = _with_note(change, "the comments inside its model_version_policy were dropped")
        changes.append(change)
    if parse_tfserving_text(new, where) != intended:
        raise _not_as_intended(where)
    return Rewrite(new, tuple(sorted(changes, key=lambda c: c.model)), tuple(refusals))


def _with_note(change: Change, more: str) -> Change:
    note = f"{change.note}; {more}" if change.note else more
    return Change(change.model, change.unloaded, change.before, change.after, note)


def _not_as_intended(where: str) -> OffloadError:
    return OffloadError(
        f"retire's rewrite of {where} did not read back as the intended config, so nothing was "
        "written (a bug in retire: please report it with the file)"
    )


def _printed(policy: Any, text: str, start: int, old: str) -> str:
    """The new policy field, on one line, or indented as the old one was when it spanned lines."""
    from google.protobuf import text_format

    lead = text[text.rfind("\n", 0, start) + 1 : start]
    if "\n" not in old or lead.strip(" \t"):
        return f"{FIELD} {{ {text_format.MessageToString(policy, as_one_line=True)} }}"
    newline = "\r\n" if "\r\n" in old else "\n"
    inner = text_format.MessageToString(policy).splitlines()
    body = "".join(f"{lead}  {line}{newline}" for line in inner)
    return f"{FIELD} {{{newline}{body}{lead}}}"


# --------------------------------------------------------------------------------------------
# Where each config's model_version_policy is in the text


_Node = dict[str, list[tuple[int, int, "_Node | None"]]]


class _Walker:
    """Walks text format with protobuf's own tokenizer, keeping each field's place: the same
    tokens the parser read, so the places are where the parser found the fields."""

    def __init__(self, text: str) -> None:
        from google.protobuf import text_format

        lines = text.split("\n")
        self.starts = [0]
        for line in lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)
        self.tok: Any = text_format.Tokenizer(lines)

    def here(self) -> int:
        line: int = self.tok._line
        column: int = self.tok._column
        return self.starts[line] + column

    def after_bracket(self) -> int:
        """Just after the token consumed last, a one-character bracket."""
        line: int = self.tok._previous_line
        column: int = self.tok._previous_column
        return self.starts[line] + column + 1

    def message(self, close: str | None) -> _Node:
        tok = self.tok
        node: _Node = {}
        while not (tok.TryConsume(close) if close else tok.AtEnd()):
            start = self.here()
            values = node.setdefault(tok.ConsumeIdentifierOrNumber(), [])
            colon = tok.TryConsume(":")
            if tok.TryConsume("["):
                while not tok.TryConsume("]"):
                    values.append((start, -1, self.value()))
                    if not tok.LookingAt("]"):
                        tok.Consume(",")
            elif colon and not (tok.LookingAt("{") or tok.LookingAt("<")):
                values.append((start, -1, self.value()))
            else:
                child = self.value()
                values.append((start, self.after_bracket(), child))
            if not tok.TryConsume(","):
                tok.TryConsume(";")
        return node

    def value(self) -> _Node | None:
        from google.protobuf import text_format

        tok = self.tok
        if tok.TryConsume("<"):
            return self.message(">")
        if tok.TryConsume("{"):
            return self.message("}")
        if not (tok.TryConsumeByteString() or tok.TryConsumeIdentifier()):
            try:
                tok.ConsumeInteger()
            except text_format.ParseError:
                tok.ConsumeFloat()
        return None


def _policy_spans(text: str, where: str) -> list[tuple[int, int] | None]:
    """Per config, in order, the text of its model_version_policy field (None: not written)."""
    from google.protobuf import text_format

    try:
        root = _Walker(text).message(None)
    except (text_format.ParseError, RecursionError, IndexError):
        raise _not_as_intended(where) from None
    spans: list[tuple[int, int] | None] = []
    for _, _, config_list in root.get("model_config_list", []):
        for _, _, config in (config_list or {}).get("config", []):
            policy = (config or {}).get(FIELD, [])
            spans.append((policy[0][0], policy[0][1]) if policy else None)
    return spans


def field_span(text: str, name: str, where: str) -> tuple[int, int] | None:
    """Where the top-level message field `name` is in protobuf text `text` (None: not written),
    found with the parser's own tokenizer (Triton's config.pbtxt: its `version_policy`). Written
    twice, or not as a message: OffloadError (the file is not as retire can edit it)."""
    from google.protobuf import text_format

    try:
        found = _Walker(text).message(None).get(name, [])
    except (text_format.ParseError, RecursionError, IndexError):
        raise OffloadError(f"{where} does not parse as protobuf text") from None
    if not found:
        return None
    if len(found) > 1 or found[0][1] < 0:
        raise OffloadError(f"{where} writes {name} {len(found)} times or not as a message")
    return found[0][0], found[0][1]


# --------------------------------------------------------------------------------------------
# Reading, keeping and replacing the file


def read_config(path: Path) -> str:
    """The file's text as it is, line endings included (no newline translation). Only a regular
    file is read: a FIFO (or a device) named by an edited journal would block the read unbounded."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InventoryError(f"cannot read --model-config {path}: not a regular file")
        data = Path(path).read_bytes()
    except OSError as e:
        raise InventoryError(f"cannot read --model-config {path}: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InventoryError(f"--model-config {path} is not UTF-8 text") from None


def _problem(e: OSError) -> str:
    return str(e.strerror or e)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(directory: Path, name: str, data: bytes, st: os.stat_result | None) -> str:
    """A fsynced temporary file in `directory` holding `data`, with `st`'s owner and mode."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".retire", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if st is not None:
                mine = os.fstat(f.fileno())
                if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
                    try:
                        os.fchown(f.fileno(), st.st_uid, st.st_gid)
                    except PermissionError:
                        raise OSError(
                            errno.EPERM,
                            f"cannot keep its owner {st.st_uid}:{st.st_gid} (run retire as that user)",
                        ) from None
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomically(path: Path, text: str, *, expected: str | None = None) -> None:
    """Replace the file's text all at once: a reader (the server polling it) sees the old file or
    the new one, never part of one. `expected`: the text it must still hold (else refused: someone
    edited it since it was read). A symlink stays a link; the file it points to is replaced."""
    target = Path(os.path.realpath(path))

    def fail(why: str) -> NoReturn:
        raise OffloadError(f"cannot rewrite {path}: {why}; the file was not changed")

    try:
        st = os.stat(target)
    except OSError as e:
        fail(_problem(e))
    if not stat.S_ISREG(st.st_mode):
        fail("it is not a regular file")
    if st.st_nlink > 1:
        fail(f"it has {st.st_nlink} hard links, and the others would keep the old text: make it one file")
    if expected is not None:
        try:
            current = target.read_bytes()
        except OSError as e:
            fail(_problem(e))
        if current != expected.encode("utf-8"):
            fail("it changed since retire read it: run again")
    try:
        tmp = _write_new(target.parent, target.name, text.encode("utf-8"), st)
    except OSError as e:
        fail(f"{_problem(e)} (writing a new copy in {target.parent})")
    try:
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        fail(_problem(e))
    try:
        _fsync_dir(target.parent)
    except OSError as e:
        raise OffloadError(
            f"{path} was rewritten, but its directory could not be synced ({_problem(e)}): a crash "
            "now could bring the old file back"
        ) from None


_KEPT = re.compile(r"(?s)(.+)\.([0-9a-f]{16})\.orig")


def keep_original(path: Path, keep_dir: Path, *, expected: str | None = None) -> Path:
    """A copy of the file, fsynced, in `keep_dir` (the journal's directory), named
    `<name>.<SHA-256 prefix>.orig`: a rerun after a crash finds the same copy instead of a second
    one. `expected`: the text the file must still hold."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise OffloadError(f"cannot read {path}: {_problem(e)}; nothing was changed") from None
    if expected is not None and data != expected.encode("utf-8"):
        raise OffloadError(f"{path} changed since retire read it: run again; nothing was changed")
    dest = Path(keep_dir) / f"{Path(path).name}.{hashlib.sha256(data).hexdigest()[:16]}.orig"
    try:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(dest).st_mode) and dest.read_bytes() == data:
                return dest
        tmp = _write_new(Path(keep_dir), dest.name, data, None)
        try:
            os.replace(tmp, dest)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(Path(keep_dir))
    except OSError as e:
        raise OffloadError(
            f"cannot keep a copy of {path} in {keep_dir}: {_problem(e)}; nothing was changed"
        ) from None
    return dest


def restore(path: Path, kept: Path, *, expected: str | None = None) -> None:
    """Put a copy made by `keep_original` back (undo). The copy is checked against the hash in
    its name (a journal naming it is untrusted input); `expected` as in write_atomically."""
    m = _KEPT.fullmatch(Path(kept).name)
    try:
        data = Path(kept).read_bytes()
    except OSError as e:
        raise OffloadError(
            f"cannot read the kept copy {kept}: {_problem(e)}; {path} was not changed"
        ) from None
    if m is None or hashlib.sha256(data).hexdigest()[:16] != m[2]:
        raise OffloadError(
            f"{kept} is not a copy retire kept (its name does not match its SHA-256); {path} was not changed"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OffloadError(f"{kept} is not UTF-8 text; {path} was not changed") from None
    write_atomically(path, text, expected=expected)


# --------------------------------------------------------------------------------------------
# Checking a kept copy before putting it back


def loads(policy: VersionPolicy, disk: Iterable[int]) -> set[int]:
    """The versions TF Serving loads under `policy` from those on disk
    (file_system_storage_path_source.cc: `specific` loads what it lists)."""
    if policy.kind == "specific":
        return set(policy.versions)
    on_disk = sorted(set(disk))
    return set(on_disk) if policy.kind == "all" else set(on_disk[-policy.num_versions :])


def only_adds_back(
    kept: str, current: str, model: str, versions: Iterable[int], disk: Iterable[int]
) -> str | None:
    """Why putting `kept` (a copy retire kept; the journal that names it is untrusted) in place of
    `current` would do more than load `versions` of `model` back, or None: every other byte of
    meaning (other models, base paths, labels, settings) must read the same, and `model`'s policy
    in `kept` must load every version its policy in `current` loads, and `versions`."""
    try:
        old = parse_tfserving_text(kept, "the kept copy")
        now = parse_tfserving_text(current, "the config")
    except InventoryError as e:
        return e.message
    policies = []
    for root in (old, now):
        found = [c for c in root.model_config_list.config if c.name == model]
        if len(found) != 1:
            return f"{model} is not listed once in both"
        policies.append(tfserving_policy(found[0].model_version_policy))
        found[0].ClearField(FIELD)
    if old != now:
        return "it differs from the file in more than the version policy of " + model
    wanted = loads(policies[1], disk) | set(versions)
    missing = wanted - loads(policies[0], disk)
    if missing:
        return f"its policy for {model} would not load {_listed(missing)}"
    return None

"""Making a Triton unload last: the model's `config.pbtxt` in the repository (`--model-dir`).

Triton's unload (actions/unload.py) is an override in each server's memory: a replica started
later, or a plain load, reads `config.pbtxt` and loads every version its `version_policy` picks.
So once every replica named has confirmed a model's change, its `version_policy` in the file
becomes `specific` = the versions kept loaded (on any replica). How, and what is refused:

- the edit is textual, as tfserving_config.py's: protobuf's own tokenizer finds the top-level
  `version_policy` field and only its text is replaced (a file without one gets the field added
  at its end); every other byte stays. The result is read back with the parser retire reads
  Triton's policies with and must say `specific` = the kept versions, else nothing is written;
- not made durable (said in one line; the in-memory unload stands, as asked): no config.pbtxt,
  one that cannot be read or parsed, a policy written twice, or a file whose policy is not the
  one the servers run (an override already in memory: the file would not describe them), or
  replicas that run different policies;
- written in the order it is journaled (`<archive>/unload-config.jsonl`, its own journal beside
  `unload.jsonl`): the original kept in `<archive>/triton-configs/` named by its SHA-256 (a rerun
  after a crash finds the same copy), a `begin` record with the hashes of the text before and
  after, the file replaced atomically only if it still holds the text read (else refused), then
  `done`. A begun step is settled by the file's hash (after: done; before: failed; anything else:
  refused, someone edited it);
- `--undo`: once every version of the model's pending steps is loaded back, the kept copy goes
  back (only where the file still holds what retire wrote, else said and left alone); a partial
  `--undo --only` adds the versions back to the `specific` list instead. The journal is untrusted:
  the file is the one under `--model-dir` for the model (the journal's path must name it), the
  kept copy must match the hash in its name.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retire.actions import tfserving_config as files
from retire.actions.journal import Journal
from retire.errors import InventoryError, OffloadError
from retire.sources.disk.inventory import unsafe_component
from retire.sources.disk.server_configs import VersionPolicy, parse_triton_text, triton_policy

CONFIG_JOURNAL = "unload-config.jsonl"
FILE = "config.pbtxt"
FIELD = "version_policy"
_SHA = re.compile(r"[0-9a-f]{64}")

Say = Callable[[str], None]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Edit:
    """One model's config.pbtxt, as read and as it would be written."""

    model: str
    path: Path
    before: str
    after: str
    keep: tuple[int, ...]


def server_policy(policy: object) -> VersionPolicy | None:
    """Triton's JSON version_policy (GET /v2/models/<m>/config) as a VersionPolicy, or None."""
    if not isinstance(policy, dict) or len(policy) != 1:
        return None
    kind, arg = next(iter(policy.items()))
    if not isinstance(arg, dict):
        return None
    try:
        if kind == "all":
            return VersionPolicy("all")
        if kind == "latest":
            return VersionPolicy("latest", num_versions=max(int(arg.get("num_versions", 1)), 1))
        if kind == "specific":
            return VersionPolicy("specific", versions=tuple(int(v) for v in arg.get("versions", [])))
    except (TypeError, ValueError):
        return None
    return None


def _shown(p: VersionPolicy) -> str:
    if p.kind == "latest":
        return f"latest {p.num_versions}"
    if p.kind == "specific":
        return f"specific [{', '.join(map(str, sorted(p.versions)))}]"
    return p.kind


def plan(
    model: str,
    path: Path,
    keep: Iterable[str],
    run_with: Iterable[object],
    on_disk: Iterable[int] = (),
    drop: Iterable[str] | None = None,
) -> Edit | str:
    """The edit that makes `model` load only `keep` at its next start, or why not (one line).
    With `drop`, what it keeps is what the file's policy loads of the versions on disk, less
    `drop`: a version no changed replica had loaded (a failed load, a replica skipped) is never
    written out of the file by an unload that did not choose it.
    `run_with`: the version_policy each changed replica ran the model with before the change;
    each must load, of the versions `on_disk`, what the file's policy loads (`specific [1, 2, 3]`
    after an earlier undo is `all` with 1, 2, 3 on disk)."""
    where = f"{path}"
    if path.is_symlink():
        # The rewrite would land wherever it points: outside the repository, or in a file another
        # model's config.pbtxt also names.
        return f"{where} is a symbolic link (to {os.readlink(path)}): only a file of its own is rewritten"
    try:
        before = files.read_config(path)
    except InventoryError as e:
        return f"cannot read {where}: {e.message.split(': ', 1)[-1]}"
    try:
        file_policy = triton_policy(parse_triton_text(before, where))
    except InventoryError as e:
        return f"{where} does not parse ({e.message})"
    policies = [server_policy(p) for p in run_with]
    if any(p is None for p in policies):
        return f"a server's version_policy for {model} is not one retire reads"
    disk = sorted(set(on_disk))
    if not all(files.loads(p, disk) == files.loads(file_policy, disk) for p in policies if p is not None):
        ran = ", ".join(sorted({_shown(p) for p in policies if p is not None}))
        return (
            f"the servers ran {model} with version_policy {ran}, but {where} says {_shown(file_policy)} "
            "(an override in memory?): the file does not describe what they run"
        )
    if drop is not None:
        keep = [str(v) for v in files.loads(file_policy, disk) - {int(v) for v in drop}]
    numbers = tuple(sorted({int(v) for v in keep}))
    if not numbers:
        return f"no version of {model} is kept"
    try:
        after = _edited(before, numbers, where)
    except OffloadError as e:
        return e.message
    return Edit(model, path, before, after, numbers)


def _edited(text: str, keep: tuple[int, ...], where: str) -> str:
    """`text` with only its version_policy replaced by `specific` = `keep`, checked by reading it
    back."""
    span = files.field_span(text, FIELD, where)
    field = f"{FIELD} {{ specific {{ versions: [ {', '.join(map(str, keep))} ] }} }}"
    if span is None:
        newline = "\r\n" if "\r\n" in text else "\n"
        lead = "" if not text or text.endswith(("\n", "\r")) else newline
        new = f"{text}{lead}{field}{newline}"
    else:
        start, end = span
        new = text[:start] + field + text[end:]
    try:
        read = triton_policy(parse_triton_text(new, where))
    except InventoryError:
        read = None
    if read is None or read.kind != "specific" or tuple(sorted(read.versions)) != keep:
        raise OffloadError(f"retire's edit of {where} did not read back as intended, so nothing was written")
    return new


def journal(archive: Path) -> Journal:
    return Journal(archive, CONFIG_JOURNAL, _record_problem, resume="retire unload")


def _record_problem(doc: object, archive: Path) -> str | None:
    if not isinstance(doc, dict):
        return "not an object"
    step = doc.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        return "no step number"
    if doc.get("phase") not in ("begin", "done", "failed") or doc.get("op") not in ("unload", "reload"):
        return "unknown phase or op"
    model = doc.get("model")
    if not isinstance(model, str) or unsafe_component(model):
        return "no plain model name"
    config = doc.get("config")
    if not isinstance(config, str) or not os.path.isabs(config) or Path(config).parts[-2:] != (model, FILE):
        return f"config is not an absolute path to {model}/{FILE}"
    for key in ("before", "after"):
        if not isinstance(doc.get(key), str) or not _SHA.fullmatch(doc[key]):
            return f"{key} is not a SHA-256"
    if not isinstance(doc.get("kept"), str):
        return "no kept copy"
    versions = doc.get("versions")
    if not isinstance(versions, list) or not all(isinstance(v, str) and v.isdigit() for v in versions):
        return "versions is not a list of version numbers"
    return None


def _kept_dir(archive: Path, model: str) -> Path:
    d = Path(archive) / "triton-configs" / model
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OffloadError(f"cannot make {d}: {e.strerror}") from None
    return d


def write(archive: Path, edit: Edit, versions: Iterable[str], say: Say) -> None:
    """Journal, keep the original, replace the file (only if unchanged since read), journal."""
    j = journal(archive)
    kept = files.keep_original(edit.path, _kept_dir(archive, edit.model), expected=edit.before)
    record = {
        "step": j.next_step(),
        "op": "unload",
        "model": edit.model,
        "config": str(edit.path),
        "versions": sorted(versions, key=int),
        "before": sha(edit.before),
        "after": sha(edit.after),
        "kept": str(kept),
    }
    j.append({**record, "phase": "begin"})
    try:
        files.write_atomically(edit.path, edit.after, expected=edit.before)
    except OffloadError as e:
        j.append({**record, "phase": "failed", "reason": e.message})
        raise
    j.append({**record, "phase": "done"})
    keep = ", ".join(map(str, edit.keep))
    say(f"made it last: {edit.path} says version_policy specific [{keep}] (what a later replica loads)")


def settle(archive: Path) -> None:
    """Steps a crash left begun: done if the file holds what was being written, failed if it
    still holds what was read; anything else is refused (someone edited it meanwhile)."""
    j = journal(archive)
    for r in j.unfinished():
        try:
            now = sha(files.read_config(Path(r["config"])))
        except InventoryError as e:
            raise OffloadError(
                f"cannot settle the interrupted rewrite of {r['config']}: {e.message}"
            ) from None
        if now == r["after"]:
            j.append({**_base(r), "phase": "done", "settled": "found written after an interruption"})
        elif now == r["before"]:
            j.append({**_base(r), "phase": "failed", "reason": "interrupted before it was written"})
        else:
            raise OffloadError(
                f"{r['config']} changed while retire was rewriting it (an interrupted step {r['step']} "
                f"of {j.path}): check it, then mark that step done or failed by hand"
            )


def _base(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k not in ("time", "phase", "reason", "settled")}


def pending(archive: Path) -> dict[str, list[dict[str, Any]]]:
    """Per model, the file steps done since its original was last put back, oldest first."""
    out: dict[str, list[dict[str, Any]]] = {}
    last: dict[int, dict[str, Any]] = {}
    for r in journal(archive).records():
        last[r["step"]] = r
    for r in sorted(last.values(), key=lambda r: r["step"]):
        if r["phase"] != "done":
            continue
        if r["op"] == "reload" and r.get("restored") is True:
            out.pop(r["model"], None)
        else:
            out.setdefault(r["model"], []).append(r)
    return out


def outstanding(steps: list[dict[str, Any]]) -> set[str]:
    """The versions a model's pending file steps leave out of the file."""
    out: set[str] = set()
    for r in steps:
        if r["op"] == "unload":
            out |= set(r["versions"])
        else:
            out -= set(r["versions"])
    return out


def load_back(archive: Path, model: str, path: Path, versions: Iterable[str], say: Say) -> None:
    """`--undo`: the file says again that `versions` of `model` load. The original goes back
    once nothing retire left out remains; else they are added to the `specific` list. The file
    must hold what retire wrote last (else said, and left alone)."""
    steps = pending(archive).get(model)
    if not steps:
        return
    for r in steps:
        if Path(r["config"]) != path:
            raise OffloadError(
                f"{CONFIG_JOURNAL} names {r['config']} for {model}, not {path} under --model-dir; nothing "
                "of the file was put back"
            )
    try:
        current = files.read_config(path)
    except InventoryError as e:
        say(f"{path} was not put back: {e.message}")
        return
    if sha(current) != steps[-1]["after"]:
        say(f"{path} was not put back: it changed since retire wrote it (original kept: {steps[0]['kept']})")
        return
    left = outstanding(steps) - set(versions)
    j = journal(archive)
    back = sorted(outstanding(steps) & set(versions), key=int)
    if left:
        policy = triton_policy(parse_triton_text(current, str(path)))
        keep = tuple(sorted({*policy.versions, *(int(v) for v in back)}))
        new = _edited(current, keep, str(path))
        kept = files.keep_original(path, _kept_dir(archive, model), expected=current)
        extra: dict[str, Any] = {}
    else:
        kept = Path(steps[0]["kept"])
        # The journal is untrusted input: the copy put back must be the one retire kept for this
        # model, in the archive, and hold what the file held before retire's first rewrite.
        inside = kept.parent == _kept_dir(archive, model) and not kept.is_symlink()
        try:
            same = inside and sha(files.read_config(kept)) == steps[0]["before"]
        except InventoryError:
            same = False
        if not same:
            say(f"{path} was not put back: the journal's kept copy {kept} is not the original retire kept")
            return
        new = ""
        extra = {"restored": True}
    record = {
        "step": j.next_step(),
        "op": "reload",
        "model": model,
        "config": str(path),
        "versions": back,
        "before": sha(current),
        "after": steps[0]["before"] if not left else sha(new),
        "kept": str(kept),
        **extra,
    }
    j.append({**record, "phase": "begin"})
    try:
        if left:
            files.write_atomically(path, new, expected=current)
        else:
            files.restore(path, kept, expected=current)
    except OffloadError as e:
        j.append({**record, "phase": "failed", "reason": e.message})
        say(f"{path} was not put back: {e.message}")
        return
    j.append({**record, "phase": "done"})
    say(f"put back {path}" if not left else f"{path} loads {model} {', '.join(back)} again")

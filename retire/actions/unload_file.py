"""`retire unload` for a server that unloads through the model config file it polls (TF Serving,
`Server.config_unloader`): no call changes anything; retire rewrites `--model-config` so that the
idle versions leave the model's version policy (retire/actions/tfserving_config.py), and the
server unloads them when it reads the file again. With `--server` the status API confirms it.

The same steps and safety as actions/unload.py (whose choice, re-check, confirmation loop and
journal it uses), adapted to a file:
- chosen: versions `safe` in a report at the present and loaded according to `--server`, or,
  without it, according to the model's version policy in the file (`loaded_from` "policy"). The
  report is made with the file's version policies lifted as protections (they are what changes;
  run.build_report's `policies_protect`); version labels, --pin, --keep-latest still protect.
  Before each model's change the report is made again and the loaded versions read again;
- a model keeps a loaded version (unload.change_for); a policy the rewrite cannot narrow to
  exactly the idle versions (`latest N` where they are not the oldest of the N, `all`, a label
  pointing at one) is left as it is and said why (with `--only`: refused, exit 6, before any
  change);
- each model's change: the file read, rewritten in memory, its original kept in the archive
  (`<name>.<sha256 prefix>.orig`), the step journaled (the file's real path, the SHA-256 of what
  it was and of what retire writes, the kept copy's name, the policy before and after), then the
  file replaced atomically only if it still holds what was read. With `--server`, the status API
  must then say, for STEADY seconds within --timeout and --deadline, that every dropped version
  is END (or gone) and every kept one AVAILABLE; else the original is written back (only over
  retire's own text) and the run stops (exit 6). Without `--server` the change is said to be
  unconfirmed: the server picks it up at its next poll;
- `--undo` puts the versions back: the kept original is written back only where the file is
  exactly what retire wrote and the copy (read inside the archive, its SHA-256 the journal's)
  differs from the file in nothing but that model's policy and loads every version loaded now
  plus those (tfserving_config.only_adds_back); otherwise the versions are added to the model's
  policy (tfserving_config.add_back), or the undo is refused in one line saying why;
- a crash at any point leaves a begun step; the next run (apply or undo) settles it by the file:
  what retire was writing -> done (confirmed with `--server`, else put back), what it was ->
  nothing happened, anything else -> refused in one line (someone else changed the file);
- the journal is untrusted input: the file written is always `--model-config` (a journal naming
  another file refuses the run), a kept copy is read only from inside the archive and only when
  its hash is the journal's, and a reload only ever adds versions. A symlinked `--model-config`
  (a Kubernetes ConfigMap mount) is followed: the file it points to is replaced, the link kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retire.actions import tfserving_config as tfc
from retire.actions.journal import Journal
from retire.actions.locks import locked, locked_roots
from retire.actions.paths import normal_absolute, os_problem, real_archive
from retire.actions.unload import (
    UNLOAD_JOURNAL,
    Change,
    change_for,
    changes,
    confirm,
    pending,
)
from retire.actions.unload import _record_problem as _api_record_problem
from retire.deadline import NO_DEADLINE, Deadline
from retire.errors import OffloadError, ServerError
from retire.sources.disk.server_configs import VersionPolicy

if TYPE_CHECKING:
    from retire.actions.unload import Connect
    from retire.advisor import Report
    from retire.servers import ConfigUnloader, Server
    from retire.sources.loaded import Asker

_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileTarget:
    """Where the changes go: the config file (always `--model-config`, never a journal's path),
    and, with `--server`, the status API that confirms them."""

    server: Server
    config: Path  # --model-config as given
    display: str  # the --server URL without credentials; "" without --server
    connect: Connect | None  # None: no --server, nothing is confirmed
    timeout: float
    deadline: Deadline = NO_DEADLINE
    # model -> version numbers on disk now (a fresh scan each call): what `latest N` and `all` load.
    disk: Callable[[], Mapping[str, frozenset[int]]] = field(default=lambda: {})

    @property
    def unloader(self) -> ConfigUnloader:
        assert self.server.config_unloader is not None  # run.unload chose this module by it
        return self.server.config_unloader

    @property
    def real(self) -> str:
        """The file written: `--model-config`, through its symlinks."""
        return os.path.realpath(self.config)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _words(policy: VersionPolicy) -> str:
    if policy.kind == "specific":
        return "specific " + ", ".join(str(v) for v in policy.versions)
    return "all" if policy.kind == "all" else f"latest {policy.num_versions}"


def _numbers(versions: Iterable[str]) -> list[int]:
    return [int(v) for v in versions]


@dataclass
class _View:
    """What the file and the server say now."""

    target: FileTarget
    asker: Asker | None

    def text(self) -> str:
        return tfc.read_config(self.target.config)

    def state(self, model: str) -> dict[str, bool | None]:
        """Per version: loaded, not, or on its way; from --server, else from the file's policy."""
        if self.asker is not None:
            return self.target.unloader.state(self.asker, model)
        disk = self.target.disk().get(model, frozenset())
        policy = _policy_of(self.text(), model, self.target.config.name)
        # TF Serving loads only the versions its policy picks that are on disk.
        loaded = tfc.loads(policy, disk) & disk if policy else set()
        return {str(v): v in loaded for v in sorted(disk)}

    def loaded(self, model: str) -> tuple[str, ...]:
        state = self.state(model)
        unsure = sorted((v for v, s in state.items() if s is None), key=int)
        if unsure:
            raise OffloadError(
                f"{self.target.display} says {model} {', '.join(unsure)} is loading or unloading; nothing "
                "was changed for that model: run again once it has settled"
            )
        return tuple(sorted((v for v, s in state.items() if s), key=int))

    def confirm(self, model: str, gone: tuple[str, ...], there: tuple[str, ...]) -> str | None:
        """None without --server (nothing can confirm it), else unload.confirm's answer; a status
        API that fails meanwhile (no answer, garbage) confirms nothing: that is the answer too."""
        if self.asker is None:
            return None
        t = self.target
        try:
            return confirm(lambda: self.state(model), t.display, model, gone, there, t.timeout, t.deadline)
        except ServerError as e:
            return e.message


@dataclass
class _Run(_View):
    journal: Journal
    say: Callable[[str], None]
    done: list[str] = field(default_factory=list)

    def record(self, record: dict[str, Any]) -> None:
        self.journal.append(record)


def _policy_of(text: str, model: str, where: str) -> VersionPolicy | None:
    from retire.sources.disk.server_configs import parse_tfserving_text, tfserving_policy

    root = parse_tfserving_text(text, where)
    found = [c for c in root.model_config_list.config if c.name == model]
    return tfserving_policy(found[0].model_version_policy) if len(found) == 1 else None


@contextlib.contextmanager
def _connected(target: FileTarget) -> Iterator[Asker | None]:
    if target.connect is None:
        yield None
        return
    with target.connect() as asker:
        yield asker


def _confirmed_by(target: FileTarget, does: str = "unloads") -> str:
    if target.connect is None:
        return f"not confirmed (no --server): the server {does} them {target.unloader.picks_up}"
    return f"confirmed by {target.display} ({target.server.status_api})"


# --------------------------------------------------------------------------------------------
# Dry run


def dry_run(chosen_versions: dict[str, tuple[str, ...]], target: FileTarget, explicit: bool) -> list[str]:
    """What `--apply` would write (the file and the status are read; nothing is changed). With
    `explicit` (--only), a model the rewrite cannot change is refused (exit 6)."""
    lines = [f"would rewrite {target.config} ({target.unloader.config}), {_confirmed_by(target)}:"]
    with _connected(target) as asker:
        run = _View(target, asker)
        text = run.text()
        asked: dict[str, Change] = {}
        for model, drop in chosen_versions.items():
            change = change_for(model, drop, run.loaded(model), explicit)
            if change is None:
                lines.append(f"  {model}: nothing of {', '.join(drop)} is loaded any more")
                continue
            if change.note:
                lines.append(f"  ({change.note})")
            if change.drop:
                asked[change.model] = change
        disk = target.disk()
        rewrite = tfc.rewrite(
            text,
            {m: _numbers(c.drop) for m, c in asked.items()},
            {m: disk.get(m, frozenset()) for m in asked},
            where=target.config.name,
        )
        for r in rewrite.refusals:
            if explicit:
                raise OffloadError(
                    f"cannot unload {r.model} through {target.config}: {r.reason}; nothing was unloaded"
                )
            lines.append(f"  {r.model}: left as it is: {r.reason}")
        for c in rewrite.changes:
            kept = ", ".join(asked[c.model].keep)
            lines.append(
                f"  {c.model}: {_words(c.before)} -> {_words(c.after)} (keep {kept}; unload "
                f"{', '.join(asked[c.model].drop)})" + (f"; {c.note}" if c.note else "")
            )
    return lines


# --------------------------------------------------------------------------------------------
# Acting


def apply(
    chosen_versions: dict[str, tuple[str, ...]],
    target: FileTarget,
    archive: Path,
    roots: Iterable[str],
    fresh: Callable[[], Report],
    say: Callable[[str], None],
    explicit: bool,
) -> list[str]:
    """Rewrite the file model by model, under the locks: a fresh report and the loaded versions
    before each change, the journal before and after it, its confirmation after (--server)."""
    with locked(archive), locked_roots(tuple(roots)), _connected(target) as asker:
        run = _Run(target, asker, _journal(archive), say)
        _settle(run)
        for change in changes(chosen_versions, target.deadline, run.done, fresh, run.loaded, say, explicit):
            _unload_one(run, change, archive)
        return run.done


def _journal(archive: Path) -> Journal:
    return Journal(archive, UNLOAD_JOURNAL, _record_problem)


def _base(run: _Run, step: int, op: str, change: Change, had: dict[str, Any]) -> dict[str, Any]:
    return {
        "step": step,
        "op": op,
        "server": run.target.display,
        "kind": run.target.server.name,
        "model": change.model,
        "loaded": [*change.keep, *change.drop],
        "keep": list(change.keep),
        "versions": list(change.drop),
        "had": had,
    }


def _had(run: _Run, archive: Path, before: str, after: str, **more: Any) -> dict[str, Any]:
    """What the journal keeps of the file: its real path, both hashes, the kept copy's name."""
    kept = tfc.keep_original(run.target.config, real_archive(archive), expected=before)
    return {
        "file": {"config": run.target.real, "before": _sha(before), "after": _sha(after), "kept": kept.name},
        **more,
    }


def _unload_one(run: _Run, change: Change, archive: Path) -> None:
    target, model = run.target, change.model
    text = run.text()
    disk = target.disk().get(model, frozenset())
    rewrite = tfc.rewrite(text, {model: _numbers(change.drop)}, {model: disk}, where=target.config.name)
    if rewrite.refusals:
        run.say(f"left {model} as it is in {target.config}: {rewrite.refusals[0].reason}")
        return
    (c,) = rewrite.changes
    policy = {"before": _words(c.before), "after": _words(c.after), "note": c.note}
    base = _base(
        run, run.journal.next_step(), "unload", change, _had(run, archive, text, rewrite.text, policy=policy)
    )
    run.record({**base, "phase": "begin"})
    try:
        tfc.write_atomically(target.config, rewrite.text, expected=text)
    except OffloadError as e:
        run.record({**base, "phase": "failed", "reason": e.message})
        raise
    asked = [{"request": f"rewrite {target.config}", "policy": policy["after"]}]
    problem = run.confirm(model, gone=change.drop, there=change.keep)
    if problem is None:
        run.record({**base, "phase": "done", "asked": asked})
        run.done += [f"{model} {v}" for v in change.drop]
        also = f"; {c.note}" if c.note else ""
        run.say(
            f"unloaded {model} {', '.join(change.drop)} (kept {', '.join(change.keep)}): {target.config} "
            f"now asks for {policy['after']}, {_confirmed_by(target)}{also}"
        )
        return
    _put_back(run, {**base, "asked": asked}, problem, text, rewrite.text)


def _put_back(run: _Run, base: dict[str, Any], problem: str, original: str, wrote: str) -> None:
    """Write the original back (only over retire's own text), journal the step as failed and
    stop the run (exit 6). When even that fails the step stays begun: a re-run settles it."""
    target, model = run.target, base["model"]
    before = f"{len(run.done)} version(s) were unloaded before it; " if run.done else ""
    try:
        tfc.write_atomically(target.config, original, expected=wrote)
    except OffloadError as e:
        raise OffloadError(
            f"unloading {model} failed ({problem}) and putting {target.config} back failed too "
            f"({e.message}); {before}run `retire unload --undo` once it can be written"
        ) from None
    back = run.confirm(model, gone=(), there=tuple(base["loaded"]))
    undo = [{"request": f"restore {target.config}", "confirmed": back is None}]
    run.record({**base, "phase": "failed", "reason": problem, "undo": undo})
    late = f" (and {back})" if back else ""
    raise OffloadError(
        f"unloading {model} failed and {target.config} was put back as it was ({problem}){late}; "
        f"{before}stopped"
    )


def _settle(run: _Run) -> None:
    """Steps a crash left begun, settled by what the file holds now (module docstring)."""
    target = run.target
    for r in run.journal.unfinished():
        _ours(r, target)
        base = {k: v for k, v in r.items() if k not in ("time", "phase")}
        model, f = r["model"], r["had"]["file"]
        text = run.text()
        if _sha(text) == f["before"] != f["after"]:
            run.record({**base, "phase": "failed", "reason": "interrupted; the file is as it was before"})
            run.say(f"settled the interrupted {r['op']} of {model}: {target.config} is as it was before it")
            continue
        if _sha(text) != f["after"]:
            raise OffloadError(
                f"the journal's step {r['step']} was rewriting {target.config} for {model} when it was "
                "interrupted, and the file is now neither what it was nor what retire wrote: someone "
                f"changed it since. Put back {real_archive(_archive_of(run)) / f['kept']} if it should "
                "be as it was, then run again"
            )
        gone, there = (
            (tuple(r["versions"]), tuple(r["keep"])) if r["op"] == "unload" else ((), tuple(r["versions"]))
        )
        problem = run.confirm(model, gone=gone, there=there)
        if problem is None or r["op"] == "reload":
            settled = "completed after an interruption" + (f" ({problem})" if problem else "")
            run.record({**base, "phase": "done", "asked": [], "settled": settled})
            run.say(f"settled the interrupted {r['op']} of {model}: {target.config} holds it")
            continue
        original = _kept_text(_archive_of(run), f)
        tfc.write_atomically(target.config, original, expected=text)
        run.record({**base, "phase": "failed", "reason": f"interrupted; {problem}", "undo": []})
        run.say(f"put {target.config} back as it was: the interrupted unload of {model} is not confirmed")


def _archive_of(run: _Run) -> Path:
    return run.journal.archive


def _kept_text(archive: Path, f: dict[str, Any]) -> str:
    """The kept original a step names, read only from inside the archive (no symlink followed)
    and only if its SHA-256 is the one journaled."""
    path = real_archive(archive) / f["kept"]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise OffloadError(
            f"cannot read the kept copy {path}: {os_problem(e)}; nothing was changed"
        ) from None
    if hashlib.sha256(data).hexdigest() != f["before"]:
        raise OffloadError(f"the kept copy {path} is not what the journal says it was; nothing was changed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise OffloadError(f"the kept copy {path} is not UTF-8 text; nothing was changed") from None


def _ours(record: dict[str, Any], target: FileTarget) -> None:
    """A step retire made through this very file (never a path the journal names)."""
    f = record["had"].get("file")
    if record["kind"] != target.server.name or not isinstance(f, dict):
        raise OffloadError(
            f"the journal's step {record['step']} changed {record['model']} on {record['server']} "
            f"({record['kind']}), not through --model-config {target.config}; run with that --preset"
        )
    if f["config"] != target.real:
        raise OffloadError(
            f"the journal's step {record['step']} changed {record['model']} in {f['config']}, not in "
            f"--model-config {target.config}; run with that --model-config"
        )


# --------------------------------------------------------------------------------------------
# Undo


def undo(
    target: FileTarget,
    archive: Path,
    only: tuple[tuple[str, str], ...],
    say: Callable[[str], None],
) -> list[str]:
    """Put back what `retire unload` took out of the file (all, or exactly `only`), newest
    change first (so each kept original is put back over the text retire wrote)."""
    with locked(archive), _connected(target) as asker:
        journal = _journal(archive)
        run = _Run(target, asker, journal, say)
        _settle(run)
        steps = pending(journal)
        for rs in steps.values():
            for r in rs:
                _ours(r, target)
        wanted = set(only)
        found = {(m, v) for m, rs in steps.items() for r in rs for v in r["versions"]}
        for key in sorted(wanted - found):
            raise OffloadError(
                f"--only {key[0]}:{key[1]} was not unloaded by retire (see {journal.path}); "
                "nothing was loaded back"
            )
        if not found:
            raise OffloadError(f"nothing unloaded in {journal.path} is left to load back")
        for model, rs in sorted(steps.items(), key=lambda kv: -kv[1][-1]["step"]):
            versions = tuple(
                dict.fromkeys(v for r in rs for v in r["versions"] if not wanted or (model, v) in wanted)
            )
            if versions:
                whole = not wanted or all((model, v) in wanted for r in rs for v in r["versions"])
                _reload_one(run, archive, model, rs, versions, whole)
        return run.done


def _reload_one(
    run: _Run, archive: Path, model: str, rs: list[dict[str, Any]], versions: tuple[str, ...], whole: bool
) -> None:
    target = run.target
    text = run.text()
    loaded_now = run.loaded(model)
    disk = target.disk().get(model, frozenset())
    gone = [v for v in versions if int(v) not in disk]
    if gone:  # moved away since (`retire offload`), or a journal naming more than was unloaded
        raise OffloadError(
            f"cannot load {model} {', '.join(gone)} back: not on disk under --model-config's base_path "
            f"(restore it first); {target.config} was not changed"
        )
    new, how = None, ""
    last = rs[-1]["had"]["file"]
    if whole and len(rs) == 1 and _sha(text) == last["after"]:
        kept = _kept_text(archive, last)
        if tfc.only_adds_back(kept, text, model, _numbers(versions), disk) is None:
            new, how = kept, "put back as it was"
    if new is None:
        missing = [v for v in versions if v not in loaded_now]
        again = tfc.add_back(text, {model: _numbers(missing)}, {model: disk}, where=target.config.name)
        if again.refusals:
            raise OffloadError(
                f"cannot load {model} {', '.join(versions)} back through {target.config}: "
                f"{again.refusals[0].reason}; the file was not changed"
            )
        new = again.text
        how = f"{model} asks for {', '.join(versions)} again" if again.changed else "unchanged"
    change = Change(model, (), versions)
    base = _base(run, run.journal.next_step(), "reload", change, _had(run, archive, text, new))
    base.update(loaded=list(loaded_now), whole=whole)
    run.record({**base, "phase": "begin"})
    try:
        if new != text:
            tfc.write_atomically(target.config, new, expected=text)
    except OffloadError as e:
        run.record({**base, "phase": "failed", "reason": e.message})
        raise OffloadError(f"loading {model} back failed: {e.message}") from None
    problem = run.confirm(model, gone=(), there=tuple(dict.fromkeys((*loaded_now, *versions))))
    asked = [{"request": f"rewrite {target.config}", "how": how}]
    if problem is not None:
        run.record({**base, "phase": "failed", "reason": problem, "asked": asked})
        raise OffloadError(
            f"loading {model} back: {target.config} asks for {', '.join(versions)} again ({how}), but "
            f"{problem}; check the server, then run `retire unload --undo` again"
        )
    run.record({**base, "phase": "done", "asked": asked})
    run.done += [f"{model} {v}" for v in versions]
    run.say(f"loaded back {model} {', '.join(versions)} ({how}), {_confirmed_by(target, 'loads')}")


# --------------------------------------------------------------------------------------------
# The journal's records, read as untrusted input


def _record_problem(doc: object, archive: Path) -> str | None:
    """What is wrong with an unload journal record, or None: unload.py's checks, and for a step
    made through a file, its file fields (hashes, a kept copy's plain name that ends in the
    hash of what it keeps)."""
    problem = _api_record_problem(doc, archive)
    if problem or not isinstance(doc, dict) or "file" not in doc["had"]:
        return problem
    f = doc["had"]["file"]
    if not isinstance(f, dict):
        return "had.file is not an object"
    if not isinstance(f.get("config"), str) or not normal_absolute(f["config"]):
        return "had.file.config is not an absolute, normalised path"
    for key in ("before", "after"):
        if not isinstance(f.get(key), str) or not _SHA.fullmatch(f[key]):
            return f"had.file.{key} is not a SHA-256"
    kept = f.get("kept")
    if not isinstance(kept, str) or "/" in kept or kept in ("", ".", "..") or "\x00" in kept:
        return "had.file.kept is not a plain file name"
    if not kept.endswith(f".{f['before'][:16]}.orig"):
        return "had.file.kept is not named by the hash of what it keeps"
    return None

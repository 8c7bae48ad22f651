"""`retire unload`: ask the model server to unload idle versions while the others keep serving,
confirm it through the server's own status API, journal it, and load them back on `--undo`.
A server that unloads through a config file it polls (TF Serving) goes through unload_file.py,
which shares the choice, the re-check (`changes`), the confirmation loop and the journal below.

Safety properties (tests/actions/test_unload.py and test_unload_mlserver.py against local servers
that speak each API, tests/e2e/test_unload_triton.py and test_unload_mlserver.py against a real
Triton and a real MLServer):
- only versions `safe` in a report made at the present AND loaded according to `--server` are
  chosen; before each model's change a fresh report is made at the present and the server's
  status read again: a version no longer safe (or no longer loaded) is skipped and said;
- a model is never left without a loaded version: without --only the newest loaded version is
  kept (and said); --only naming every loaded version of a model is refused before any change;
- after each model's change the server must say, in both of its answers (Triton: the repository
  index and the per-version ready endpoint), that every unloaded version is gone and every other
  version that was loaded still is; otherwise the model is loaded back as it was and the run stops
  (exit 6), as it does when the server refuses the change or does not answer in time;
- every change is journaled (`<archive>/unload.jsonl`, fsynced, beside offload's journal and under
  the same `<archive>/.lock` and model-root locks) before it is asked and after the server
  answered: the server (URL without credentials), the model, what it had, what was asked and
  what was answered (secrets scrubbed). A crash at any point leaves a begun step: `--undo` loads
  it back, and a re-run first settles it (done if the server confirms it, else loaded back);
- the journal is read as untrusted input: a record of the wrong shape refuses the run, the undo
  goes only to the server that was changed, and of what a record says the model had only its
  version policy (Triton) or its archive names in the model store (TorchServe) are used;
- nothing of Prometheus's credentials (--header, tokens, passwords) is sent to the model server;
- with several --server replicas each model is changed on each replica in turn (the evidence
  re-checked once per model, each replica's status read again just before its change); one that
  fails puts back every replica already changed for the model (journaled reload steps), exit 6;
  `--undo` loads back on each replica a step names, all of which must be given;
- where the server reads its version policy from the repository at start (Triton's config.pbtxt:
  Unloader.durable_policy), the policy is rewritten once every replica confirmed the change, and
  put back by --undo (triton_config.py: its own journal; what it cannot rewrite is said);
- where the server unloads what leaves its repository (MLServer: Unloader.moves_folders), each
  dropped version's folder is moved into the archive by offload's mover before the change and
  back before any reload (unload_folders.py: its own journal, its own checks of the way back).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retire.actions import triton_config as durable
from retire.actions.journal import Journal
from retire.actions.locks import locked, locked_roots
from retire.actions.unload_folders import Folders
from retire.deadline import NO_DEADLINE, Deadline
from retire.errors import ConfigError, OffloadError, RetireError, ServerError
from retire.servers import canonical_version
from retire.sources.disk.inventory import unsafe_component
from retire.sources.loaded import Refused

if TYPE_CHECKING:
    from retire.advisor import Report, Row
    from retire.servers import Exchange, Server, Unloader
    from retire.sources.loaded import Asker

UNLOAD_JOURNAL = "unload.jsonl"
OPS = ("unload", "reload")
PHASES = ("begin", "done", "failed")
CONFIRM_EVERY = 0.25  # seconds between two status reads while a change settles
# How long the wanted state must hold before it is taken as confirmed: a kept version whose
# process the reload restarted (Triton does) may go down just after a first good read.
STEADY = 2.0
# The server as the journal keeps it (a URL without credentials, query or fragment): reports
# print it in a command to copy, so nothing else is taken from an untrusted journal.
_URL = re.compile(r"https?://(\*\*\*@)?[^\s\x00-\x1f\x7f-\x9f@?#]+")  # ***@: credentials redacted
LAST_TIME = 253402300799  # 9999-12-31T23:59:59Z: a journal's time that a date can show


def _plain_url(text: str) -> bool:
    return _URL.fullmatch(text) is not None


Connect = Callable[[], AbstractContextManager["Asker"]]
Say = Callable[[str], None]


@dataclass(frozen=True)
class Change:
    """One model's unload, as it would be asked: what stays loaded, what goes."""

    model: str
    keep: tuple[str, ...]
    drop: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class Target:
    """Where the changes go: the server kind, its URL (credentials only as the user gave them in
    it), and how long each wait may take."""

    server: Server
    url: str
    display: str  # the URL without credentials: messages and the journal
    connect: Connect
    timeout: float
    deadline: Deadline = NO_DEADLINE
    # (model, version) -> the base name of its file or directory on disk now (a fresh scan): a
    # reload registers only what disk says is that version (TorchServe's .mar), never what the
    # untrusted journal names.
    on_disk: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # The model roots (--model-dir): where a version folder moved out of an MLServer repository
    # may go back to (Unloader.moves_folders).
    roots: tuple[str, ...] = ()

    @property
    def unloader(self) -> Unloader:
        return unloader_of(self.server)


def unloader_of(srv: Server) -> Unloader:
    """The server's unloader, or a one-line refusal (exit 2) for servers retire cannot unload yet."""
    if srv.unloader is None:
        # A server whose versions are unloaded through the config file it polls (TF Serving:
        # `Server.config_unloader`) goes through retire/actions/unload_file.py instead (run.unload).
        raise ConfigError(
            f"retire unload cannot unload versions from --preset {srv.preset} yet (only Triton, "
            "TorchServe and MLServer through their APIs, TF Serving through --model-config); use "
            "`retire offload` or the server's own config"
        )
    return srv.unloader


def _order(version: str) -> tuple[tuple[int, object], ...]:
    """Newest last: numbers as numbers, text in natural order (TorchServe's `10.0` after `2.0`)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", version) if p)


def chosen(
    report: Report,
    only: tuple[tuple[str, str], ...] = (),
    sources: tuple[str, ...] = ("server",),
    said: str = "--server",
) -> dict[str, tuple[str, ...]]:
    """Per model, the versions to unload: safe in `report` and loaded according to --server (or
    exactly `only`, each of which must be both). `sources`: whose word on `loaded` counts
    (`Row.loaded_from`; unload_file.py also takes the config's version policy), `said`: in words."""
    rows = {(r.model, r.version): r for r in report.rows()}
    picked = []
    if only:
        for key in only:
            row = rows.get(key) or rows.get((key[0], canonical_version(key[1])))
            if row is not None and row.status.value == "unloaded":
                raise OffloadError(
                    f"--only {key[0]}:{key[1]} is already unloaded by retire (its journal in --archive-dir "
                    "says so): nothing to unload (nothing was unloaded)"
                )
            if row is None or row.status.value != "safe":
                status = row.status.value if row else "not found"
                raise OffloadError(f"--only {key[0]}:{key[1]} is {status}, not safe: nothing was unloaded")
            if row.loaded is not True or row.loaded_from not in sources:
                raise OffloadError(
                    f"--only {key[0]}:{key[1]} is not loaded according to {said}; nothing to unload "
                    "(nothing was unloaded)"
                )
            picked.append(row)
    else:
        if report.summary.unknown:
            raise OffloadError(
                f"{report.summary.unknown} version(s) are unknown (evidence incomplete); refusing to act. "
                "Fix the evidence, or name exactly the versions to unload with --only MODEL:VERSION"
            )
        picked = [r for r in report.safe_rows() if r.loaded is True and r.loaded_from in sources]
    out: dict[str, list[str]] = {}
    for r in picked:
        _name_ok(r.model, r.version)
        out.setdefault(r.model, []).append(r.version)
    return {m: tuple(sorted(set(vs), key=_order)) for m, vs in sorted(out.items())}


def _name_ok(model: str, version: str) -> None:
    for what, name in (("model name", model), ("version", version)):
        if unsafe_component(name):
            raise OffloadError(f"{what} {name!r} is not a plain name; nothing was unloaded")


def _loaded(asker: Asker, unloader: Unloader, model: str) -> tuple[str, ...]:
    """The versions the server says are loaded, refusing answers that disagree with each other."""
    state = unloader.state(asker, model)
    unsure = sorted(v for v, s in state.items() if s is None)
    if unsure:
        raise OffloadError(
            f"{asker.display} gives two answers about {model} {', '.join(unsure)} (listed loaded but not "
            "ready, or the reverse); nothing was changed for that model: run again once it has settled"
        )
    return tuple(sorted((v for v, s in state.items() if s), key=_order))


def change_for(model: str, drop: Iterable[str], loaded: tuple[str, ...], explicit: bool) -> Change | None:
    """What to ask for one model: unload `drop` among what is loaded, keeping at least one loaded
    version (the newest), or None when nothing of `drop` is loaded."""
    drop = tuple(v for v in loaded if v in set(drop))
    if not drop:
        return None
    keep = tuple(v for v in loaded if v not in drop)
    note = ""
    if not keep:
        if explicit:
            raise OffloadError(
                f"--only names every loaded version of {model} ({', '.join(drop)}); retire never leaves "
                "a model with no loaded version (unload the whole model with the server's own API if "
                "that is what you want): nothing was unloaded"
            )
        keep, drop = drop[-1:], drop[:-1]
        note = f"kept {model} {keep[0]} loaded: retire never leaves a model with no loaded version"
        if not drop:
            return Change(model, keep, (), note)
    return Change(model, keep, drop, note)


def dry_run(
    chosen_versions: dict[str, tuple[str, ...]], targets: Sequence[Target], explicit: bool
) -> list[str]:
    """What `--apply` would ask each server (replica), per model (its status is read; nothing is
    changed)."""
    lines = []
    for target in targets:
        unloader = target.unloader
        lines.append(f"would ask {target.display} ({unloader.api}):")
        with target.connect() as asker:
            for model, drop in chosen_versions.items():
                change = change_for(model, drop, _loaded(asker, unloader, model), explicit)
                if change is None:
                    lines.append(f"  {model}: nothing of {', '.join(drop)} is loaded any more")
                    continue
                if change.note:
                    lines.append(f"  ({change.note})")
                if change.drop:
                    lines.append(f"  {model}: keep {', '.join(change.keep)}; unload {', '.join(change.drop)}")
    return lines


# --------------------------------------------------------------------------------------------
# Acting


@dataclass
class _Run:
    journal: Journal
    target: Target
    asker: Asker
    say: Callable[[str], None]
    folders: Folders | None = None  # the server unloads what leaves its repository (MLServer)
    done: list[str] = field(default_factory=list)

    def record(self, record: dict[str, Any]) -> None:
        self.journal.append(record)


def apply(
    chosen_versions: dict[str, tuple[str, ...]],
    targets: Sequence[Target],
    archive: Path,
    roots: Iterable[str],
    fresh: Callable[[], Report],
    say: Callable[[str], None],
    explicit: bool,
) -> list[str]:
    """Unload, model by model and, within a model, replica by replica (each --server in turn),
    under the locks: a fresh report at the present and that server's status before each change,
    the journal before and after it, and its confirmation after. A replica that fails (refuses,
    does not answer, or does not confirm) gets its model back as it was, and so does every
    replica already changed for that model; the run stops (exit 6)."""
    with contextlib.ExitStack() as stack:
        runs = _runs(stack, targets, archive, tuple(roots), say)
        _settle(runs)
        if runs and runs[0].target.unloader.durable_policy:
            durable.settle(archive)
        done: list[str] = []
        for model, wanted in chosen_versions.items():
            _unload_everywhere(runs, model, wanted, fresh, done, explicit)
        return done


def _runs(
    stack: contextlib.ExitStack, targets: Sequence[Target], archive: Path, roots: tuple[str, ...], say: Say
) -> list[_Run]:
    """The locks, then one conversation per replica, all sharing the journal."""
    stack.enter_context(locked(archive))
    stack.enter_context(locked_roots(roots))
    journal = _journal(archive)
    runs = []
    for target in targets:
        asker = stack.enter_context(target.connect())
        runs.append(_Run(journal, target, asker, say, _folders(target, archive, roots, say)))
    return runs


def _unload_everywhere(
    runs: list[_Run],
    model: str,
    wanted: tuple[str, ...],
    fresh: Callable[[], Report],
    done: list[str],
    explicit: bool,
) -> None:
    """One model on every replica in turn. The evidence is re-checked once, before the first
    replica's change (a report made after it would see that replica's counters vanish and call
    the version unloaded, or unknown); each replica's own status is read again just before its
    change, then the change is made and confirmed. A replica that fails puts back every replica
    already changed for the model and stops the run (exit 6)."""
    if not runs:
        return
    first = runs[0].target
    many = len(runs) > 1
    if first.deadline.passed:
        raise OffloadError(
            f"the run's --deadline ({first.deadline.shown}) passed before {model} was changed; "
            f"{len(done)} version(s) were unloaded, nothing is unfinished: run the command again, "
            "or raise --deadline"
        )
    report = fresh()
    still = still_safe(report, model, wanted, runs[0].say)
    rows = {r.version: r for r in report.rows() if r.model == model}
    changed: list[tuple[_Run, Change, dict[str, Any]]] = []
    for run in runs:
        try:
            if run.target.deadline.passed:
                raise OffloadError(f"the run's --deadline ({run.target.deadline.shown}) passed")
            change = change_for(model, still, _loaded(run.asker, run.target.unloader, model), explicit)
            if change is None or not change.drop:
                if change is not None and change.note:
                    run.say(change.note)
                elif still:
                    run.say(f"skipped {model} {', '.join(still)}: not loaded any more{_on(run, many)}")
                continue
            if change.note:
                run.say(change.note)
            base = _unload_one(run, change, rows, many)
        except RetireError as e:
            if not changed:
                raise
            _put_back_replicas(changed, model, e.message, done)
            if isinstance(e, OffloadError):
                raise
            raise OffloadError(
                f"unloading {model} on {run.target.display} failed ({e.message}); it was loaded back on "
                f"the replicas already changed; {len(done)} version(s) were unloaded before it; stopped"
            ) from None
        changed.append((run, change, base))
        done += _done_words(run, model, change.drop, many)
    if changed and runs[0].target.unloader.durable_policy:
        _make_durable(runs[0], model, changed, rows)
    elif changed and runs[0].target.unloader.not_durable:
        runs[0].say(f"not made durable for {model}: {runs[0].target.unloader.not_durable}")


def _make_durable(
    run: _Run, model: str, changed: list[tuple[_Run, Change, dict[str, Any]]], rows: Mapping[str, Row]
) -> None:
    """Every replica confirmed: the model's config.pbtxt says the kept versions too, so that a
    replica started later does not load the others back. Where it cannot, said in one line; the
    in-memory unload stands (actions/triton_config.py)."""
    keep = {v for _, c, _ in changed for v in c.keep}
    drop = {v for _, c, _ in changed for v in c.drop} - keep
    paths = {Path(r.path).parent / durable.FILE for r in rows.values() if r.path}
    policies = [b["had"].get("config", {}).get("version_policy") for _, _, b in changed]
    if len(paths) != 1:
        why = f"its versions are not all in one directory with a {durable.FILE}"
    else:
        (path,) = paths
        disk = [int(v) for v, r in rows.items() if r.on_disk and v.isdigit()]
        edit = durable.plan(model, path, keep, policies, disk, drop=drop)
        if not isinstance(edit, str):
            try:
                durable.write(run.journal.archive, edit, drop, run.say)
                return
            except OffloadError as e:
                edit = e.message
        why = edit
    run.say(
        f"not made durable for {model}: {why}; a replica started later loads the versions its "
        f"{durable.FILE} picks (the in-memory unload stands)"
    )


def _on(run: _Run, many: bool) -> str:
    return f" on {run.target.display}" if many else ""


def _done_words(run: _Run, model: str, versions: Iterable[str], many: bool) -> list[str]:
    return [f"{model} {v}{_on(run, many)}" for v in versions]


def _put_back_replicas(
    changed: list[tuple[_Run, Change, dict[str, Any]]], model: str, problem: str, done: list[str]
) -> None:
    """Load `model` back as it was on every replica already changed (another one failed): each
    journaled as a reload step. One that cannot be put back stops here, saying so."""
    for run, change, base in reversed(changed):
        try:
            _reload_step(
                run, model, change.drop, base["had"], whole=True, why=f"another replica failed: {problem}"
            )
        except OffloadError as e:
            raise OffloadError(
                f"unloading {model} failed on another replica ({problem}), and loading it back on "
                f"{run.target.display} failed too ({e.message}); run `retire unload --undo` once it answers"
            ) from None
        run.say(
            f"loaded {model} {', '.join(change.drop)} back on {run.target.display}: another replica failed"
        )
        done[:] = [d for d in done if d not in _done_words(run, model, change.drop, True)]


def _reload_step(
    run: _Run, model: str, versions: tuple[str, ...], had: dict[str, Any], whole: bool, why: str
) -> None:
    """Load `versions` of `model` back on this run's server, journaled as a reload step (begin,
    then done or failed) so that reports and `--undo` know they are loaded again."""
    record = {
        "step": run.journal.next_step(),
        "op": "reload",
        "server": run.target.display,
        "kind": run.target.server.name,
        "model": model,
        "loaded": [],
        "keep": [],
        "versions": list(versions),
        "had": had,
        "whole": whole,
        "why": why,
    }
    run.record({**record, "phase": "begin"})
    try:
        asked = _bring_back(run, model, versions, had, whole, force=whole)
    except Refused as e:
        run.record({**record, "phase": "failed", "reason": e.message, "asked": [e.exchange]})
        raise OffloadError(e.message) from None
    except (ServerError, OffloadError) as e:
        run.record({**record, "phase": "failed", "reason": e.message})
        raise OffloadError(e.message) from None
    run.record({**record, "phase": "done", "asked": asked})


def changes(
    chosen_versions: dict[str, tuple[str, ...]],
    deadline: Deadline,
    done: list[str],
    fresh: Callable[[], Report],
    loaded: Callable[[str], tuple[str, ...]],
    say: Callable[[str], None],
    explicit: bool,
) -> Iterator[Change]:
    """Model by model, the change to make now: its versions still safe in a fresh report and
    loaded now (`loaded(model)`), the rest skipped and said; none once the run's deadline has
    passed (`done`: the versions unloaded so far, for that message)."""
    for model, wanted in chosen_versions.items():
        if deadline.passed:
            raise OffloadError(
                f"the run's --deadline ({deadline.shown}) passed before {model} was changed; "
                f"{len(done)} version(s) were unloaded, nothing is unfinished: run the command "
                "again, or raise --deadline"
            )
        still = still_safe(fresh(), model, wanted, say)
        change = change_for(model, still, loaded(model), explicit)
        if change is None or not change.drop:
            if change is not None and change.note:
                say(change.note)
            elif still:
                say(f"skipped {model} {', '.join(still)}: not loaded any more")
            continue
        if change.note:
            say(change.note)
        yield change


def still_safe(report: Report, model: str, wanted: Iterable[str], say: Callable[[str], None]) -> list[str]:
    """Of `wanted`, the versions of `model` still safe in `report` (made just now); the others
    are said, with why."""
    rows = {r.version: r for r in report.rows() if r.model == model}
    still = []
    for v in wanted:
        r = rows.get(v)
        if r is None or r.status.value != "safe":
            why = f"now {r.status.value} ({r.reason})" if r else "no longer in the report"
            say(f"skipped {model} {v}: {why}")
        else:
            still.append(v)
    return still


def settle(targets: Sequence[Target], archive: Path, say: Callable[[str], None]) -> None:
    """Settle what a crash left begun before versions are chosen: an interrupted folder move
    (MLServer) changes what the disk shows, and so what a report finds there."""
    with contextlib.ExitStack() as stack:
        _settle(_runs(stack, targets, archive, targets[0].roots if targets else (), say))


def _journal(archive: Path) -> Journal:
    return Journal(archive, UNLOAD_JOURNAL, _record_problem)


def _folders(
    target: Target, archive: Path, roots: Iterable[str], say: Callable[[str], None]
) -> Folders | None:
    """Where the server unloads what leaves its repository (MLServer): the folder mover, its
    interrupted moves finished first. Else None: nothing on disk changes."""
    if not target.unloader.moves_folders:
        return None
    folders = Folders(archive, roots)
    folders.settle(say)
    return folders


def _unload_one(run: _Run, change: Change, rows: Mapping[str, Row], many: bool = False) -> dict[str, Any]:
    """One model's change on one server, journaled, confirmed; its journal record (without the
    phase) once done. A failure puts the model back on this server and raises (exit 6)."""
    target, unloader, asker = run.target, run.target.unloader, run.asker
    model = change.model
    had = unloader.setup(asker, model)
    if run.folders is not None:  # where each dropped version's folder is and goes, checked now
        had = {**had, "folders": run.folders.plan(model, change.drop, rows)}
    step = run.journal.next_step()
    base = {
        "step": step,
        "op": "unload",
        "server": target.display,
        "kind": target.server.name,
        "model": model,
        "loaded": [*change.keep, *change.drop],
        "keep": list(change.keep),
        "versions": list(change.drop),
        "had": had,
    }
    run.record({**base, "phase": "begin"})
    try:
        if run.folders is not None:
            run.folders.move_out(model, had["folders"])
        asked = unloader.unload(asker, model, change.keep, change.drop, had)
        problem = _confirm(run, model, gone=change.drop, there=change.keep)
    except Refused as e:  # answered with an error (after, perhaps, an earlier call was done)
        asked, problem = [e.exchange], f"the server refused: {e.message}"
    except ServerError as e:  # no answer: the change may still land
        asked, problem = [], e.message
    except OffloadError as e:  # a folder could not be moved out (that move undid itself)
        asked, problem = [], e.message
    if problem is None:
        run.record({**base, "phase": "done", "asked": asked})
        run.done += [f"{model} {v}" for v in change.drop]
        kept = ", ".join(change.keep)
        run.say(f"unloaded {model} {', '.join(change.drop)} (kept {kept} loaded){_on(run, many)}")
        return base
    _put_back(run, {**base, "asked": asked}, problem)
    raise AssertionError("_put_back raises")


def _put_back(run: _Run, base: dict[str, Any], problem: str) -> None:
    """Load the model back as it was (every version that was loaded), asked even when the server
    says they are: a change it did not answer in time may still land, one it answered wrongly may
    have left its config changed, and a refusal may come after an earlier call was done (a
    TorchServe default moved); journal the step as failed, and stop the run (exit 6). When that
    fails too the step stays begun: `--undo` (or a re-run) finishes it."""
    model = base["model"]
    before = f"{len(run.done)} version(s) were unloaded before it; " if run.done else ""
    try:
        back = _bring_back(run, model, tuple(base["loaded"]), base["had"], whole=True, force=True)
    except (ServerError, OffloadError) as e:
        raise OffloadError(
            f"unloading {model} failed ({problem}) and loading it back failed too ({e.message}); "
            f"{before}run `retire unload --undo` once the server answers"
        ) from None
    run.record({**base, "phase": "failed", "reason": problem, "undo": back})
    raise OffloadError(f"unloading {model} failed and was undone ({problem}); {before}stopped")


def _bring_back(
    run: _Run, model: str, versions: tuple[str, ...], had: dict[str, Any], whole: bool, force: bool = False
) -> list[Exchange]:
    """Load `versions` of `model` back and confirm they (and every version loaded now) are ready.
    `force`: ask even when none is missing (the model's setup as it was, whole)."""
    unloader, asker = run.target.unloader, run.asker
    if run.folders is not None:  # back into the repository first: the load reads only that
        run.folders.move_back(model, versions)
    state = unloader.state(asker, model)
    loaded_now = tuple(v for v, s in state.items() if s)
    missing = tuple(v for v in versions if v not in loaded_now)
    if not missing and not force:
        return []
    disk = {v: name for (m, v), name in run.target.on_disk.items() if m == model}
    exchanges = unloader.reload(asker, model, missing, {**had, "on_disk": disk}, loaded_now, whole)
    problem = _confirm(run, model, gone=(), there=tuple(dict.fromkeys((*loaded_now, *versions))))
    if problem is not None:
        raise OffloadError(problem)
    return exchanges


def _confirm(run: _Run, model: str, gone: tuple[str, ...], there: tuple[str, ...]) -> str | None:
    """Wait (at most --timeout, and never past the run's --deadline) until the server says that
    every version in `gone` is unavailable and every one in `there` is loaded, and keeps saying
    so for STEADY seconds; else what is wrong."""
    t = run.target
    return confirm(
        lambda: _state(run, model, (*gone, *there)), t.display, model, gone, there, t.timeout, t.deadline
    )


def confirm(
    read: Callable[[], Mapping[str, bool | None]],
    display: str,
    model: str,
    gone: tuple[str, ...],
    there: tuple[str, ...],
    timeout: float,
    deadline: Deadline,
) -> str | None:
    """Read the state (`read`: version -> loaded, not, or unsure) until it says that every
    version in `gone` is not loaded and every one in `there` is, and keeps saying so for STEADY
    seconds, within `timeout` and the run's `deadline`; else what is wrong (`display` says who
    says so)."""
    limit, _ = deadline.limit(timeout)
    ends = time.monotonic() + max(0.0, limit)
    good_since: float | None = None
    while True:
        state = read()
        wrong = [f"{v} is still loaded" for v in gone if state.get(v) is True]
        unsure = [v for v in (*gone, *there) if v in state and state[v] is None]
        wrong += [f"{v} is unsure (its answers disagree)" for v in unsure]
        wrong += [f"{v} is not loaded" for v in there if state.get(v) is False or v not in state]
        now = time.monotonic()
        good_since = (good_since or now) if not wrong else None
        last = now + CONFIRM_EVERY > ends
        if good_since is not None and (now - good_since >= STEADY or last):
            return None  # held for STEADY seconds (or as long as the time allowed)
        if last:
            return f"{display} says of {model}: {'; '.join(wrong)}"
        time.sleep(CONFIRM_EVERY)


def _state(run: _Run, model: str, versions: Iterable[str]) -> dict[str, bool | None]:
    """The server's status of `model`, and of each of `versions` its listing leaves out where it
    has a call for one version (MLServer's index lists only what its repository holds)."""
    unloader, asker = run.target.unloader, run.asker
    state = unloader.state(asker, model)
    if unloader.ask_version is not None:
        for v in versions:
            if v not in state:
                state[v] = unloader.ask_version(asker, model, v)
    return state


def _settle(runs: list[_Run]) -> None:
    """Steps a crash left begun: done where their server confirms them, else loaded back (each
    on its own server, which must be among the --server replicas named)."""
    if not runs:
        return
    for r in runs[0].journal.unfinished():
        run = _run_for(r, runs)
        base = {k: v for k, v in r.items() if k not in ("time", "phase")}
        if r["op"] == "unload":
            problem = _confirm(run, r["model"], gone=tuple(r["versions"]), there=tuple(r["keep"]))
            if problem is None:
                settled = "confirmed after an interruption"
                run.record({**base, "phase": "done", "asked": [], "settled": settled})
                run.say(f"settled the interrupted unload of {r['model']}: the server confirms it")
                continue
            back = _bring_back(run, r["model"], tuple(r["loaded"]), r["had"], whole=True, force=True)
            run.record({**base, "phase": "failed", "reason": f"interrupted; {problem}", "undo": back})
            run.say(f"loaded {r['model']} back as it was: its unload was interrupted")
        else:
            back = _bring_back(run, r["model"], tuple(r["versions"]), r["had"], whole=bool(r["whole"]))
            run.record({**base, "phase": "done", "asked": back, "settled": "completed after an interruption"})
            run.say(f"completed the interrupted reload of {r['model']}")


def _run_for(record: dict[str, Any], runs: list[_Run]) -> _Run:
    """The replica a journal step was made on, among those named (else refused: nothing is done
    to a server the user did not name)."""
    for run in runs:
        if record["server"] == run.target.display and record["kind"] == run.target.server.name:
            return run
    named = ", ".join(f"--server {r.target.display}" for r in runs)
    kind = runs[0].target.server.name
    raise OffloadError(
        f"the journal's step {record['step']} changed {record['model']} on {record['server']} "
        f"({record['kind']}), not on {named} ({kind}); run with that --server (too) and its --preset"
    )


# --------------------------------------------------------------------------------------------
# Undo


def unloaded_versions(archive: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(model, version) -> the journal's unload steps (one per server, replicas apart) of each
    version retire unloaded and has not loaded back (`retire report` shows them `unloaded`). No
    archive yet: none; an archive that cannot be read, or is no directory: refused."""
    try:
        os.lstat(archive)
    except FileNotFoundError:
        return {}  # no archive yet: nothing unloaded
    except OSError as e:
        raise OffloadError(f"cannot read --archive-dir {archive}: {e.strerror}") from None
    try:
        is_dir = stat.S_ISDIR(os.stat(archive).st_mode)
    except OSError as e:  # a symlink to nothing: an unmounted volume, say
        raise OffloadError(f"cannot read --archive-dir {archive}: {e.strerror}") from None
    if not is_dir:
        raise OffloadError(f"--archive-dir {archive} is not a directory")
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for model, steps in pending(_journal(archive)).items():
        for r in steps:
            for v in r["versions"]:
                out.setdefault((model, v), []).append(r)
    return out


def pending(journal: Journal) -> dict[str, list[dict[str, Any]]]:
    """Per model, the unload steps whose versions are not loaded back yet on the server they were
    unloaded from (done, or begun and never finished), oldest first; from any server (the
    caller checks whose they are)."""
    out: dict[str, list[dict[str, Any]]] = {}
    back: dict[tuple[str, str, str], int] = {}  # (server, model, version) -> loaded back at step
    last: dict[int, dict[str, Any]] = {}
    for r in journal.records():
        same = last.get(r["step"])
        if same is not None and _change(same) != _change(r):  # one step is one change
            raise OffloadError(
                f"{journal.path}: step {r['step']} is journaled for two changes ({_change(same)[:3]} and "
                f"{_change(r)[:3]}); the journal is damaged or edited: nothing was changed"
            )
        last[r["step"]] = r
    for r in last.values():
        if r["op"] == "reload" and r["phase"] == "done":
            for v in r["versions"]:
                back[(r["server"], r["model"], v)] = r["step"]
    for r in sorted(last.values(), key=lambda r: r["step"]):
        if r["op"] != "unload" or r["phase"] == "failed":
            continue
        versions = [v for v in r["versions"] if back.get((r["server"], r["model"], v), 0) < r["step"]]
        if versions:
            out.setdefault(r["model"], []).append({**r, "versions": versions})
    return out


def _change(r: dict[str, Any]) -> tuple[object, ...]:
    """What a step changed: its records (begin, done, failed) all say the same."""
    return (r["op"], r["model"], r["server"], r["kind"], tuple(r["versions"]))


def undo(
    targets: Sequence[Target],
    archive: Path,
    only: tuple[tuple[str, str], ...],
    say: Callable[[str], None],
) -> list[str]:
    """Load back what `retire unload` unloaded (all, or exactly `only`) on each server it was
    unloaded from (every one must be among `targets`), and confirm each is ready."""
    for target in targets:
        target.unloader  # noqa: B018  (refuses a server retire cannot unload, before any work)
    with contextlib.ExitStack() as stack:
        runs = _runs(stack, targets, archive, targets[0].roots if targets else (), say)
        journal = runs[0].journal
        for r in journal.unfinished():
            if r["op"] == "reload":  # an interrupted undo: its versions are among those below
                _run_for(r, runs)
                base = {k: v for k, v in r.items() if k not in ("time", "phase")}
                runs[0].record({**base, "phase": "failed", "reason": "interrupted; done again below"})
        steps = pending(journal)
        for rs in steps.values():
            for r in rs:
                _run_for(r, runs)
        wanted = {(m, v) for m, v in only}
        found = {(m, v) for m, rs in steps.items() for r in rs for v in r["versions"]}
        for key in sorted(wanted - found):
            raise OffloadError(
                f"--only {key[0]}:{key[1]} was not unloaded by retire (see {journal.path}); "
                "nothing was loaded back"
            )
        lasting = runs[0].target.unloader.durable_policy
        if lasting:
            durable.settle(archive)
        files = durable.pending(archive) if lasting else {}
        if not found and not files:
            raise OffloadError(f"nothing unloaded in {journal.path} is left to load back")
        done: list[str] = []
        back: dict[str, set[str]] = {}
        for run in runs:
            mine = {m: [r for r in rs if r["server"] == run.target.display] for m, rs in steps.items()}
            for model, versions in _undo_on(
                run, {m: rs for m, rs in mine.items() if rs}, wanted, len(runs) > 1
            ):
                back.setdefault(model, set()).update(versions)
            done += run.done
        if not found:  # loaded back in memory already: only the files are left
            back = {m: durable.outstanding(rs) for m, rs in files.items()}
        if lasting:
            # A model loaded back everywhere by an earlier --undo that stopped (a crash, a
            # replica refusing another model) before its file was put back: its file now too.
            still = pending(journal)
            for model, rs in files.items():
                if model in back or model in still:
                    continue
                left = durable.outstanding(rs)
                back[model] = {v for m, v in wanted if m == model} & left if wanted else left
            _undo_durable(archive, runs[0].target.roots, {m: v for m, v in back.items() if v}, say)
        return done


def _undo_durable(archive: Path, roots: tuple[str, ...], back: dict[str, set[str]], say: Say) -> None:
    """The config.pbtxt of each model loaded back says so again (actions/triton_config.py)."""
    for model, versions in sorted(back.items()):
        if model not in durable.pending(archive):
            continue
        if not roots:
            say(
                f"{durable.FILE} of {model} still leaves out what retire unloaded: run `retire unload "
                "--undo` again with --model-dir (the repository) to put it back"
            )
            continue
        paths = [p for root in roots if (p := Path(root) / model / durable.FILE).is_file()]
        if len(paths) != 1:
            say(f"{durable.FILE} of {model} was not put back: it is not found under exactly one --model-dir")
            continue
        durable.load_back(archive, model, paths[0], versions, say)


def _undo_on(
    run: _Run, steps: dict[str, list[dict[str, Any]]], wanted: set[tuple[str, str]], many: bool
) -> list[tuple[str, tuple[str, ...]]]:
    """`undo` on one server: its own outstanding steps, model by model; what it loaded back."""
    out = []
    journal, target, say = run.journal, run.target, run.say
    for model, rs in steps.items():
        versions = tuple(
            dict.fromkeys(v for r in rs for v in r["versions"] if not wanted or (model, v) in wanted)
        )
        if not versions:
            continue
        whole = not wanted or all((model, v) in wanted for r in rs for v in r["versions"])
        had = rs[0]["had"]  # the oldest: what the model had before retire changed it
        record = {
            "step": journal.next_step(),
            "op": "reload",
            "server": target.display,
            "kind": target.server.name,
            "model": model,
            "loaded": [],
            "keep": [],
            "versions": list(versions),
            "had": had,
            "whole": whole,
        }
        run.record({**record, "phase": "begin"})
        try:
            asked = _bring_back(run, model, versions, had, whole)
        except Refused as e:
            run.record({**record, "phase": "failed", "reason": e.message, "asked": [e.exchange]})
            raise OffloadError(f"loading {model} back failed{_on(run, many)}: {e.message}") from None
        except (ServerError, OffloadError) as e:
            run.record({**record, "phase": "failed", "reason": e.message})
            raise OffloadError(f"loading {model} back failed{_on(run, many)}: {e.message}") from None
        run.record({**record, "phase": "done", "asked": asked})
        for r in journal.unfinished():  # an interrupted unload of this model, all loaded back now
            if (
                r["op"] == "unload"
                and r["model"] == model
                and r["server"] == target.display
                and set(r["versions"]) <= set(versions)
            ):
                base = {k: v for k, v in r.items() if k not in ("time", "phase")}
                run.record({**base, "phase": "failed", "reason": "interrupted; loaded back by --undo"})
        run.done += [f"{model} {v}" for v in versions]
        out.append((model, versions))
        say(f"loaded back {model} {', '.join(versions)}{_on(run, many)}")
    return out


# --------------------------------------------------------------------------------------------
# The journal's records, read as untrusted input


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and not unsafe_component(v) for v in value)


def _record_problem(doc: object, archive: Path) -> str | None:
    """What is wrong with an unload journal record, or None."""
    if not isinstance(doc, dict):
        return "not an object"
    step = doc.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        return "no step number"
    if doc.get("phase") not in PHASES or doc.get("op") not in OPS:
        return "unknown phase or op"
    for key in ("server", "kind", "model"):
        if not isinstance(doc.get(key), str):
            return f"no {key}"
    if doc["server"] and not _plain_url(doc["server"]):  # "": a file changed, no server asked
        return "server is not a plain http(s) URL (no credentials, query or fragment)"
    if unsafe_component(doc["model"]):
        return f"model {doc['model']!r} is not a safe name"
    for key in ("loaded", "keep", "versions"):
        if not _strings(doc.get(key)):
            return f"{key} is not a list of plain version names"
    if not isinstance(doc.get("had"), dict):
        return "no record of what the model had"
    when = doc.get("time")
    if not isinstance(when, int | float) or isinstance(when, bool) or not 0 <= when <= LAST_TIME:
        return "no time (seconds since 1970, before the year 10000)"
    if doc["op"] == "reload" and not isinstance(doc.get("whole"), bool):
        return "no whole flag"
    return None


def journal_records(archive: Path) -> Iterator[dict[str, Any]]:
    """The unload journal's records (tests and `--undo` read them the same way)."""
    yield from _journal(archive).records()

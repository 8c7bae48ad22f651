"""The pipeline as a library: settings -> sources (disk, Prometheus, the model server) -> advisor.

`build_report(settings, now)` is what `retire report`, `safe-list`, `plan` and `offload` each call
once; it prints nothing and never reads the clock for the evaluation instant (the caller passes
`now`), so it can be run and tested without the CLI. Diagnostics the CLI shows on stderr (the
--insecure warning, --verbose timings and ignored entries) go to the `say` callback.

Every request it makes (Prometheus, the model server) ends by the run's deadline (`--deadline`,
counted from the caller's `Deadline`, or from the call when none is given): each gets the smaller
of --timeout and the time left, and none starts once it has passed.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from retire.errors import ConfigError, OffloadError, RetireError

if TYPE_CHECKING:
    from retire.actions.unload import Target
    from retire.advisor import Report
    from retire.advisor.plan import Plan
    from retire.advisor.report import Unloaded
    from retire.config import Settings
    from retire.deadline import Deadline
    from retire.servers import Server
    from retire.sources.disk.inventory import Inventory
    from retire.sources.loaded import Loaded
    from retire.sources.prometheus.doctor import Fit
    from retire.sources.prometheus.evidence import Evidence

Progress = Callable[[int, int], None]


class Build(Protocol):
    """Makes a report for some settings (the CLI's, with its progress bar and the run's deadline)."""

    def __call__(self, settings: Settings, *, policies_protect: bool = True) -> Report: ...


def _quiet(text: str) -> None:
    pass


def build_report(
    settings: Settings,
    now: float,
    progress: Progress | None = None,
    *,
    sparklines: bool = False,
    say: Callable[[str], None] = _quiet,
    deadline: Deadline | None = None,
    policies_protect: bool = True,
) -> Report:
    """The report for `settings`, evaluated at --at or else at `now` (Unix seconds).

    sparklines: also read the hourly traffic (only the table, Markdown and mailed reports show it).
    progress(done, total): called as the per-model queries finish (a long wait on large fleets).
    deadline: the run's (a command that builds two reports, as `offload` does, passes one for both);
    by default --deadline from now.
    policies_protect: False for `retire unload` through a server config file, which changes the
    config's version policies: they then protect nothing (Inventory.policies_unprotected).
    """
    from retire.advisor import advise
    from retire.config.build import policy_from
    from retire.deadline import Deadline

    _check_sources(settings)
    if deadline is None:
        deadline = Deadline(settings.deadline)
    if settings.insecure:
        say("WARNING: --insecure: the server's TLS certificate is NOT verified")
    at = settings.at.timestamp() if settings.at else now
    started = time.monotonic()
    evidence, found = _evidence_and_disk(settings, at, deadline, progress, sparklines)
    if not policies_protect:
        found = found.policies_unprotected()
    if settings.verbose:
        say(f"{len(evidence.queries)} queries in {time.monotonic() - started:.2f}s")
        for ignored in found.ignored:
            say(f"ignored {ignored.path}: {ignored.reason}")
    answers = replicas(settings, found, deadline)
    served_now, served_on = combined(answers, found)
    policy, gone = policy_from(settings), unloaded(settings, answers)
    report = advise(
        found, evidence, policy, generated_at=now, served=served_now, unloaded=gone, served_on=served_on
    )
    return _note_other_models(settings, report)


def unloaded(
    settings: Settings, answers: Mapping[str, Loaded] | None = None
) -> dict[tuple[str, str], Unloaded]:
    """The versions `retire unload` unloaded and has not loaded back, from the journal in
    --archive-dir (none without it, or before the archive exists). `answers`: what each --server
    (by its display URL) says is loaded; a version is cleared (`Unloaded.here`) only when every
    server it was unloaded from was asked and each lists it loaded again."""
    from retire.actions.unload import unloaded_versions
    from retire.advisor.report import Unloaded

    if settings.archive_dir is None:
        return {}
    archive = settings.archive_dir
    asked = {_display(u) for u in settings.server}
    try:
        found = unloaded_versions(archive)
    except OffloadError as e:  # damaged or edited: what is unloaded cannot be known
        raise ConfigError(f"{e.message}; a report cannot tell which versions retire unloaded") from None
    out = {}
    for (model, version), steps in found.items():
        r = max(steps, key=lambda r: r["step"])  # the latest; each server's is said below
        # Quoted: it is a command to copy, and names (and the untrusted journal's URL) may hold
        # spaces or a shell's metacharacters.
        words = ["--only", f"{model}:{version}", "--archive-dir", str(archive)]
        servers = sorted({s["server"] for s in steps if s["server"]})
        where = ", ".join(servers)
        changed = r["had"].get("file")  # TF Serving: its config file was rewritten
        if isinstance(changed, dict) and isinstance(changed.get("config"), str):
            words += ["--model-config", changed["config"]]
            where = where or f"--model-config {changed['config']}"
        for s in servers if r["server"] else ():
            words += ["--server", s]
        preset = _preset_of(r["kind"], settings.preset)
        undo = " ".join(("retire unload --undo", *map(shlex.quote, words), "--preset", preset))
        # Only the servers the unload was made on can say it is loaded again (another replica's
        # word says nothing of them): every one of them asked, and each listing it loaded.
        here = bool(servers) and set(servers) <= asked and all(s["server"] for s in steps)
        if here and answers is not None:
            here = all(s in answers and answers[s].loaded(model, version) is True for s in servers)
        out[(model, version)] = Unloaded(float(r["time"]), where, undo, here)
    return out


def _preset_of(kind: str, preset: str) -> str:
    """The --preset that unloads from a server of this kind: the report's own where it is one."""
    from retire.servers import SERVERS, server

    if server(preset).name == kind:
        return server(preset).preset
    return next((p for p, s in SERVERS.items() if s.name == kind), server(preset).preset)


def _check_sources(settings: Settings) -> None:
    """A report needs a Prometheus and a model directory, and settings that agree (exit 2)."""
    from retire.config import check

    if not settings.prometheus:
        raise ConfigError(
            "no Prometheus URL: pass --prometheus http://prom:9090 or set RETIRE_PROMETHEUS_URL"
        )
    if not settings.model_dir and settings.model_base_path is None and settings.model_config is None:
        raise ConfigError(
            "no model directory: pass --model-dir /models, or --model-config, "
            "or --model-base-path with --model-name"
        )
    check(settings)


def _evidence_and_disk(
    settings: Settings, at: float, deadline: Deadline, progress: Progress | None, sparklines: bool
) -> tuple[Evidence, Inventory]:
    """The evidence at `at` and what is on disk. While Prometheus evaluates (seconds, on a large
    fleet) the disk is scanned and pandas loaded; a bad model directory is reported first, being
    the first thing to fix."""
    from retire.config.build import connection_from, params_from
    from retire.sources.prometheus import nothing
    from retire.sources.prometheus.client import PrometheusClient
    from retire.sources.prometheus.evidence import Request
    from retire.sources.prometheus.gather import gather

    params = params_from(settings)
    connection = connection_from(settings)
    threading.Thread(target=importlib.import_module, args=("pandas",), daemon=True).start()
    with (
        ThreadPoolExecutor(max_workers=1) as disk,
        PrometheusClient(
            settings.prometheus or "", timeout=settings.timeout, connection=connection, deadline=deadline
        ) as client,
    ):
        scan = disk.submit(inventory, settings)
        try:
            request = Request(
                at,
                settings.max_gap,
                split=settings.split_by_model,
                models_hint=lambda: scan.result().models,
                progress=progress,
                sparklines=sparklines,
            )
            evidence = gather(client, params, request)
            if nothing.matched_nothing(evidence):  # a typo, not a fleet: one line, not a wall of rows
                raise ConfigError(nothing.explain(client, params, evidence))
        except RetireError:
            scan.result()  # a bad model directory is the first thing to fix: report it first
            raise
        return evidence, scan.result()


def rules_file(settings: Settings, now: float, command: str, groups: tuple[str, ...]) -> str:
    """The rule file of `retire rules`. With --prometheus, made for the longest scrape interval
    among the targets exporting the metric (any target's, or the global one, where the server
    does not say), and refused (ConfigError) when the step cannot hold two of them plus a rule
    interval: such rules would record no rate. Without, the file says what it assumed."""
    from retire.config import check
    from retire.config.build import params_from
    from retire.durations import format_duration
    from retire.sources.prometheus.queries import assumed_scrape

    check(settings)
    params = params_from(settings)
    scrape = assumed_scrape(settings.step, settings.rule_interval)
    words = (
        f"Assumes every scrape interval is at most {format_duration(scrape)} (not asked: "
        "`retire rules --prometheus URL` learns it); a report checks it against the server."
    )
    if settings.prometheus:
        learned, source = learned_scrape(settings, now)
        if learned is None:
            words = f"The scrape interval was not learned ({source}): " + words[0].lower() + words[1:]
        else:
            need = 2 * learned + settings.rule_interval
            if settings.step < need:
                raise ConfigError(
                    f"--step {format_duration(settings.step)} cannot hold two scrapes (the server scrapes "
                    f"every {format_duration(learned)}) plus a rule interval "
                    f"({format_duration(settings.rule_interval)}), so the rules would record no rate: "
                    f"raise --step to {format_duration(need)} or more (or lower --rule-interval)"
                )
            params = params_from(settings, scrape=learned)
            words = f"Made for scrape intervals of at most {format_duration(learned)}, {source}."
    from retire.sources.prometheus.recording import rules_yaml

    return rules_yaml(params, command, groups, scrape=words)


def learned_scrape(settings: Settings, now: float) -> tuple[float | None, str]:
    """The longest scrape interval among the targets that exported the metric in the window
    (asked of the index: no samples read), as the server names it; and where it came from."""
    from retire.config.build import connection_from, params_from
    from retire.sources.prometheus.client import PrometheusClient
    from retire.sources.prometheus.instrument import learn

    params = params_from(settings)
    with PrometheusClient(
        settings.prometheus or "", timeout=settings.timeout, connection=connection_from(settings)
    ) as client:
        instrument = learn(client, now)
        found = client.series(params.series_selector, now - settings.window, now)
    targets = {(s.get("job", ""), s["instance"]) for s in found.series if "instance" in s}
    interval = instrument.longest_of(sorted(targets))
    if interval is None:
        return None, "; ".join(instrument.notes) or "the server names no scrape interval"
    what = (
        f"the longest of the {len(targets)} target(s) exporting the metric"
        if targets
        else "the longest it names: no target exported the metric in the window"
    )
    return interval, f"learned from {client.display_url} ({what})"


def doctor(settings: Settings, now: float) -> list[Fit]:
    """Every preset (and the metric and labels set, if no preset's), judged by what the index
    holds of its metric over the window before now (`retire doctor`)."""
    from retire.config.build import connection_from, params_from
    from retire.deadline import Deadline
    from retire.sources.prometheus import doctor as checks
    from retire.sources.prometheus.client import PrometheusClient

    params = params_from(settings)
    given = checks.Candidate("your settings", params.metric, params.model_label, params.version_label)
    with PrometheusClient(
        settings.prometheus or "",
        timeout=settings.timeout,
        connection=connection_from(settings),
        deadline=Deadline(settings.deadline),
    ) as client:
        return checks.judge(client, now - settings.window, now, checks.candidates(given), params.fleet)


def inventory(settings: Settings) -> Inventory:
    """Every model source the user named, merged (a model may appear only once)."""
    from retire.servers import server
    from retire.sources.disk.inventory import Inventory, scan_base_path, scan_model_config, scan_model_dir

    srv = server(settings.preset)
    total = Inventory((), ())
    if settings.model_config is not None:
        total = total + scan_model_config(settings.model_config, srv)
    for root in settings.model_dir:
        found = scan_model_dir(root, srv)
        if not found.versions and srv.store is None:
            _refuse_one_model_dir(root, srv)
        total = total + found
    if settings.model_base_path is not None and settings.model_name is not None:
        total = total + scan_base_path(settings.model_base_path, settings.model_name, srv)
    return total


def _refuse_one_model_dir(root: Path, srv: Server) -> None:
    """--model-dir given one model's directory instead of the root above it: no version was
    found under it, and most of its entries are version numbers. Read as a root, it would give
    only not-on-disk rows and exit 0, so it is refused with the two ways to say it right."""
    try:
        names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return  # the scan itself reports unreadable directories
    versions = [n for n in names if srv.version_of(n) is not None]
    if versions and 2 * len(versions) >= len(names):
        shown = ", ".join(versions[:5]) + (", ..." if len(versions) > 5 else "")
        raise ConfigError(
            f"--model-dir {root} looks like one model's directory, not a model root: its entries "
            f"({shown}) are version numbers. Pass the directory above it (--model-dir {root.parent}), "
            f"or this one as --model-base-path {root} --model-name {root.name}"
        )


def replicas(
    settings: Settings, found: Inventory, deadline: Deadline | None = None
) -> dict[str, Loaded] | None:
    """With --server: what each replica says is loaded (by its URL without credentials), asked
    in turn; one that cannot be reached fails the run (exit 3), as a single server does. No
    Prometheus credentials are sent to them: they are other servers."""
    if not settings.server:
        return None
    from retire.deadline import NO_DEADLINE
    from retire.servers import status_server
    from retire.sources import loaded

    out = {}
    for url in settings.server:
        out[_display(url)] = loaded.ask(
            status_server(settings.preset),
            url,
            found.models,
            timeout=settings.timeout,
            deadline=deadline or NO_DEADLINE,
        )
    return out


Replicas = tuple[tuple[str, bool | None], ...]  # per replica (its URL without credentials): loaded?


def combined(
    answers: Mapping[str, Loaded] | None, found: Inventory
) -> tuple[dict[tuple[str, str], bool] | None, dict[tuple[str, str], Replicas] | None]:
    """Per version: loaded if any replica has it loaded, not loaded if every one says not; a
    model some replica did not answer for is left out (unknown). And, with two replicas or more,
    each replica's word per version (reports show where they disagree)."""
    if answers is None:
        return None, None
    out: dict[tuple[str, str], bool] = {}
    per: dict[tuple[str, str], Replicas] = {}
    for v in found.versions:
        states = tuple((url, a.loaded(v.model, v.version)) for url, a in answers.items())
        if len(states) > 1:
            per[(v.model, v.version)] = states
        if all(state is not None for _, state in states):
            out[(v.model, v.version)] = any(state for _, state in states)
    return out, per or None


def served(
    settings: Settings, found: Inventory, deadline: Deadline | None = None
) -> dict[tuple[str, str], bool] | None:
    """With --server: what the model servers say is loaded (`combined`), for the models every
    one answered about."""
    return combined(replicas(settings, found, deadline), found)[0]


def _note_other_models(settings: Settings, report: Report) -> Report:
    """With only --model-base-path, every other model Prometheus knows is listed as not-on-disk.
    Those rows are true, but they surprise: the header says why they are there and how to leave
    them out."""
    from dataclasses import replace

    from retire.sources.prometheus.promql import quote

    if settings.model_base_path is None or settings.model_dir or settings.model_config is not None:
        return report
    t = report.table
    others = sorted(set(t.loc[~t["on_disk"].astype(bool) & (t["model"] != settings.model_name), "model"]))
    if not others:
        return report
    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    label = settings.model_label
    note = (
        f"--model-base-path covers only {settings.model_name}; {len(others)} other model(s) in "
        f"Prometheus ({shown}) are listed as not-on-disk: add --selector "
        f"'{label}={quote(settings.model_name or '')}' to leave them out"
    )
    return replace(report, header=replace(report.header, notes=(*report.header.notes, note)))


def carry_out(
    plan: Plan,
    settings: Settings,
    report: Report,
    archive_dir: Path,
    where: str,
    build: Callable[[Settings], Report],
    say: Callable[[str], None],
    deadline: Deadline,
) -> None:
    """`offload --apply`: re-check every move at the present (whatever --at says: calls since the
    plan count), then move what is still safe. `build(settings)` makes a report (with the command's
    progress bar); `deadline` is the command's, for the plan, the re-check and the moves alike."""
    from retire.actions import offload as ops

    if settings.at is not None:
        say("--at applies to the plan only: the re-check before moving is made at the present")
    present = dataclasses.replace(settings, at=None)
    roots = report.header.model_roots
    done = ops.recheck(plan, lambda: build(present), archive_dir, roots, where, say, deadline)
    if done:
        undo = f"retire restore --archive-dir {archive_dir}"
        say(f"offloaded {len(done)} version(s) to {archive_dir}; undo with `{undo}`")
    else:
        say("nothing was moved")


def unload(
    settings: Settings,
    archive_dir: Path,
    only: tuple[tuple[str, str], ...],
    *,
    apply: bool,
    undo: bool,
    build: Build,
    say: Callable[[str], None],
    show: Callable[[str], None],
    deadline: Deadline,
) -> int:
    """`retire unload`: what it would ask the server (dry run), or ask it (`apply`), or load back
    what it unloaded (`undo`). Returns how many versions were changed. Versions are chosen from
    `build(settings)` (at --at, if given); the re-check before each model's change is made at the
    present, whatever --at says."""
    from retire.actions import unload as ops
    from retire.servers import server

    if server(settings.preset).config_unloader is not None:
        return _unload_through_config(settings, archive_dir, only, apply, undo, build, say, show, deadline)
    if not settings.server:
        raise ConfigError(
            "retire unload needs --server URL: the model server to ask (and whose status says what is loaded)"
        )
    api = server(settings.preset).unloader
    if len(settings.server) > 1 and api is not None and api.moves_folders:
        raise ConfigError(
            f"retire unload --preset {settings.preset} takes one --server: its versions leave the "
            "repository every replica reads, so one unload acts on all of them; name one replica"
        )
    if undo and server(settings.preset).store is not None and not settings.model_dir:
        raise ConfigError(
            f"retire unload --undo --preset {settings.preset} needs --model-dir (the model store): "
            "only the archive it holds for a version is registered again, never one the journal names"
        )
    targets = _unload_targets(settings, deadline)
    ops.unloader_of(targets[0].server)  # refuse a server retire cannot unload before any query
    servers = " ".join(f"--server {shlex.quote(t.display)}" for t in targets)
    where = f"--archive-dir {archive_dir} {servers} --preset {server(settings.preset).preset}"
    if undo:
        done = ops.undo(targets, archive_dir, only, say)
        say(f"loaded back {len(done)} version(s)")
        return len(done)
    if apply:  # a crash's begun steps first: an interrupted folder move changes what disk shows
        ops.settle(targets, archive_dir, say)
    report = build(settings)
    chosen = ops.chosen(report, only)
    if not chosen:
        say("nothing to unload: no version is both safe and loaded according to --server")
        return 0
    for line in ops.dry_run(chosen, targets, explicit=bool(only)):
        show(line)
    if not apply:
        say("dry run: nothing was unloaded; add --apply to act")
        return 0
    if settings.at is not None:
        say("--at applies to the choice only: the re-check before each change is made at the present")
    present = dataclasses.replace(settings, at=None)
    roots = report.header.model_roots
    done = ops.apply(chosen, targets, archive_dir, roots, lambda: build(present), say, explicit=bool(only))
    if done:
        versions = len({d.split(" on ", 1)[0] for d in done})  # "model version[ on replica]"
        on = f" on {len(targets)} replicas" if len(targets) > 1 else ""
        say(f"unloaded {versions} version(s){on}; undo with `retire unload --undo {where}`")
    else:
        say("nothing was unloaded")
    return len(done)


def _unload_through_config(
    settings: Settings,
    archive_dir: Path,
    only: tuple[tuple[str, str], ...],
    apply: bool,
    undo: bool,
    build: Build,
    say: Callable[[str], None],
    show: Callable[[str], None],
    deadline: Deadline,
) -> int:
    """`retire unload` for a server that polls its config file (TF Serving): --model-config is
    rewritten (retire/actions/unload_file.py); --server, when given, only confirms. The report
    is made with the file's version policies lifted as protections: they are what changes."""
    from functools import partial

    from retire.actions import unload as api
    from retire.actions import unload_file as ops
    from retire.actions.unload_file import FileTarget
    from retire.servers import server
    from retire.sources import loaded

    srv = server(settings.preset)
    if settings.model_config is None:
        raise ConfigError(
            f"retire unload --preset {srv.preset} rewrites the model config file the server polls: "
            "pass it with --model-config FILE (the server's --model_config_file)"
        )
    url, display, connect = "", "", None
    if len(settings.server) > 1:
        raise ConfigError(
            f"retire unload --preset {srv.preset} rewrites one --model-config file and confirms on one "
            "--server: run it once per replica, each with its own file and --server"
        )
    if settings.server:
        url = settings.server[0]
        display = _display(url)
        connect = partial(loaded.conversation, srv, url, timeout=settings.timeout, deadline=deadline)
    target = FileTarget(
        srv,
        settings.model_config,
        display,
        connect,
        settings.timeout,
        deadline,
        partial(_disk_numbers, settings),
    )
    where = f"--archive-dir {archive_dir} --model-config {settings.model_config} --preset {srv.preset}"
    where += f" --server {display}" if display else ""
    if undo:
        done = ops.undo(target, archive_dir, only, say)
        say(f"loaded back {len(done)} version(s)")
        return len(done)
    report = build(settings, policies_protect=False)
    said = "--server" if display else f"the version policy in --model-config {settings.model_config.name}"
    chosen = api.chosen(report, only, ("server",) if display else ("policy",), said)
    if not chosen:
        say(f"nothing to unload: no version is both safe and loaded according to {said}")
        return 0
    for line in ops.dry_run(chosen, target, explicit=bool(only)):
        show(line)
    if not apply:
        say("dry run: nothing was changed; add --apply to act")
        return 0
    if settings.at is not None:
        say("--at applies to the choice only: the re-check before each change is made at the present")
    present = dataclasses.replace(settings, at=None)
    roots = report.header.model_roots
    fresh = partial(build, present, policies_protect=False)
    done = ops.apply(chosen, target, archive_dir, roots, fresh, say, explicit=bool(only))
    if done:
        say(f"unloaded {len(done)} version(s); undo with `retire unload --undo {where}`")
    else:
        say("nothing was unloaded")
    return len(done)


def _disk_numbers(settings: Settings) -> dict[str, frozenset[int]]:
    """Per model, the version numbers on disk now (a fresh scan): what `latest N` and `all` load."""
    out: dict[str, set[int]] = {}
    for v in inventory(settings).versions:
        out.setdefault(v.model, set()).add(int(v.version))
    return {m: frozenset(vs) for m, vs in out.items()}


def _display(url: str) -> str:
    """A --server URL as messages and the journal show it: no credentials, no query."""
    from urllib.parse import urlsplit, urlunsplit

    from retire.sources.prometheus.connection import redact_url

    parts = urlsplit(redact_url(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _unload_targets(settings: Settings, deadline: Deadline) -> tuple[Target, ...]:
    """The model servers (one per replica) `retire unload` talks to. Nothing of Prometheus's
    connection (headers, token, passwords, client certificate) is handed to them: they are other
    servers."""
    from functools import partial

    from retire.actions.unload import Target
    from retire.servers import server
    from retire.sources import loaded

    srv = server(settings.preset)
    on_disk = {(v.model, v.version): Path(v.path).name for v in inventory(settings).versions}
    roots = tuple(str(r) for r in settings.model_dir)
    out = []
    for url in settings.server:
        connect = partial(loaded.conversation, srv, url, timeout=settings.timeout, deadline=deadline)
        out.append(Target(srv, url, _display(url), connect, settings.timeout, deadline, on_disk, roots))
    return tuple(out)

"""Judge retire against the truth: worlds -> one real Prometheus -> every mode -> verdicts compared.

Only retire's CLI (its flags are the stable interface, the code changes under the oracle) and the
`retire.lab` helpers are used, so the same oracle judges any later version of retire. Each world
is run in every mode that applies to it, in-process through the real CLI
(`report --format json`), in a pool of worker processes; refusals (exit 2) are counted, not judged.

Modes other than `raw` add `--coverage 'up{world="<id>"}'`, the configuration the README asks
for, so that each isolates its own option rather than repeating raw's missing coverage.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from retire.lab.servers import LabError, Prometheus, backfill_rules, require
from tests.oracle.render import make_models, write_openmetrics
from tests.oracle.worlds import HOUR, MIN, SEC, Truth, World, generate, truth

WORLDS_PER_FILE = 40  # OpenMetrics files promtool reads whole (about 100 MB each)


# --- Modes.

Args = dict[str, str | None]  # flag -> value (None: a flag without value)


@dataclass(frozen=True)
class Mode:
    """Extra flags for a world (None: the mode does not apply to it) and the truth it is judged by."""

    name: str
    flags: Callable[[World], Args | None]
    at: Callable[[World], int] = lambda w: w.T
    window: Callable[[World], int] = lambda w: w.W
    step: Callable[[World], int] = lambda w: w.S
    threshold: Callable[[World], float] = lambda w: 0.0
    rules: bool = False
    coverage: bool = True


def _coverage(w: World) -> str:
    return f'up{{world="{w.wid}"}}'


def _duration(ms: int) -> str:
    return f"{ms // SEC}s"


def _instant(ms: int) -> str:
    return f"{ms // SEC}.{ms % SEC:03d}"


def _sel_models(w: World) -> Args:
    models = sorted({m for m, _ in w.disk})
    return {"--selector": f'{w.preset.model_label}=~"{"|".join(models)}"'}


def _sel_job(w: World) -> Args | None:
    return {"--selector": f'job="{w.jobs[0]}"'} if len(w.jobs) > 1 else None


def _rules_only(extra: Args) -> Callable[[World], Args | None]:
    return lambda w: {"--use-recording-rules": None, **extra} if w.rules else None


def _with_threshold(extra: Callable[[World], Args | None]) -> Callable[[World], Args | None]:
    def flags(w: World) -> Args | None:
        e = extra(w)
        return None if e is None else {**e, "--threshold": f"{w.threshold:.6g}"}

    return flags


MODES: tuple[Mode, ...] = (
    Mode("raw", lambda w: {}, coverage=False),
    Mode("coverage", lambda w: {}),
    Mode("threshold", _with_threshold(lambda w: {}), threshold=lambda w: w.threshold),
    Mode("sel-models", _sel_models),
    Mode("sel-versions", lambda w: {"--selector": f'{w.preset.version_label}=~"{w.preset.version_regex}"'}),
    Mode("sel-job", _sel_job),
    Mode("sel-none", lambda w: {"--selector": f'job="w{w.wid}-none"'}),
    Mode("split", lambda w: {"--split-by-model": None}),
    Mode("step-1m", lambda w: {"--step": "1m"}, step=lambda w: MIN),
    Mode("step-5m", lambda w: {"--step": "5m"}, step=lambda w: 5 * MIN),
    Mode("step-30m", lambda w: {"--step": "30m"}, step=lambda w: 30 * MIN),
    Mode("window-6h", lambda w: {"--window": "6h"}, window=lambda w: 6 * HOUR),
    Mode("window-2h", lambda w: {"--window": "2h"}, window=lambda w: 2 * HOUR),
    Mode("at", lambda w: {"--at": _instant(w.at)}, at=lambda w: w.at),
    Mode("rules", _rules_only({}), rules=True),
    Mode("rules-threshold", _with_threshold(_rules_only({})), threshold=lambda w: w.threshold, rules=True),
    Mode("rules-step-1m", _rules_only({"--step": "1m"}), step=lambda w: MIN, rules=True),
    # The counter read per model (stock TF Serving's way: `--version-label ''`): each model's
    # evidence stands for all its versions, so a version is safe only when its whole model was idle.
    Mode("per-model", lambda w: {"--version-label": ""}),
    Mode("per-model-raw", lambda w: {"--version-label": ""}, coverage=False),
    Mode(
        "per-model-threshold",
        _with_threshold(lambda w: {"--version-label": ""}),
        threshold=lambda w: w.threshold,
    ),
    Mode("per-model-split", lambda w: {"--version-label": "", "--split-by-model": None}),
    Mode(
        "per-model-window-2h", lambda w: {"--version-label": "", "--window": "2h"}, window=lambda w: 2 * HOUR
    ),
    Mode("per-model-sel-job", lambda w: None if (e := _sel_job(w)) is None else {**e, "--version-label": ""}),
)
MODE = {m.name: m for m in MODES}


def report_args(w: World, mode: Mode, url: str, models: Path) -> list[str]:
    """`retire report` for a world in a mode: the world's own metric, preset, window, step and
    instant, every version judged (--keep-latest 0), the mode's flags last."""
    flags: Args = {
        "--prometheus": url,
        "--model-dir": str(models),
        "--preset": w.preset.name,
        "--metric": w.metric,
        "--at": _instant(w.T),
        "--window": _duration(w.W),
        "--step": _duration(w.S),
        "--keep-latest": "0",
        "--format": "json",
    }
    if mode.coverage:
        flags["--coverage"] = _coverage(w)
    extra = mode.flags(w)
    assert extra is not None
    flags.update(extra)
    args = ["report"]
    for k, v in flags.items():
        args += [k] if v is None else [k, v]
    return args


def rules_args(w: World, group: str, step: int, path: Path) -> list[str]:
    return ["rules", "--preset", w.preset.name, "--metric", w.metric, "--step", _duration(step),
            "--group", group, "-o", str(path)]  # fmt: skip


# --- Running retire.


def invoke(args: Sequence[str]) -> tuple[int, str, str]:
    """retire's real CLI, in-process, with no RETIRE_* variable of ours leaking in."""
    from typer.testing import CliRunner

    from retire.cli import app

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RETIRE_")}
    try:
        result = CliRunner(env=env).invoke(app, list(args))
    except Exception:  # the oracle reports it and goes on with the other worlds
        return -1, "", traceback.format_exc()[-3000:]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text = "".join(traceback.format_exception(result.exception))
        return -1, "", text[-3000:]
    return result.exit_code, result.stdout, result.stderr


# --- The lab: one Prometheus holding every world.


@dataclass
class Lab:
    workdir: Path
    server: Prometheus
    models: dict[int, Path]

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()


def _promtool_openmetrics(om: Path, tsdb: Path) -> None:
    # Big blocks: promtool reads the whole file once per block range.
    cmd = [require("promtool"), "tsdb", "create-blocks-from", "openmetrics", "-q", "--max-block-duration=48h"]
    done = subprocess.run([*cmd, str(om), str(tsdb)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"promtool backfill failed: {done.stderr.strip()[-2000:]}")


def _promtool_rules(files: list[Path], url: str, start: int, end: int, output: Path) -> None:
    """Recorded history of `files` for evaluations in [start, end] (ms), into `output`: the lab's
    backfill, which keeps runs reproducible and whole (its docstring says how)."""
    backfill_rules(files, url, start / SEC, end / SEC, output)


def _move_blocks(source: Path, tsdb: Path) -> None:
    for block in source.iterdir():
        if (block / "meta.json").is_file():
            shutil.move(str(block), tsdb / block.name)


def rule_steps(worlds: Sequence[World], modes: Iterable[Mode]) -> dict[int, list[int]]:
    """The --step of every rules mode that applies, per world: each needs its own rules."""
    modes = [m for m in modes if m.rules]
    return {w.wid: sorted({m.step(w) for m in modes if m.flags(w) is not None}) for w in worlds}


def build_lab(
    worlds: Sequence[World],
    workdir: Path,
    say: Callable[[str], None] = print,
    steps: dict[int, list[int]] | None = None,
) -> Lab:
    """Render and backfill every world into one TSDB, start Prometheus on it, and backfill the
    recording rules of the rules worlds (for each step in `steps`, default: every rules mode's),
    as a user would: fine group, restart, rollup group (it reads the fine series), restart."""
    started = time.monotonic()
    tsdb = workdir / "tsdb"
    tsdb.mkdir(parents=True)
    models = {w.wid: make_models(workdir / "models", w) for w in worlds}
    samples = 0
    for i in range(0, len(worlds), WORLDS_PER_FILE):
        om = workdir / f"history-{i // WORLDS_PER_FILE}.om"
        samples += write_openmetrics(om, worlds[i : i + WORLDS_PER_FILE])
        _promtool_openmetrics(om, tsdb)
        om.unlink()
    say(f"oracle: {len(worlds)} worlds, {samples:,} samples backfilled in {time.monotonic() - started:.0f}s")
    server = Prometheus(tsdb, workdir / "prometheus").start()
    steps = rule_steps(worlds, MODES) if steps is None else steps
    ruled = [w for w in worlds if steps.get(w.wid)]
    if not ruled:
        return Lab(workdir, server, models)
    started = time.monotonic()
    try:
        for group in ("fine", "rollup"):
            staging = workdir / f"rules-{group}"
            staging.mkdir()
            files: dict[int, list[Path]] = {}
            for w in ruled:
                for step in steps[w.wid]:
                    path = workdir / f"w{w.wid}-{step // SEC}s-{group}.yml"  # names fix offsets
                    code, _, err = invoke(rules_args(w, group, step, path))
                    if code == 2:  # refused up front (a step the rules cannot serve): so is the report
                        continue
                    if code != 0:
                        raise LabError(f"retire rules failed for w{w.wid}: {err.strip()[-500:]}")
                    files.setdefault(w.wid, []).append(path)
            whole = [w for w in ruled if w.rule_outage is None and w.wid in files]
            if whole:
                start = min(w.history_start for w in whole)
                end = max(w.T for w in whole)
                _promtool_rules([f for w in whole for f in files[w.wid]], server.url, start, end, staging)
            for w in ruled:
                if w.rule_outage is not None and w.wid in files:  # two segments that skip the outage
                    gap_start, gap_stop = w.rule_outage
                    _promtool_rules(files[w.wid], server.url, w.history_start, gap_start, staging)
                    _promtool_rules(files[w.wid], server.url, gap_stop, w.T, staging)
            server.stop()
            _move_blocks(staging, tsdb)
            server.start()
    except BaseException:
        server.stop()
        raise
    say(f"oracle: recording rules of {len(ruled)} worlds backfilled in {time.monotonic() - started:.0f}s")
    return Lab(workdir, server, models)


# --- Judging.


@dataclass(frozen=True)
class FalseSafe:
    world: World
    mode: str
    model: str
    version: str
    calls: int
    buckets: str
    threshold: float
    step: int
    reason: str
    causes: tuple[str, ...]  # what hid the calls, as far as the world tells (see `causes`)

    def line(self) -> str:
        w = self.world
        over = f" > {self.threshold:g} req/s x {self.step // SEC}s" if self.threshold > 0 else ""
        disguised = w.disguises(self.model, self.version)
        return (
            f"FALSE SAFE seed={w.seed} world=w{w.wid} mode={self.mode} {w.preset.name} "
            f"{self.model}/{self.version}: truth {self.calls} calls, buckets [start:calls] {self.buckets}{over}; "
            f"cause: {' + '.join(self.causes)}{'; labelled ' + '+'.join(disguised) if disguised else ''}; "
            f"retire: {self.reason!r}; calls: {w.describe(self.model, self.version)}; "
            f"world: {w.faults()}; rebuild: {w.recipe}"
        )


@dataclass
class Tally:
    worlds: int = 0
    refused: int = 0
    errors: int = 0
    judged: int = 0
    false_safes: int = 0
    stored: int = 0  # false safes whose evidence some stored sample shows
    idle: int = 0
    idle_unknown: int = 0
    idle_in_use: int = 0
    idle_safe: int = 0

    def add(self, other: Tally) -> None:
        for k, v in vars(other).items():
            setattr(self, k, getattr(self, k) + v)

    def share(self, n: int) -> str:
        return f"{100 * n / self.idle:.1f}%" if self.idle else "-"


@dataclass
class Outcome:
    tallies: dict[str, Tally] = field(default_factory=dict)
    by_preset: dict[str, Tally] = field(default_factory=dict)
    false_safes: list[FalseSafe] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _buckets(t: Truth, key: tuple[str, str]) -> str:
    b = t.buckets.get(key)
    if b is None or not b.any():
        return "[]"
    n = len(b)
    return "[" + " ".join(f"T-{(n - i) * t.step // MIN}m:{int(c)}" for i, c in enumerate(b) if c) + "]"


NEVER_STORED = "never stored"


def causes(w: World, mode: Mode, key: tuple[str, str]) -> tuple[str, ...]:
    """Why retire may have missed a busy version, as far as the world tells: either no stored
    sample shows the calls (and which fault, removed alone, would have stored them), or they
    were stored and the mode's option or a restart hid them. A reading aid, not a verdict."""
    at, window, step, x = mode.at(w), mode.window(w), mode.step(w), mode.threshold(w)

    def stored(world: World) -> bool:
        return truth(world, at, window, step, seen=True).busy(key, x)

    if not stored(w):
        faults = {
            "ingestion lag": w.without(lag=True),
            "global outage": w.without(global_outages=True),
            "pod outage" + ("" if mode.coverage else " (no --coverage)"): w.without(pod_outages=True),
        }
        found = [f"{NEVER_STORED}: {name}" for name, world in faults.items() if stored(world)]
        if not found and stored(w.without(lag=True, global_outages=True, pod_outages=True)):
            found = [f"{NEVER_STORED}: {' + '.join(faults)} together"]
        return tuple(found) or (f"{NEVER_STORED}: lost in a gap ended by a restart",)
    disguised = "/".join(w.disguises(*key))
    if mode.name in ("sel-models", "sel-versions") and disguised:
        return (f"--selector leaves out its {disguised} series",)
    if mode.name == "sel-job":
        return (f"--selector leaves out a job calling it{f' ({disguised} series)' if disguised else ''}",)
    if x > 0:
        return ("busiest bucket under-read",)
    restarted = any(
        s.pod.restarts and any((st.model, st.version) == key for st in s.streams) for s in w.series
    )
    return ("restart: the counter came back at an old value",) if restarted else ("stored, missed",)


def judge_one(w: World, mode: Mode, code: int, stdout: str, stderr: str, out: Outcome) -> None:
    tally = Tally(worlds=1)
    if code == 2:
        tally.refused = 1
        out.refusals.append(f"refused seed={w.seed} world=w{w.wid} mode={mode.name}: {stderr.strip()[-300:]}")
    elif code not in (0, 4):
        tally.errors = 1
        out.errors.append(
            f"error seed={w.seed} world=w{w.wid} mode={mode.name} exit {code}: {stderr.strip()[-1500:]}"
        )
    else:
        t = truth(w, at=mode.at(w), window=mode.window(w), step=mode.step(w))
        x = mode.threshold(w)
        try:
            rows = {(r["model"], r["version"]): r for r in json.loads(stdout)["rows"]}
        except (ValueError, KeyError, TypeError):
            rows = None
        if rows is None:
            tally.errors = 1
            out.errors.append(
                f"error seed={w.seed} world=w{w.wid} mode={mode.name}: output is not a JSON report"
            )
        else:
            for key in w.disk:
                row = rows.get(key)
                if row is None or not row.get("on_disk"):
                    tally.errors += 1
                    out.errors.append(
                        f"error seed={w.seed} world=w{w.wid} mode={mode.name}: no row for {key}"
                    )
                    continue
                tally.judged += 1
                status = row["status"]
                if t.busy(key, x):
                    if status == "safe":
                        why = causes(w, mode, key)
                        tally.false_safes += 1
                        tally.stored += not why[0].startswith(NEVER_STORED)
                        row_reason = row["reason"]
                        out.false_safes.append(
                            FalseSafe(
                                w, mode.name, *key, t.calls(key), _buckets(t, key), x, t.step, row_reason, why
                            )
                        )
                else:
                    tally.idle += 1
                    tally.idle_unknown += status == "unknown"
                    tally.idle_in_use += status == "in-use"
                    tally.idle_safe += status == "safe"
    out.tallies.setdefault(mode.name, Tally()).add(tally)
    out.by_preset.setdefault(w.preset.name, Tally()).add(tally)


def run(
    lab: Lab,
    tasks: Sequence[tuple[World, Mode]],
    workers: int = 2,
    out: Outcome | None = None,
    say: Callable[[str], None] = print,
) -> Outcome:
    """Each (world, mode) through retire against the lab, judged into `out`."""
    out = Outcome() if out is None else out
    argv = [report_args(w, m, lab.url, lab.models[w.wid]) for w, m in tasks]
    results: Iterable[tuple[int, str, str]]
    pool = None
    if workers > 1 and len(tasks) > 1:
        import multiprocessing

        # fork: the workers inherit the imports (retire, pandas) instead of paying for them again
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        results = pool.map(invoke, argv, chunksize=4)
    else:
        results = map(invoke, argv)
    try:
        for i, ((w, m), (code, stdout, stderr)) in enumerate(zip(tasks, results, strict=True), 1):
            judge_one(w, m, code, stdout, stderr, out)
            if i % 1000 == 0:
                say(f"oracle: {i} of {len(tasks)} reports, {len(out.false_safes)} false safes so far")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out


def judge(
    worlds: Sequence[World],
    modes: Iterable[Mode] = MODES,
    workdir: Path | None = None,
    workers: int = 2,
    say: Callable[[str], None] = print,
) -> Outcome:
    """Every world through every mode that applies; the Prometheus is started and stopped here,
    and the work directory (a temporary one unless given) holds all it writes."""
    modes = list(modes)
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="retire-oracle-")) if workdir is None else workdir
    lab = None
    try:
        lab = build_lab(worlds, root, say, rule_steps(worlds, modes))
        tasks = [(w, m) for w in worlds for m in modes if m.flags(w) is not None]
        started = time.monotonic()
        out = run(lab, tasks, workers, Outcome({m.name: Tally() for m in modes}), say)
        say(f"oracle: {len(tasks)} reports in {time.monotonic() - started:.0f}s")
        return out
    finally:
        if lab is not None:
            lab.stop()
        if own:
            shutil.rmtree(root, ignore_errors=True)


# --- Printing.

HEADER = ("mode", "worlds", "refused", "errors", "judged", "false safes", "of which stored", "truly idle",
          "idle->unknown", "idle->in-use", "idle->safe")  # fmt: skip


def _row(name: str, t: Tally) -> tuple[str, ...]:
    counts = (t.worlds, t.refused, t.errors, t.judged, t.false_safes, t.stored, t.idle)
    shares = (t.share(t.idle_unknown), t.share(t.idle_in_use), t.share(t.idle_safe))
    return (name, *map(str, counts), *shares)


def table_rows(out: Outcome) -> list[tuple[str, ...]]:
    """One row per mode, then the total."""
    total = Tally()
    for t in out.tallies.values():
        total.add(t)
    return [_row(n, t) for n, t in out.tallies.items()] + [_row("ALL", total)]


def preset_rows(out: Outcome) -> list[tuple[str, ...]]:
    """One row per preset, over all modes."""
    return [_row(f"preset {n}", t) for n, t in sorted(out.by_preset.items())]


def cause_lines(out: Outcome) -> list[str]:
    """False safes per cause (the first cause of each), with the modes they came from."""
    by: dict[str, dict[str, int]] = {}
    for f in out.false_safes:
        modes = by.setdefault(f.causes[0], {})
        modes[f.mode] = modes.get(f.mode, 0) + 1
    return [
        f"{sum(m.values()):5}  {cause}  ({', '.join(f'{k} {v}' for k, v in m.items())})"
        for cause, m in sorted(by.items(), key=lambda kv: -sum(kv[1].values()))
    ]


def text_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(wd) if i == 0 else c.rjust(wd) for i, (c, wd) in enumerate(zip(r, widths, strict=True)))
             for r in [HEADER, *rows]]  # fmt: skip
    return "\n".join(lines)


def markdown_table(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summary(out: Outcome) -> str:
    parts = [text_table(table_rows(out)), "", text_table(preset_rows(out))]
    if out.false_safes:
        parts += ["", "false safes by cause:", *cause_lines(out)]
    if out.refusals:
        parts += ["", *out.refusals]
    if out.errors:
        parts += ["", *out.errors]
    if out.false_safes:
        parts += ["", *(f.line() for f in out.false_safes)]
    return "\n".join(parts)


def worlds_for(seed: int, n: int) -> list[World]:
    """World i of a run from base seed `seed` is generate(seed * 100000 + i)."""
    return [generate(seed * 100_000 + i) for i in range(n)]


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.oracle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", type=int, default=20, help="how many worlds (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="base seed: world i is generate(seed*100000+i)")
    parser.add_argument("--modes", default="", help=f"comma-separated, default all: {','.join(MODE)}")
    parser.add_argument("--workers", type=int, default=2, help="processes running retire (default 2)")
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown to this file")
    parser.add_argument("--workdir", type=Path, help="keep the TSDB and model trees here (must not exist)")
    args = parser.parse_args(argv)
    names = [m for m in args.modes.split(",") if m] or list(MODE)
    unknown = [m for m in names if m not in MODE]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODE)}")
    started = time.monotonic()
    worlds = worlds_for(args.seed, args.worlds)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    out = judge(worlds, [MODE[n] for n in names], args.workdir, args.workers, say)
    print(summary(out))
    say(f"oracle: done in {time.monotonic() - started:.0f}s")
    if args.markdown is not None:
        command = f"python -m tests.oracle --worlds {args.worlds} --seed {args.seed}"
        if args.modes:
            command += f" --modes {args.modes}"
        causes_text = "\n".join(f"    {line}" for line in cause_lines(out))
        args.markdown.write_text(
            f"`{command}`\n\n{markdown_table(table_rows(out))}\n\n{markdown_table(preset_rows(out))}\n\n"
            f"False safes by cause (the first cause of each; modes in brackets):\n\n{causes_text}\n"
        )
    return 1 if out.false_safes else 0

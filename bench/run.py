"""retire's benchmarks: every figure against a floor measured side by side in the same run.

    bash scripts/bench.sh                  # full suite (medium + large fleets), writes bench/RESULTS.md
    bash scripts/bench.sh --tier smoke     # small fleet only, a minute
    bash scripts/bench.sh --markdown       # print the table as Markdown
    bash scripts/bench.sh --only join      # the join figures alone (RESULTS.md is not rewritten)

Targets are ratios (these machines are shared and noisy), reported here, never asserted in tests.
Generated fleets (TSDB and model trees) are cached in bench/.cache/, keyed by their parameters.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retire.lab.fleet import Fleet, make_tree, write_openmetrics  # noqa: E402
from retire.lab.servers import Prometheus, backfill, copy_blocks, with_recorded_history  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
RETIRE = str(Path(sys.executable).parent / "retire")
SMALL = Fleet(20, 5, replicas=2)
MEDIUM = Fleet(200, 50, replicas=2)
LARGE = Fleet(1000, 100, replicas=1)  # inventory only


@dataclass
class Figure:
    name: str
    value: float
    floor: float | None
    unit: str
    target: str
    ok: bool | None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.floor if self.floor else None


def log(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def median_pair(a: Callable[[], object], b: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall time of a and b, run alternately so that machine noise hits both alike."""
    ta, tb = [], []
    for _ in range(runs):
        for fn, out in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)


def fleet_cache(fleet: Fleet, with_tsdb: bool = True) -> tuple[Path, float]:
    """Build (once) the fleet's TSDB and model tree; return the cache dir and its end instant."""
    d = CACHE / fleet.key
    done = d / "done.json"
    if done.exists() and (not with_tsdb or (d / "tsdb").exists()):
        return d, float(json.loads(done.read_text())["end"])
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    end = float(int(time.time() // 3600 * 3600 - 1800 + 17))
    if with_tsdb:
        om = d / "history.om"
        t = time.perf_counter()
        series = write_openmetrics(om, fleet, end)
        size = om.stat().st_size / 1e9
        log(f"{fleet}: wrote {series} series ({size:.1f} GB) in {time.perf_counter() - t:.0f}s")
        t = time.perf_counter()
        backfill(om, d / "tsdb")
        log(f"promtool backfill took {time.perf_counter() - t:.0f}s")
        om.unlink()
    t = time.perf_counter()
    make_tree(d / "models", fleet, end)
    log(f"model tree of {fleet.size} versions in {time.perf_counter() - t:.0f}s")
    done.write_text(json.dumps({"end": end, "fleet": repr(fleet)}))
    return d, end


def rules_cache(fleet: Fleet) -> Path:
    """Build (once) a TSDB holding the fleet's raw history plus its recording rules' history
    (`retire rules`, backfilled with promtool in two passes); return the TSDB directory."""
    d, end = fleet_cache(fleet)
    target = d / "rules"
    # The rules as this retire prints them: a cache made with other rules is made again.
    made = subprocess.run([RETIRE, "rules"], check=True, capture_output=True, text=True).stdout
    digest = hashlib.sha256(made.split("groups:", 1)[-1].encode()).hexdigest()
    if (target / "done").exists() and (target / "done").read_text() == digest:
        return target / "tsdb"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    files = {}
    for group in ("fine", "rollup"):
        files[group] = target / f"{group}.yml"
        subprocess.run([RETIRE, "rules", "--group", group, "-o", str(files[group])], check=True)
    t = time.perf_counter()
    # From 30 min after the history starts, so a rollup falls before the window (25 h of history).
    start = end - fleet.hours * 3600 + 1800
    with Prometheus(d / "tsdb", target / "raw") as raw:
        work = target / "work"
        server = with_recorded_history(
            raw.url, d / "tsdb", [files["fine"]], [files["rollup"]], start, end, work
        )
        server.stop()
    copy_blocks(work / "tsdb", target / "tsdb")
    shutil.rmtree(work)
    log(f"recording rules backfilled in {time.perf_counter() - t:.0f}s")
    if fleet != SMALL:  # the small fleet's timings are context only: spare the smoke tier 2 minutes
        compact(target / "tsdb", target / "compact")
    (target / "done").write_text(digest)
    return target / "tsdb"


def compact(tsdb: Path, workdir: Path, limit: float = 300) -> None:
    """Let Prometheus merge the backfilled blocks (dozens of 1-2 h ones), as it does within
    minutes of loading them; queries over the window would otherwise pay for every block."""

    def blocks() -> int:
        return sum(1 for b in tsdb.iterdir() if (b / "meta.json").is_file())

    before, t = blocks(), time.perf_counter()
    with Prometheus(tsdb, workdir):
        while blocks() >= before and time.perf_counter() - t < limit:
            time.sleep(5)
        time.sleep(30)  # a second compaction round, if the first one enabled it
    log(f"compacted {before} blocks into {blocks()} in {time.perf_counter() - t:.0f}s")


def run_retire(url: str, models: Path, end: float, *extra: str) -> None:
    # The report goes to a file in a temporary directory, never to os.devnull: run as root, an
    # -o that renamed over /dev/null would replace it with a regular file for the whole machine.
    with tempfile.TemporaryDirectory(prefix="retire-bench-") as tmp:
        _run_retire(url, models, end, str(Path(tmp) / "report.json"), *extra)


def _run_retire(url: str, models: Path, end: float, output: str, *extra: str) -> None:
    cmd = [
        RETIRE,
        "report",
        "--prometheus",
        url,
        "--model-dir",
        str(models),
        "--at",
        str(end),
        "--format",
        "json",
        "-o",
        output,
        *extra,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 4):
        raise SystemExit(f"retire failed: {result.stderr}")


def statuses(url: str, models: Path, end: float, *extra: str) -> str:
    """How many versions got each verdict: a check that a measured mode really worked."""
    cmd = [
        RETIRE,
        "report",
        "--prometheus",
        url,
        "--model-dir",
        str(models),
        "--at",
        str(end),
        "--format",
        "json",
        *extra,
    ]
    doc = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=False).stdout)
    return ", ".join(f"{n:,} {status}" for status, n in doc["summary"]["counts"].items() if n)


COVERAGE = ("--coverage", 'up{job="tfs"}')
RULES = ("--use-recording-rules",)


def end_to_end(fleet: Fleet, runs: int) -> list[Figure]:
    """Raw queries (with and without --coverage) on a server holding the raw history, and
    recording rules on a server that also holds the rules' history; each against its own floor."""
    d, _ = fleet_cache(fleet)
    figures = _end_to_end(fleet, d / "tsdb", d / "prometheus", runs, (("", ()), (" (--coverage)", COVERAGE)))
    figures += _end_to_end(
        fleet, rules_cache(fleet), d / "rules" / "prometheus", runs, ((" (--use-recording-rules)", RULES),)
    )
    return figures


def _end_to_end(
    fleet: Fleet, tsdb: Path, workdir: Path, runs: int, modes: tuple[tuple[str, tuple[str, ...]], ...]
) -> list[Figure]:
    import httpx

    from retire.config import resolve
    from retire.config.build import params_from
    from retire.sources.prometheus.client import PrometheusClient
    from retire.sources.prometheus.queries import render, report_queries

    d, end = fleet_cache(fleet)
    figures = []
    with Prometheus(tsdb, workdir) as server:
        params = params_from(resolve({}, env={}))
        seed = render("max_hourly_qps", params)
        http = httpx.Client(timeout=300)

        def floor() -> None:
            r = http.post(server.url + "/api/v1/query", data={"query": seed, "time": str(end)})
            r.raise_for_status()

        for label, extra in modes:
            run_retire(server.url, d / "models", end, *extra)  # warm caches
            log(f"{fleet.size:,} versions{label}: {statuses(server.url, d / 'models', end, *extra)}")
        floor()
        targeted = fleet == MEDIUM  # the target is defined on the medium fleet; others are context
        for label, extra in modes:
            t_floor, t_retire = median_pair(
                floor, lambda e=extra: run_retire(server.url, d / "models", end, *e), runs
            )
            figures.append(
                Figure(
                    f"end to end, {fleet.size:,} versions{label}",
                    t_retire,
                    t_floor,
                    "s",
                    "≤ 1.5× seed query GET" if targeted else "(context)",
                    t_retire <= 1.5 * t_floor if targeted else None,
                )
            )

        # Server-side cost: Prometheus's own evaluation time (stats=all), all queries vs the seed.
        with PrometheusClient(server.url, timeout=300, stats=True) as client:

            def cost(queries: list[tuple[str, str, float]]) -> tuple[float, int]:
                total, samples = 0.0, 0
                for kind, promql, step in queries:
                    if kind == "range":
                        r = client.query_range(promql, end - params.window, end, step)
                    else:
                        r = client.query(promql, end)
                    total += float(r.stats["timings"]["evalTotalTime"])
                    samples += int(r.stats.get("samples", {}).get("totalQueryableSamples", 0))
                return total, samples

            seed_costs = [cost([("instant", seed, 0.0)]) for _ in range(3)]
            seed_time = statistics.median(c[0] for c in seed_costs)
            for label, extra in modes:
                flags = (
                    {"coverage": extra[1]}
                    if extra == COVERAGE
                    else {"use_recording_rules": True}
                    if extra
                    else {}
                )
                planned = [
                    (q.kind, q.promql, q.step) for q in report_queries(params_from(resolve(flags, env={})))
                ]
                runs_cost = [cost(planned) for _ in range(3)]
                total = statistics.median(c[0] for c in runs_cost)
                samples = runs_cost[0][1]
                figures.append(
                    Figure(
                        f"server eval time, all queries{label}",
                        total,
                        seed_time,
                        "s",
                        "≤ 2× seed query",
                        total <= 2 * seed_time,
                        f"{samples:,} samples touched (seed: {seed_costs[0][1]:,})",
                    )
                )
    return figures


def startup(runs: int) -> list[Figure]:
    def call(*args: str) -> Callable[[], None]:
        return lambda: subprocess.run(list(args), capture_output=True, check=True)

    figures = []
    for what in ("--version", "--help"):
        t_py, t_retire = median_pair(call(sys.executable, "-c", "pass"), call(RETIRE, what), runs)
        figures.append(
            Figure(
                f"start-up: retire {what}",
                t_retire,
                t_py,
                "s",
                "≤ python -c pass + 0.15 s",
                t_retire - t_py <= 0.15,
                f"+{(t_retire - t_py) * 1000:.0f} ms over bare Python",
            )
        )
    return figures


def inventory(fleet: Fleet, runs: int) -> Figure:
    from retire.servers import DEFAULT_PRESET, server
    from retire.sources.disk.inventory import scan_model_dir

    d, _ = fleet_cache(fleet, with_tsdb=False)
    models = d / "models"
    t_du, t_scan = median_pair(
        lambda: subprocess.run(["du", "-sb", str(models)], capture_output=True, check=True),
        lambda: scan_model_dir(models, server(DEFAULT_PRESET)),
        runs,
    )
    return Figure(
        f"inventory scan, {fleet.size:,} versions", t_scan, t_du, "s", "≤ 1.5× du -sb", t_scan <= 1.5 * t_du
    )


def synthetic(n: int) -> tuple[object, object]:
    """An inventory and evidence for n versions (10 per model), shaped like a real fleet, built
    as columns (what the scan and the evidence parser hand the advisor)."""
    import numpy as np

    from retire.sources.columns import Columns, categorical
    from retire.sources.disk.inventory import DiskVersion, Inventory
    from retire.sources.prometheus.evidence import Coverage, Evidence, SeriesFacts, VersionValue

    end = 1_800_000_000.0
    i = np.arange(n)
    models = [f"model_{k:06d}" for k in (i // 10).tolist()]
    numbers = i % 10 + 1
    versions = [str(v) for v in numbers.tolist()]
    times = np.full(n, end - 9e6)
    disk = {  # models and versions as categorical codes
        "model": categorical(models),
        "version": categorical(versions),
        "number": numbers,
        "path": [f"/models/{m}/{v}" for m, v in zip(models, versions, strict=True)],
        "size_bytes": np.full(n, 1000),
        "mtime": times,
        "ctime": times,
    }
    seen = np.flatnonzero(i % 3 != 0)  # two thirds of the versions have traffic data
    seen_models = [models[k] for k in seen.tolist()]
    seen_versions = [versions[k] for k in seen.tolist()]
    value = (seen % 5).astype(float)
    seen_models, seen_versions = categorical(seen_models), categorical(seen_versions)
    qps = Columns(VersionValue, {"model": seen_models, "version": seen_versions, "value": value})
    series = Columns(
        SeriesFacts,
        {
            "model": seen_models,
            "version": seen_versions,
            # a series' identity is its label set as data, as evidence parses it
            "series": [
                (("instance", "tfs-0"), ("model", m), ("version", v))
                for m, v in zip(seen_models.tolist(), seen_versions.tolist(), strict=True)
            ],
            "start": np.full(len(seen), 100.0),
            "last": 100.0 + value,
        },
    )
    evidence = Evidence(
        "http://prom:9090", end, 86400, 3600, (), qps, qps, series, Coverage(True, 'up{job="tfs"}', 900)
    )
    return Inventory((Path("/models"),), Columns(DiskVersion, disk)), evidence


def join(n: int, runs: int = 3) -> tuple[float, int]:
    """The median time of `runs` joins (this machine is shared: one run is mostly noise), and the
    peak memory of one."""
    from retire.advisor import Policy, advise

    inv, ev = synthetic(n)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        advise(inv, ev, Policy(), generated_at=0)  # type: ignore[arg-type]
        times.append(time.perf_counter() - t)
    elapsed = statistics.median(times)
    tracemalloc.start()
    advise(inv, ev, Policy(), generated_at=0)  # type: ignore[arg-type]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = int(
        next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1]
    )
    prom = subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem / 2**20:.0f} GiB, Python {platform.python_version()}, "
        f"{prom}, {platform.platform()}"
    )


def render(figures: list[Figure], markdown: bool) -> str:
    header = ("figure", "value", "floor", "ratio", "target", "pass", "note")
    rows = []
    for f in figures:
        ok = "—" if f.ok is None else ("PASS" if f.ok else "FAIL")
        floor = "" if f.floor is None else f"{f.floor:.3f} {f.unit}"
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}×"
        rows.append((f.name, f"{f.value:.3f} {f.unit}", floor, ratio, f.target, ok, f.note))
    if markdown or not sys.stdout.isatty():
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    import io

    from rich.console import Console
    from rich.table import Table

    table = Table(*header)
    for r in rows:
        table.add_row(*r, style="green" if r[5] == "PASS" else "red" if r[5] == "FAIL" else None)
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, width=200).print(table)
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tier", choices=("smoke", "full"), default="full")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--only", choices=("join",), help="only these figures, printed (RESULTS.md is not rewritten)"
    )
    args = parser.parse_args()
    smoke = args.tier == "smoke"
    figures: list[Figure] = []

    if args.only is None:
        log("start-up")
        figures += startup(20 if not smoke else 5)
        log("end to end, small fleet")
        figures += end_to_end(SMALL, args.runs)
        if not smoke:
            log("end to end, medium fleet (first run generates and backfills it: minutes)")
            figures += end_to_end(MEDIUM, args.runs)
        log("inventory")
        figures.append(inventory(SMALL if smoke else LARGE, 3))

    sizes = (1_000, 10_000, 100_000) if smoke else (10_000, 100_000, 1_000_000)
    per_row = []
    for n in sizes:
        log(f"join and verdicts, {n:,} rows")
        elapsed, peak = join(n)
        per_row.append(elapsed / n)
        if n == sizes[-1]:
            figures.append(
                Figure(f"join and verdicts, {n:,} rows", elapsed, None, "s", "< 2 s", elapsed < 2 or smoke)
            )
            figures.append(
                Figure(
                    f"join and verdicts, {n:,} rows, peak memory",
                    peak / 2**20,
                    None,
                    "MiB",
                    "< 1024 MiB",
                    peak < 2**30,
                )
            )
    growth = per_row[-1] / per_row[0]
    scaling = (
        f"time per version: {' → '.join(f'{x * 1e6:.1f} µs' for x in per_row)} at "
        f"{' / '.join(f'{n:,}' for n in sizes)} rows ({growth:.2f}× per-row cost over "
        f"{sizes[-1] // sizes[0]}× rows: {'linear' if growth < 1.5 else 'worse than linear'})"
    )
    figures.append(
        Figure(
            "scaling of join and verdicts",
            growth,
            None,
            "×",
            "per-row cost flat (< 1.5×)",
            growth < 1.5,
            scaling,
        )
    )

    table = render(figures, args.markdown)
    print(table)
    if not smoke and args.only is None:
        results = ROOT / "bench" / "RESULTS.md"
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        results.write_text(
            f"# Benchmark results\n\nRun {stamp} with `bash scripts/bench.sh`.\n\nMachine: {machine()}\n\n"
            f"Fleets: medium = {MEDIUM}, large = {LARGE} (inventory only).\n\n{render(figures, True)}\n"
            f"{scaling}\n\nWhat the profiles showed, what changed and why some targets are missed: "
            "[ANALYSIS.md](ANALYSIS.md).\n"
        )
        log(f"wrote {results}")
    return 0 if all(f.ok is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())

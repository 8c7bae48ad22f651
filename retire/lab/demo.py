"""The README's first command: a real Prometheus with a day of synthetic TF Serving traffic, an
example model directory, and `retire report` run against them.

    python -m retire.lab.demo [--workdir .demo] [--keep | --stop]

`--keep` leaves Prometheus running and prints the commands to explore it further and how to
stop it (`--stop`).
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

from retire.lab.live import LiveExporter, scrape_config, wait_scraped
from retire.lab.servers import LabError, Prometheus, backfill
from retire.lab.synth import HOUR, Scenario, Traffic, VersionDir, make_model_tree, write_openmetrics

MIN = 60.0
DAY = 24 * HOUR

DEMO = Scenario(
    name="demo",
    traffic=(
        # half_plus_two: an old version whose callers moved away 30 h ago, a busy one on two pods.
        Traffic("half_plus_two", "1", "tfs-0", qps=0.5, stop=-30 * HOUR),
        Traffic("half_plus_two", "3", "tfs-0", qps=2.0),
        Traffic("half_plus_two", "3", "tfs-1", qps=1.5),
        Traffic("half_plus_two", "4", "tfs-1", qps=0.2, start=-5 * HOUR),
        # resnet50: a steady version, and one called exactly once 3 h ago (the seed query says 0).
        Traffic("resnet50", "1", "tfs-0", qps=0.5),
        Traffic("resnet50", "2", "tfs-1", calls=(-3 * HOUR,)),
        # bert: calls only in the last 20 minutes (after the last full hour), and a version whose
        # directory was already removed while clients still call it.
        Traffic("bert", "7", "tfs-0", qps=1.0, start=-20 * MIN),
        Traffic("bert", "6", "tfs-0", qps=0.3),
    ),
    disk=(
        VersionDir("half_plus_two", "1", age=40 * DAY, size=180_000_000),
        VersionDir("half_plus_two", "2", age=20 * DAY, size=190_000_000),
        VersionDir("half_plus_two", "3", age=10 * DAY, size=200_000_000),
        VersionDir("half_plus_two", "4", age=6 * HOUR, size=210_000_000),
        VersionDir("resnet50", "0001", age=30 * DAY, size=98_000_000),
        VersionDir("resnet50", "2", age=9 * DAY, size=99_000_000),
        VersionDir("resnet50", "3", age=1 * HOUR, size=99_500_000),
        VersionDir("resnet50", "tmp-upload", age=1 * HOUR),
        VersionDir("resnet50", "README.txt", is_file=True),
        VersionDir("bert", "5", age=60 * DAY, size=420_000_000),
        VersionDir("bert", "7", age=3 * DAY, size=430_000_000),
    ),
)


# Two more servers' data beside it, for the README's preset examples (other metrics and jobs, so
# the TF Serving report above never sees them): a Triton repository with config.pbtxt policies and
# a TorchServe model store whose unversioned calls are labelled "default".
TRITON_DEMO = Scenario(
    name="triton",
    job="triton",
    metric="nv_inference_request_success",
    model_label="model",
    version_label="version",
    traffic=(
        Traffic("detector", "1", zero_init=True),  # loaded, never called: flat 0
        Traffic("detector", "2", qps=3.0, zero_init=True),
        Traffic("detector", "3", zero_init=True),  # newest, loaded, idle
        Traffic("ranker", "7", qps=0.5, zero_init=True),
    ),
    disk=(
        VersionDir(
            "detector",
            "config.pbtxt",
            is_file=True,
            content='name: "detector"\nversion_policy: { latest: { num_versions: 2 } }\n',
        ),
        *(VersionDir("detector", str(v), age=10 * DAY) for v in (1, 2, 3)),
        VersionDir(
            "ranker",
            "config.pbtxt",
            is_file=True,
            content='name: "ranker"\nversion_policy: { specific: { versions: [5, 7] } }\n',
        ),
        *(VersionDir("ranker", str(v), age=10 * DAY) for v in (5, 6, 7, 8)),
        VersionDir("ranker", "08", age=10 * DAY),  # leading zero: Triton ignores it
    ),
)
TORCHSERVE_DEMO = Scenario(
    name="torchserve",
    job="torchserve",
    metric="ts_inference_requests_total",
    traffic=(
        Traffic("bert", "1.0", calls=(-40 * HOUR,)),  # flat all window
        Traffic("bert", "2.0", qps=1.0),
        Traffic("resnet", "default", qps=0.2),  # requests that name no version
    ),
    disk=(
        VersionDir("", "bert_v1.mar", age=10 * DAY, manifest=("bert", "1.0")),
        VersionDir("", "bert_v2.mar", age=10 * DAY, manifest=("bert", "2.0")),
        VersionDir("", "bert_v10.mar", age=10 * DAY, manifest=("bert", "10.0")),
        VersionDir("", "resnet_a.mar", age=10 * DAY, manifest=("resnet", "1.0")),
        VersionDir("", "resnet_b.mar", age=10 * DAY, manifest=("resnet", "2.0")),
    ),
)


def build(workdir: Path, end: float) -> tuple[Path, Path]:
    """Write the history and the model tree; return (tsdb, model root)."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    om = workdir / "history.om"
    write_openmetrics(om, [DEMO, TRITON_DEMO, TORCHSERVE_DEMO], end=end, history=26 * HOUR, interval=60)
    tsdb = workdir / "tsdb"
    backfill(om, tsdb)
    om.unlink()
    models = workdir / "models"
    make_model_tree(models, DEMO, end)
    make_model_tree(workdir / "triton", TRITON_DEMO, end)
    make_model_tree(workdir / "model-store", TORCHSERVE_DEMO, end)
    return tsdb, models


def _retire_command() -> str:
    """How to call the `retire` this demo runs: the console script beside this interpreter
    (./.venv/bin/retire after scripts/demo.sh), relative to here when it is below here."""
    script = Path(sys.executable).parent / "retire"
    if not script.exists():
        return "retire"
    try:
        return str(script.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def explore_lines(url: str, workdir: Path, pid: int | str) -> list[str]:
    """What `--keep` prints: commands that work as printed, from the current directory."""
    retire = _retire_command()
    models = workdir / "models"
    return [
        f"demo: Prometheus left running at {url} (pid {pid}). Explore it from this directory:",
        f"  export RETIRE_PROMETHEUS_URL={url} RETIRE_MODEL_DIR={models}",
        f"  {retire} report --coverage 'up{{job=\"tfs\"}}'   # the report again",
        f"  {retire} report --format json          # every number and the queries, for scripts",
        f"  {retire} safe-list                     # only the safe versions, for scripts",
        f"  {retire} query                         # the PromQL report sends",
        f"  {retire} plan --archive-dir {workdir / 'archive'}   # what offload would move",
        f"  {url}/graph                            # Prometheus's own UI",
        f"demo: stop it with: bash scripts/demo.sh --stop --workdir {workdir}   (or: kill {pid})",
    ]


def stop(workdir: Path) -> bool:
    """Stop a Prometheus this demo left running in `workdir` (and its live exporter), by the pids
    it wrote there. Checks each process is still the one started first: a pid can be reused."""
    _stop_pid(workdir / "live.pid", "retire.lab.live", str((workdir / "live").absolute()))
    return _stop_pid(workdir / "prometheus.pid", "prometheus", str((workdir / "tsdb").absolute()))


def _stop_pid(pid_file: Path, program: str, path: str) -> bool:
    import os
    import signal

    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return False
    if program not in cmdline or path not in cmdline:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    for _ in range(200):
        if not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid):
            break
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True


def _state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "gone"
    return next((line for line in status.splitlines() if line.startswith("State:")), "").lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path(".demo"))
    parser.add_argument("--keep", action="store_true", help="leave Prometheus running")
    parser.add_argument("--stop", action="store_true", help="stop the Prometheus --keep left running")
    args = parser.parse_args(argv)
    if args.stop:
        stopped = stop(args.workdir)
        print(
            f"demo: {'stopped' if stopped else 'no demo Prometheus running for'} {args.workdir}",
            file=sys.stderr,
        )
        return 0
    stop(args.workdir)  # a previous --keep: its TSDB is about to be rewritten

    end = math.floor(time.time() / 60) * 60
    print(f"demo: writing 26 h of synthetic TF Serving traffic into {args.workdir}/ ...", file=sys.stderr)
    tsdb, models = build(args.workdir, end)
    # The data keeps arriving after the history, as in production: a live exporter continues
    # the counters, and Prometheus scrapes it (a report at the present needs samples up to it).
    scenarios = [DEMO, TRITON_DEMO, TORCHSERVE_DEMO]
    live = LiveExporter(scenarios, end, (args.workdir / "live").absolute()).start()
    server = Prometheus(
        tsdb.absolute(), args.workdir / "prometheus", scrape=scrape_config(scenarios, live.address)
    ).start()
    try:
        wait_scraped(server.url, "up", end)
    except LabError:
        server.stop()
        live.stop()
        raise
    print(f"demo: Prometheus ready at {server.url}", file=sys.stderr)
    command = [
        "retire",
        "report",
        "--prometheus",
        server.url,
        "--model-dir",
        str(models),
        "--coverage",
        'up{job="tfs"}',
    ]
    print(
        "demo: $ " + " ".join(c if " " not in c and "{" not in c else f"'{c}'" for c in command),
        file=sys.stderr,
    )
    try:
        code = subprocess.call([sys.executable, "-m", "retire", *command[1:]])
    finally:
        if args.keep:
            pid = server.process.pid if server.process else "?"
            (args.workdir / "prometheus.pid").write_text(f"{pid}\n")
            (args.workdir / "live.pid").write_text(f"{live.process.pid if live.process else '?'}\n")
            print("\n".join(explore_lines(server.url, args.workdir, pid)), file=sys.stderr)
        else:
            server.stop()
            live.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())

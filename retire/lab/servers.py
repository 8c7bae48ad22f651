"""Real metrics servers on 127.0.0.1 with backfilled history, for the demo, tests and benchmarks.

Prometheus: history is written by `promtool tsdb create-blocks-from openmetrics` into an empty TSDB
before it starts, the documented way to backfill; it is given no scrape jobs, so the only data is
that history. VictoriaMetrics: history is sent to its `/api/v1/import/prometheus` endpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import httpx


class LabError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise LabError(f"{binary} is not installed; run scripts/setup.sh (it installs the Debian packages)")
    return path


def backfill(openmetrics: Path, tsdb: Path) -> None:
    tsdb.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [require("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(tsdb)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise LabError(f"promtool backfill failed: {result.stderr.strip()[-2000:]}")


def backfill_rules(rule_files: list[Path], url: str, start: float, end: float, tsdb: Path) -> None:
    """Recorded history for `rule_files`, evaluated by the Prometheus at `url` from `start` to
    `end` (Unix seconds), as blocks in `tsdb`.

    Two traits of promtool 2.42 would make this depend on where the files are and when it runs:
    it offsets a group's evaluations by a hash of the rule file's path as given, so the files are
    copied under their own names into a directory of their own and named relatively (the same
    offsets every run); and it stops, silently, when its first 2-hour block holds no evaluation
    of a group (an hourly rollup starting late in a block), so the range is cut at the first
    2-hour boundary, and a part with no evaluation yields nothing, as it should."""
    tsdb.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in rule_files]
    if len(set(names)) != len(names):
        raise LabError(f"rule files to backfill together need distinct names: {names}")
    block = 2 * 3600
    first = math.ceil(start / block) * block
    parts = [(start, first - 1), (first, end)] if start < first < end else [(start, end)]
    with tempfile.TemporaryDirectory(prefix="rules-", dir=tsdb.parent) as staging:
        for f in rule_files:
            shutil.copyfile(f, Path(staging) / f.name)
        for a, b in parts:
            if math.ceil(a) >= math.floor(b):
                continue  # promtool takes whole seconds: nothing to evaluate within one
            result = subprocess.run(
                [
                    require("promtool"),
                    "tsdb",
                    "create-blocks-from",
                    "rules",
                    "--quiet",
                    f"--start={math.ceil(a)}",
                    f"--end={math.floor(b)}",
                    f"--url={url}",
                    f"--output-dir={tsdb.absolute()}",
                    *names,
                ],
                capture_output=True,
                text=True,
                check=False,
                cwd=staging,
            )
            if result.returncode != 0 or "error" in result.stderr.lower():
                raise LabError(
                    f"promtool rule backfill failed: {(result.stderr or result.stdout).strip()[-2000:]}"
                )


def copy_blocks(source: Path, target: Path) -> None:
    """The persisted blocks of a TSDB (not its WAL or lock), e.g. of a running server."""
    target.mkdir(parents=True, exist_ok=True)
    for block in source.iterdir():
        if (block / "meta.json").is_file():
            shutil.copytree(block, target / block.name)


def with_recorded_history(
    raw_url: str,
    raw_tsdb: Path,
    fine_rules: list[Path],
    rollup_rules: list[Path],
    start: float,
    end: float,
    workdir: Path,
    skip: tuple[float, float] | None = None,
    rollup_skip: tuple[float, float] | None = None,
    loaded: tuple[Path, ...] = (),
) -> Prometheus:
    """A Prometheus (started) holding the raw history plus the recording rules' history from
    `start` to `end`. Backfilled in two passes, as a user would: the rollup rules read the fine
    rules' series back from a Prometheus that already has them.

    `skip`, `rollup_skip`: a span in which the fine rules (the rollups) did not run, an outage of
    rule evaluation: that history is backfilled in two segments around it (the second with its
    own phase, as after a restart). `loaded`: rule files the started server also loads and
    evaluates (its rules API lists them)."""
    tsdb = workdir / "tsdb"
    copy_blocks(raw_tsdb, tsdb)
    for a, b in _segments(start, end, skip):  # overlapping blocks are fine: Prometheus merges them
        backfill_rules(fine_rules, raw_url, a, b, tsdb)
    server = Prometheus(tsdb, workdir / "prometheus").start()
    try:
        for a, b in _segments(start, end, rollup_skip):
            backfill_rules(rollup_rules, server.url, a, b, tsdb)
    finally:
        server.stop()
    # A restart loads the new blocks at once.
    return Prometheus(tsdb, workdir / "prometheus", rules=loaded).start()


def _segments(start: float, end: float, skip: tuple[float, float] | None) -> list[tuple[float, float]]:
    return [(start, end)] if skip is None else [(start, skip[0]), (skip[1], end)]


def log_tail(text: str) -> str:
    return text[-2000:]


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 60.0,
    summarize: Callable[[str], str] = log_tail,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabError(f"server exited with {process.returncode}: {summarize(log.read_text())}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise LabError(f"server not ready after {timeout:.0f}s: {summarize(log.read_text())}")


class _Server:
    """A server process on a free 127.0.0.1 port, started and stopped by the lab."""

    name = ""
    ready_path = ""
    port_taken = "address already in use"  # what the log says when a port was taken meanwhile
    ready_timeout = 60.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def summarize(self, log: str) -> str:
        """What of the server's log explains a failed start."""
        return log_tail(log)

    def popen_env(self) -> dict[str, str] | None:
        """The server's environment; None: ours."""
        return None

    def popen_cwd(self) -> Path | None:
        """The server's working directory (servers that write beside it); None: ours."""
        return None

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / f"{self.name}.log"
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            with log.open("wb") as out:
                self.process = subprocess.Popen(
                    self.command(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=self.popen_env(),
                    cwd=self.popen_cwd(),
                )
            try:
                wait_ready(self.url + self.ready_path, self.process, log, self.ready_timeout, self.summarize)
                return self
            except LabError:
                self.stop()
                if self.port_taken not in log.read_text():
                    raise
        raise LabError(f"could not find a free port for {self.name}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def scrape_job(job: str, target: str, interval: str = "1s") -> str:
    """One `scrape_configs` entry (YAML) for `Prometheus(scrape=...)`: `target` is host:port."""
    return (
        f"  - job_name: {job}\n    scrape_interval: {interval}\n    scrape_timeout: {interval}\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )


class Prometheus(_Server):
    """Prometheus serving an existing (backfilled) TSDB directory; with no `scrape` jobs (the
    default) its only data is that history, with `scrape` (entries from `scrape_job`) it also
    scrapes live targets, as in production."""

    name = "prometheus"
    ready_path = "/-/ready"

    def __init__(
        self, tsdb: Path, workdir: Path, *flags: str, scrape: str = "", rules: tuple[Path, ...] = ()
    ) -> None:
        super().__init__(workdir)
        self.tsdb = tsdb
        self.flags = flags
        self.scrape = scrape
        self.rules = rules  # rule files it loads and evaluates (`rule_files:`)

    def command(self) -> list[str]:
        config = self.workdir / "prometheus.yml"
        jobs = f"scrape_configs:\n{self.scrape}" if self.scrape else ""
        files = "".join(f"  - {json.dumps(str(r))}\n" for r in self.rules)
        loaded = f"rule_files:\n{files}" if files else ""
        config.write_text("global:\n  scrape_interval: 60s\n" + loaded + jobs)
        return [
            require("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.tsdb}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=30d",
            *self.flags,
        ]


class FileExporter(_Server):
    """`python -m http.server` serving a fixed `/metrics` file: a scrape target whose counters
    stand still, for tests that need real scrapes (staleness markers, federation)."""

    name = "exporter"
    ready_path = "/metrics"

    def __init__(self, workdir: Path, text: str) -> None:
        super().__init__(workdir)
        self.text = text

    def command(self) -> list[str]:
        (self.workdir / "metrics").write_text(self.text)
        return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(self.workdir),
                str(self.port)]  # fmt: skip


class VictoriaMetrics(_Server):
    """Single-node VictoriaMetrics; `load()` imports history in Prometheus text format."""

    name = "victoria-metrics"
    ready_path = "/health"

    def command(self) -> list[str]:
        return [
            require("victoria-metrics"),
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir / 'data'}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",  # imported history is final; show all of it
            "-search.disableCache",
        ]

    def load(self, import_text: Path) -> None:
        with import_text.open("rb") as f:
            response = httpx.post(self.url + "/api/v1/import/prometheus", content=f, timeout=600)
        if response.status_code >= 300:
            raise LabError(f"import failed: HTTP {response.status_code} {response.text[:500]}")
        httpx.get(self.url + "/internal/force_flush", timeout=60)

"""Real Prometheus on 127.0.0.1 with backfilled history, for the demo, tests and benchmarks.

History is written by `promtool tsdb create-blocks-from openmetrics` into an empty TSDB before
Prometheus starts, which is the documented way to backfill. Prometheus is given no scrape jobs,
so the only data is the backfilled history.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

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
        raise LabError(f"{binary} is not installed; run scripts/setup.sh (Debian package 'prometheus')")
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


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise LabError(f"server not ready after {timeout:.0f}s: {log.read_text()[-2000:]}")


class Prometheus:
    """A Prometheus process serving a TSDB directory. Use as a context manager."""

    def __init__(self, tsdb: Path, workdir: Path) -> None:
        self.tsdb = tsdb
        self.workdir = workdir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 60s\n")
        log = self.workdir / "prometheus.log"
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            with log.open("wb") as out:
                self.process = subprocess.Popen(
                    [
                        require("prometheus"),
                        f"--config.file={config}",
                        f"--storage.tsdb.path={self.tsdb}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--storage.tsdb.retention.time=30d",
                        "--web.enable-lifecycle",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                wait_ready(self.url + "/-/ready", self.process, log)
                return self
            except LabError:
                self.stop()
                if "address already in use" not in log.read_text():
                    raise
        raise LabError("could not find a free port for Prometheus")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""`retire unload --preset mlserver` against a real Seldon MLServer 1.7.1 (retire/lab/mlserver.py)
scraped every second by a real Prometheus: three versions of `ranker`, each holding 40 MB once
loaded, with calls to version 1 all along; `solo`, one idle version. `unload --apply` must move
the folders of ranker 2 and 3 out of the repository and load ranker again, so that MLServer's own
API says they are gone (the index no longer lists them, their ready endpoint answers 404) while
ranker 1 stays ready and keeps counting its calls; solo keeps its only version. `--undo` moves
them back and loads them again: ready. One module-scoped MLServer (about 35 s to start on this
machine) and a 20-second window of real scrapes.

Memory, measured as the summed RSS of MLServer's process group (its inference worker included):
the two dropped versions' 80 MB are given back (407 MB -> 326 MB here, 81.6 MB freed), and taken
again by the undo (408 MB). Calls to the kept version all succeeded through both changes: MLServer
loads a kept version again beside its old instance (the new one is loaded before the old one
goes), so while the load runs the kept versions hold their memory twice.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from retire.lab.mlserver import MLServer, write_model
from retire.lab.servers import Prometheus, scrape_job
from tests.conftest import run_cli
from tests.e2e.test_mlserver import query, wait_for

pytestmark = [pytest.mark.mlserver, pytest.mark.timeout(400)]

MB = 40
BIG_PY = f'''\
from echo import Echo


class Big(Echo):
    """An echo model that holds {MB} MB once loaded (every page touched), and drops it at unload."""

    async def load(self) -> bool:
        self.blob = bytearray({MB} * 1024 * 1024)
        for i in range(0, len(self.blob), 4096):
            self.blob[i] = 1
        return True

    async def unload(self) -> bool:
        self.blob = bytearray()
        return True
'''


@dataclass
class Lab:
    server: MLServer
    prometheus: str
    repo: Path
    root: Path
    calls: list[int] = field(default_factory=list)  # answers to the busy client, in order


def group_rss_kb(server: MLServer) -> int:
    """The summed VmRSS of MLServer's process group (it and its inference workers), from /proc."""
    assert server.process is not None
    group = os.getpgid(server.process.pid)
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != group:
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "VmRSS" in fields:
            total += int(fields["VmRSS"].split()[0])
    return total


def settled_rss_kb(server: MLServer) -> int:
    """RSS once it stops moving (a worker frees an old instance just after the load answers)."""
    last = group_rss_kb(server)
    for _ in range(20):
        time.sleep(0.5)
        now = group_rss_kb(server)
        if abs(now - last) < 2048:
            return now
        last = now
    return last


def ready(server: MLServer, model: str, version: str) -> int:
    return server.ready(model, version)


def listed(server: MLServer, model: str) -> set[str]:
    return {e.get("version") or "None" for e in server.index() if e["name"] == model}


def calls_counted(lab: Lab) -> float:
    found = query(lab.prometheus, 'model_infer_request_duration_count{model="ranker",version="1"}')
    return float(found[0]["value"][1]) if found else 0.0  # type: ignore[index]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("unload_mlserver")
    repo = root / "repo"
    for v in ("1", "2", "3"):
        folder = write_model(repo, f"ranker-{v}", "ranker", v, implementation="big.Big")
        (folder / "big.py").write_text(BIG_PY)
    write_model(repo, "solo-1", "solo", "1")
    stop = threading.Event()
    with MLServer(repo, root / "mlserver") as server:
        job = scrape_job("mlserver", server.metrics_target, "1s")
        with Prometheus(root / "tsdb", root / "prometheus", scrape=job) as prometheus:
            wait_for("the first scrape", lambda: bool(query(prometheus.url, 'up{job="mlserver"} == 1')))
            lab = Lab(server, prometheus.url, repo, root)

            def busy() -> None:
                while not stop.wait(0.5):
                    lab.calls.append(server.infer("ranker", "1"))

            thread = threading.Thread(target=busy, daemon=True)
            thread.start()
            time.sleep(24)  # one full window of scrapes, with calls to ranker 1 all along
            try:
                yield lab
            finally:
                stop.set()
                thread.join(10)


def args(lab: Lab, *extra: str) -> list[str]:
    return [
        "unload",
        "--prometheus",
        lab.prometheus,
        "--model-dir",
        str(lab.repo),
        "--preset",
        "mlserver",
        "--window",
        "20s",
        "--step",
        "5s",
        "--max-gap",
        "5s",
        "--min-age",
        "0",
        "--keep-latest",
        "0",
        "--coverage",
        'up{job="mlserver"}',
        "--server",
        lab.server.url,
        "--archive-dir",
        str(lab.root / "archive"),
        "--timeout",
        "60s",
        *extra,
    ]


def test_unload_frees_the_idle_versions_and_undo_brings_them_back(lab: Lab) -> None:
    server = lab.server
    assert listed(server, "ranker") == {"1", "2", "3"}
    assert [ready(server, "ranker", v) for v in ("1", "2", "3")] == [200, 200, 200]
    dry = run_cli(*args(lab))
    assert dry.exit_code == 0, dry.stderr
    assert "  ranker: keep 1; unload 2, 3\n" in dry.stdout, dry.stdout
    assert "kept solo 1 loaded" in dry.stdout
    before = settled_rss_kb(server)
    counted = calls_counted(lab)

    run = run_cli(*args(lab, "--apply"))
    assert run.exit_code == 0, run.stderr
    assert "unloaded ranker 2, 3 (kept 1 loaded)" in run.stderr
    # MLServer's own API: gone from the index (their folders left) and not ready; 1 ready.
    assert listed(server, "ranker") == {"1"} and listed(server, "solo") == {"1"}
    assert [ready(server, "ranker", v) for v in ("1", "2", "3")] == [200, 404, 404]
    assert sorted(p.name for p in lab.repo.iterdir()) == ["ranker-1", "solo-1"]
    assert sorted(p.name for p in (lab.root / "archive" / "models" / "ranker").iterdir()) == [
        "ranker-2",
        "ranker-3",
    ]
    assert server.infer("ranker", "2") == 404  # a call to an unloaded version fails, uncounted
    after = settled_rss_kb(server)
    # The busy version kept answering through the change, and is still counted.
    n = len(lab.calls)
    wait_for("more calls to ranker 1", lambda: len(lab.calls) >= n + 3)
    assert set(lab.calls) == {200}, lab.calls
    wait_for("ranker 1 counted on", lambda: calls_counted(lab) > counted + 3)
    freed = before - after
    line = f"MLServer RSS: {before} kB -> {after} kB after unloading 2 x {MB} MB ({freed} kB freed)"
    print(line)
    (lab.root / "memory.txt").write_text(line + "\n")
    assert freed > 1.5 * MB * 1024, line  # both dropped versions' memory given back

    back = run_cli(
        "unload",
        "--undo",
        "--preset",
        "mlserver",
        "--server",
        server.url,
        "--model-dir",
        str(lab.repo),
        "--archive-dir",
        str(lab.root / "archive"),
        "--timeout",
        "60s",
    )
    assert back.exit_code == 0, back.stderr
    assert "loaded back 2 version(s)" in back.stderr
    assert listed(server, "ranker") == {"1", "2", "3"}
    assert [ready(server, "ranker", v) for v in ("1", "2", "3")] == [200, 200, 200]
    for v in ("1", "2", "3"):
        assert server.infer("ranker", v) == 200
    restored = settled_rss_kb(server)
    print(f"MLServer RSS after --undo: {restored} kB")
    assert restored - after > 1.5 * MB * 1024
    assert set(lab.calls) == {200}


def test_the_repository_is_as_it_was(lab: Lab) -> None:
    assert sorted(p.name for p in lab.repo.iterdir()) == ["ranker-1", "ranker-2", "ranker-3", "solo-1"]
    assert httpx.get(f"{lab.server.url}/v2/health/ready", timeout=10).status_code == 200

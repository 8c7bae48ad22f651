"""plan / offload / restore end to end: real Prometheus, real directories, real crashes."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from retire.lab.servers import Prometheus, free_port
from tests import scenarios as sc
from tests.conftest import Lab, run_cli
from tests.offload_lab import args as present_args
from tests.offload_lab import cli

pytestmark = pytest.mark.prometheus
SAFE_BASIC = {("alpha", "2"), ("alpha", "3"), ("beta", "2")}


def snapshot(root: Path) -> dict[str, str]:
    """Every file and directory below root, with file contents hashed: 'byte for byte'."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            out[str(Path(dirpath, d).relative_to(root)) + "/"] = "dir"
        for f in files:
            p = Path(dirpath, f)
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def tree(present_lab: Lab, tmp_path: Path) -> Path:
    """A private copy of the basic scenario's model tree (these tests move things), with a
    history that ends now: `offload --apply` re-checks at the present."""
    dst = tmp_path / "models"
    shutil.copytree(present_lab.models(sc.BASIC), dst, symlinks=True)
    return dst


def args(lab: Lab, tree: Path, archive: Path, *extra: str) -> list[str]:
    return present_args(lab, tree, archive, *extra)


def test_plan_lists_only_safe_versions_and_changes_nothing(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    before = snapshot(tree)
    run = run_cli("plan", *args(present_lab, tree, tmp_path / "archive"))
    assert run.exit_code == 0, run.stderr
    moved = {
        tuple(line.split()[1].rsplit("/", 2)[-2:])
        for line in run.stdout.splitlines()
        if line.strip().startswith("mv ")
    }
    assert moved == SAFE_BASIC
    assert "config:" not in run.stdout  # no --model-config: no config to speak of (issue 17)
    plan = json.loads(
        run_cli("plan", *args(present_lab, tree, tmp_path / "archive", "--format", "json")).stdout
    )
    assert {(m["model"], m["version"]) for m in plan["moves"]} == SAFE_BASIC
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", plan["evaluated_at"])  # RFC 3339 (issue 17)
    assert snapshot(tree) == before and not (tmp_path / "archive").exists()


def test_dry_run_then_apply_then_restore_is_byte_for_byte(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    before = snapshot(tree)
    dry = run_cli("offload", *args(present_lab, tree, archive))
    assert dry.exit_code == 0 and "dry run: nothing was moved" in dry.stderr and snapshot(tree) == before
    run = run_cli("offload", *args(present_lab, tree, archive, "--apply"))
    assert run.exit_code == 0, run.stderr
    assert (
        not (tree / "alpha" / "2").exists()
        and (archive / "models" / "alpha" / "2" / "saved_model.pb").exists()
    )
    assert (tree / "alpha" / "1").exists()  # in use: untouched
    records = [json.loads(x) for x in (archive / "journal.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["op"]) for r in records[:2]] == [("begin", "offload"), ("done", "offload")]
    back = run_cli("restore", "--archive-dir", str(archive))
    assert back.exit_code == 0, back.stderr
    assert snapshot(tree) == before


def test_restore_one_version(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    assert run_cli("offload", *args(present_lab, tree, archive, "--apply")).exit_code == 0
    run = run_cli("restore", "--archive-dir", str(archive), "--model", "alpha", "--version", "3")
    assert run.exit_code == 0, run.stderr
    assert (tree / "alpha" / "3").exists() and not (tree / "alpha" / "2").exists()


def test_refuses_archive_inside_model_root_and_unknown_evidence(
    lab: Lab, present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    inside = run_cli("offload", *args(present_lab, tree, tree / "archive", "--apply"))
    assert inside.exit_code == 6 and "overlaps the model root" in inside.stderr
    hole = lab.args(sc.HOLE)
    refused = run_cli("offload", *hole, "--archive-dir", str(tmp_path / "a"), "--apply", "--keep-latest", "0")
    assert refused.exit_code == 6 and "unknown (evidence incomplete); refusing" in refused.stderr
    not_safe = run_cli("offload", *args(present_lab, tree, tmp_path / "b", "--only", "alpha:1", "--apply"))
    assert not_safe.exit_code == 6 and "--only alpha:1 is in-use" in not_safe.stderr


def test_only_moves_exactly_the_named_versions(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    run = run_cli("offload", *args(present_lab, tree, tmp_path / "archive", "--only", "beta:2", "--apply"))
    assert run.exit_code == 0, run.stderr
    assert not (tree / "beta" / "2").exists() and (tree / "alpha" / "2").exists()


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_crash_then_resume_then_restore(
    present_lab: Lab, tree: Path, tmp_path: Path, crash_after: int
) -> None:
    archive = tmp_path / "archive"
    before = snapshot(tree)
    crashed = cli(
        "offload",
        *args(present_lab, tree, archive, "--apply"),
        crash_after=crash_after,
    )
    assert crashed.returncode == -9  # SIGKILL: no cleanup ran
    mid_step = crash_after % 2 == 1  # killed after a step's "begin", before its "done"
    if mid_step:
        blocked = run_cli("restore", "--archive-dir", str(archive))
        assert blocked.exit_code == 6 and "--resume" in blocked.stderr
    resumed = cli("offload", "--archive-dir", str(archive), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert ("1 unfinished step(s) completed" if mid_step else "nothing to resume") in resumed.stderr
    moved = {(p.parent.name, p.name) for p in (archive / "models").glob("*/*")}
    assert moved <= SAFE_BASIC and len(moved) == (crash_after + 1) // 2
    assert cli("restore", "--archive-dir", str(archive)).returncode == 0
    assert snapshot(tree) == before


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no tmpfs at /dev/shm for a second filesystem")
def test_archive_on_another_filesystem_with_a_crash_mid_copy(present_lab: Lab, tree: Path) -> None:
    shm = Path("/dev/shm")
    if os.stat(shm).st_dev == os.stat(tree).st_dev:
        pytest.skip("/dev/shm is on the same filesystem as the model tree here")
    archive = shm / f"retire-test-{os.getpid()}-{time.monotonic_ns()}"
    before = snapshot(tree)
    try:
        crashed = cli(
            "offload",
            *args(present_lab, tree, archive, "--apply"),
            crash_after=1,
        )
        assert crashed.returncode == -9
        assert cli("offload", "--archive-dir", str(archive), "--resume").returncode == 0
        run = cli("offload", *args(present_lab, tree, archive, "--apply"))
        assert run.returncode == 0, run.stderr
        assert {(p.parent.name, p.name) for p in (archive / "models").glob("*/*")} == SAFE_BASIC
        assert not list(archive.rglob("*.partial"))
        assert cli("restore", "--archive-dir", str(archive)).returncode == 0
        assert snapshot(tree) == before
    finally:
        shutil.rmtree(archive, ignore_errors=True)


def test_concurrent_runs_are_refused(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    before = snapshot(tree)
    with (archive / ".lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another run holds the lock
        run = cli("offload", *args(present_lab, tree, archive, "--apply"))
    assert run.returncode == 6 and "another retire offload or restore is running" in run.stderr
    assert snapshot(tree) == before


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to drop to nobody"
)
def test_read_only_model_root_changes_nothing(present_lab: Lab, tree: Path) -> None:
    import tempfile

    # pytest's own temp dirs are private to root; `nobody` must be able to read the tree.
    base = Path(tempfile.mkdtemp(prefix="retire-ro-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        shutil.copytree(tree, base / "models", symlinks=True)
        archive = base / "archive"
        archive.mkdir()
        os.chmod(archive, 0o777)
        probe = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-c",
                "import retire.cli",
            ],
            capture_output=True,
            text=True,
        )
        if probe.returncode != 0:  # e.g. a checkout under a private (0700) directory
            pytest.skip(f"user nobody cannot import retire from this checkout: {probe.stderr.strip()[-200:]}")
        _read_only_run(present_lab, base / "models", archive)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _read_only_run(lab: Lab, tree: Path, archive: Path) -> None:
    before = snapshot(tree)
    run = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "retire",
            "offload",
            *args(lab, tree, archive, "--apply"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(archive)},
    )
    assert run.returncode == 6, run.stderr
    assert "not writable" in run.stderr and "Traceback" not in run.stderr
    assert snapshot(tree) == before
    assert not (archive / "journal.jsonl").exists() or "begin" not in (archive / "journal.jsonl").read_text()


# --- a call arriving between the plan and --apply: live scraping of a real local exporter --------


class Exporter:
    """A TF Serving-like /monitoring/prometheus/metrics endpoint whose counters the test drives."""

    def __init__(self) -> None:
        self.counts = {"1": 5, "2": 0}
        lock = threading.Lock()
        exporter = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    body = "".join(
                        f':tensorflow:serving:model_call_count{{model_name="live",model_version="{v}"}} {n}\n'
                        for v, n in exporter.counts.items()
                    ).encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def call(self, version: str) -> None:
        self.counts[version] += 1


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Exporter]]:
    exporter = Exporter()
    port = exporter.server.server_address[1]
    config = (
        f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n"
        f"scrape_configs:\n  - job_name: tfs\n    metrics_path: /monitoring/prometheus/metrics\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    server = Prometheus(tmp_path / "tsdb", tmp_path / "prom")
    server.command = lambda: [  # type: ignore[method-assign]
        shutil.which("prometheus") or "prometheus",
        f"--config.file={tmp_path / 'live.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{server.port}",
    ]
    (tmp_path / "live.yml").write_text(config)
    with server:
        # Wait until 16 s of scrapes exist, so the tests' 10 s window is fully covered by data
        # (the first scrape comes seconds after Prometheus says it is ready).
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = httpx.post(
                server.url + "/api/v1/query", data={"query": 'count_over_time(up{job="tfs"}[30s])'}
            ).json()
            if r["data"]["result"] and float(r["data"]["result"][0]["value"][1]) >= 16:
                break
            time.sleep(0.5)
        yield server.url, exporter
    exporter.server.shutdown()


def test_a_call_between_plan_and_apply_stops_that_move(live: tuple[str, Exporter], tmp_path: Path) -> None:
    url, exporter = live
    tree = tmp_path / "models" / "live"
    for v in ("1", "2", "3"):
        (tree / v).mkdir(parents=True)
        (tree / v / "saved_model.pb").write_bytes(b"x" * 10)
    archive = tmp_path / "archive"
    common = [
        "--prometheus",
        url,
        "--model-dir",
        str(tmp_path / "models"),
        "--window",
        "10s",
        "--step",
        "2s",
        "--max-gap",
        "4s",
        "--min-age",
        "0",
        "--keep-latest",
        "0",
        "--coverage",
        'up{job="tfs"}',
        "--archive-dir",
        str(archive),
    ]
    plan = run_cli("plan", *common, "--format", "json", "-o", str(tmp_path / "plan.json"))
    assert plan.exit_code == 0, plan.stderr
    planned = {m["version"] for m in json.loads((tmp_path / "plan.json").read_text())["moves"]}
    assert planned == {"1", "2", "3"}  # 1 and 2: flat counters (at 5 and 0), 3: no series
    exporter.call("1")  # a client calls version 1 after the plan was made
    time.sleep(3)  # scraped
    run = run_cli("offload", *common, "--plan", str(tmp_path / "plan.json"), "--apply")
    assert run.exit_code == 0, run.stderr
    assert "skipped live 1: now in-use" in run.stderr
    assert (tree / "1").exists() and not (tree / "2").exists() and not (tree / "3").exists()

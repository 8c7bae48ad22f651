"""`retire unload` against a real Triton Inference Server (explicit model control, Python backend)
scraped every second by a real Prometheus: three versions of one model, traffic on version 2.
`unload --apply` must leave 2 ready and 1, 3 unavailable, through Triton's own API, and give back
the memory of their Python backend stub processes; `--undo` must bring them back ready.

Seen here: the memory of the stubs went from about 114 MB (three) to 41 MB (one), and the kept
version's stub is restarted by the load (a new process), so a call in flight may not survive the
change. One module-scoped Triton; the window is one minute of real scrapes (about 75 s of waiting).

A second Triton on the same repository (`Lab.replica`, scraped too, never called) plays a second
replica behind a Service: `--server` given twice unloads on both, `--undo` loads back on both.
The change lasts: ranker's config.pbtxt is rewritten, so a third Triton started on the repository
afterwards loads only the kept version, and loads every version again once `--undo` put the file
back.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from retire.lab.servers import Prometheus, scrape_job
from retire.lab.triton import CONFIG, Triton, policy_text, write_model
from tests.conftest import Run, run_cli
from tests.e2e.test_triton import query, wait_for

pytestmark = [pytest.mark.triton, pytest.mark.timeout(600)]


@dataclass
class Lab:
    triton: Triton
    prometheus: str
    repo: Path
    root: Path
    replica: Triton


def ready(triton: Triton, version: str) -> bool:
    return httpx.get(f"{triton.url}/v2/models/ranker/versions/{version}/ready", timeout=10).status_code == 200


def replica_args(lab: Lab, *extra: str) -> list[str]:
    """`args` with both replicas as --server, and an archive of its own."""
    out = args(lab, *extra)
    out[out.index("--archive-dir") + 1] = str(lab.root / "archive-replicas")
    i = out.index("--server")
    out[i : i + 2] = ["--server", lab.triton.url, "--server", lab.replica.url]
    return out


def index_states(triton: Triton) -> dict[str, str]:
    return {m["version"]: m["state"] for m in triton.index() if m["name"] == "ranker"}


def stub_rss_kb(triton: Triton) -> dict[int, int]:
    """VmRSS of each Python backend stub process of Triton (its children), from /proc."""
    assert triton.process is not None
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if b"triton_python_backend_stub" not in cmdline:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["PPid"]) == triton.process.pid and "VmRSS" in fields:
            out[int(pid)] = int(fields["VmRSS"].split()[0])
    return out


def group_rss_kb(triton: Triton) -> int:
    """VmRSS of the tritonserver process and of its children (the Python backend stubs)."""
    assert triton.process is not None
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        ours = int(pid) == triton.process.pid or int(fields.get("PPid", "0")) == triton.process.pid
        if ours and "VmRSS" in fields:
            total += int(fields["VmRSS"].split()[0])
    return total


README = Path(__file__).resolve().parents[2] / "docs" / "deployments.md"
MEMORY_MARK = "<!-- unload-memory -->"


def memory_block(
    command: str, stderr: str, rss: dict[str, tuple[int, int, int]], names: dict[str, str]
) -> str:
    """What docs/deployments.md "What retiring frees" shows: the command, retire's own lines (URLs and paths
    as the README spells them), and the RSS of each replica's Triton process group measured here."""
    lines = [command, *(line for line in stderr.splitlines() if line)]
    lines.append("# RSS of each Triton process group (tritonserver + Python backend stubs), from /proc:")
    lines.append(f"#   {'replica':<22}{'before':>8}{'after unload':>15}{'after --undo':>15}")
    for url, (before, after, back) in rss.items():
        mb = [f"{kb / 1024:.0f} MB" for kb in (before, after, back)]
        lines.append(f"#   {url:<22}{mb[0]:>8}{mb[1]:>15}{mb[2]:>15}")
    text = "\n".join(lines) + "\n"
    for real, shown in names.items():
        text = text.replace(real, shown)
    return text


def check_readme_quotes(measured: str) -> None:
    """The README's block is this run's output: retire's lines exactly, the numbers masked (they
    vary from run to run), and the README's own numbers freeing memory as this run's did."""
    shown = README.read_text(encoding="utf-8").split(f"{MEMORY_MARK}\n```\n", 1)[1].split("```", 1)[0]

    def masked(text: str) -> str:
        return re.sub(r"\d+ MB", "N MB", text)

    assert masked(shown) == masked(measured), f"refresh README's {MEMORY_MARK} block with:\n{measured}"
    for text in (shown, measured):
        for row in re.findall(r"(\d+) MB +(\d+) MB +(\d+) MB", text):
            before, after, back = map(int, row)
            assert after < before and back > after, text


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("unload")
    repo = root / "repo"
    write_model(repo, "ranker", [1, 2, 3], "all")
    stop = threading.Event()
    with Triton(repo, root / "triton") as triton, Triton(repo, root / "replica") as replica:
        job = scrape_job("triton", triton.metrics_target, "1s")
        job += scrape_job("replica", replica.metrics_target, "1s")
        with Prometheus(root / "tsdb", root / "prometheus", scrape=job) as prometheus:
            both = 'count(up{job=~"triton|replica"} == 1) == 2'
            wait_for("the first scrapes", lambda: bool(query(prometheus.url, both)))

            def busy() -> None:
                while not stop.wait(3.0):
                    triton.infer("ranker", 2)

            thread = threading.Thread(target=busy, daemon=True)
            thread.start()
            time.sleep(75)  # one full window of scrapes, with calls to version 2 all along
            try:
                yield Lab(triton, prometheus.url, repo, root, replica)
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
        "triton",
        "--window",
        "1m",
        "--step",
        "15s",
        "--max-gap",
        "40s",  # a hole is a run of empty 10 s intervals plus one on each side (gaps.py): 30 s certain
        "--min-age",
        "0",
        "--keep-latest",
        "0",
        "--coverage",
        'up{job=~"triton|replica"}',
        "--server",
        lab.triton.url,
        "--archive-dir",
        str(lab.root / "archive"),
        "--timeout",
        "60s",
        *extra,
    ]


def test_unload_frees_the_idle_versions_and_undo_brings_them_back(lab: Lab) -> None:
    triton = lab.triton
    assert index_states(triton) == {"1": "READY", "2": "READY", "3": "READY"}
    dry = run_cli(*args(lab))
    assert dry.exit_code == 0, dry.stderr
    assert "  ranker: keep 2; unload 1, 3\n" in dry.stdout
    before = stub_rss_kb(triton)
    run = run_cli(*args(lab, "--apply"))
    assert run.exit_code == 0, run.stderr
    assert "unloaded ranker 1, 3 (kept 2 loaded)" in run.stderr
    assert index_states(triton) == {"1": "UNAVAILABLE", "2": "READY", "3": "UNAVAILABLE"}
    assert [ready(triton, v) for v in ("1", "2", "3")] == [False, True, False]
    triton.infer("ranker", 2)  # the busy version still answers
    after = stub_rss_kb(triton)
    # One stub process per loaded version. The kept version's stub is a new process: this Triton
    # (nvidia-pytriton's) reloads a kept version when the model's config changes.
    assert len(before) == 3 and len(after) == 1
    assert sum(after.values()) < sum(before.values())
    (lab.root / "memory.txt").write_text(f"{sum(before.values())} kB -> {sum(after.values())} kB\n")

    # A report now knows what retire unloaded (the journal in --archive-dir): versions 1 and 3
    # are `unloaded`, not "safe, counter flat" (their series are gone: calls would fail uncounted).
    assert report_statuses(lab) == {"1": "unloaded", "2": "in-use", "3": "unloaded"}
    listed = run_cli("safe-list", *args(lab)[1:])
    assert listed.exit_code == 0 and listed.stdout == "", listed.stderr

    back = run_cli(
        "unload",
        "--undo",
        "--preset",
        "triton",
        "--server",
        triton.url,
        "--archive-dir",
        str(lab.root / "archive"),
    )
    assert back.exit_code == 0, back.stderr
    assert index_states(triton) == {"1": "READY", "2": "READY", "3": "READY"}
    assert [ready(triton, v) for v in ("1", "2", "3")] == [True, True, True]
    for v in (1, 2, 3):
        triton.infer("ranker", v)
    # Loaded back: the ordinary verdicts return (the server lists them loaded).
    assert "unloaded" not in report_statuses(lab).values()


def report_statuses(lab: Lab) -> dict[str, str]:
    """The JSON report's status per version, with the unload's --archive-dir and --server."""
    out = run_cli("report", *args(lab)[1:], "--format", "json")
    assert out.exit_code in (0, 4), out.stderr
    return {r["version"]: r["status"] for r in json.loads(out.stdout)["rows"]}


def test_unload_on_two_replicas_and_undo_on_both(lab: Lab) -> None:
    """Both replicas, named with --server twice: the idle versions leave both (each confirmed
    through its own API), the busy one stays ready on both; a report asked of both shows them
    `unloaded`; `--undo` naming both loads them back ready on both."""
    a, b = lab.triton, lab.replica
    for t in (a, b):
        assert index_states(t) == {"1": "READY", "2": "READY", "3": "READY"}
    # The test before made its unload last and loaded back without --model-dir: the file is put
    # back by an undo that names the repository (nothing is left to load back in memory).
    config = lab.repo / "ranker" / "config.pbtxt"
    original = CONFIG.format(name="ranker", policy=policy_text("all"))
    assert "version_policy { specific { versions: [ 2 ] } }" in config.read_text()
    fix = ["unload", "--undo", "--preset", "triton", "--server", a.url, "--model-dir", str(lab.repo)]
    put = run_cli(*fix, "--archive-dir", str(lab.root / "archive"))
    assert put.exit_code == 0, put.stderr
    assert config.read_text() == original

    def idle_again() -> bool:  # the test before called 1 and 3 and reloaded them: out of the window
        out = run_cli("report", *replica_args(lab)[1:], "--format", "json")
        return {r["version"]: r["status"] for r in json.loads(out.stdout)["rows"]} == {
            "1": "safe",
            "2": "in-use",
            "3": "safe",
        }

    wait_for("versions 1 and 3 idle for a whole window", idle_again, timeout=150)
    before = {t.url: stub_rss_kb(t) for t in (a, b)}
    group_before = {t.url: group_rss_kb(t) for t in (a, b)}
    # The apply makes its own report, and the re-check before the change another, each at its
    # instant: under CI load a scrape of these 1 s targets may lag past the window's end, and the
    # versions are rightly unknown there ("nothing to unload", or "skipped": nothing changed
    # either way). Such a run is retried, bounded; what each said is kept for the failure message.
    declined: list[str] = []
    runs: list[Run] = []

    def unloaded() -> bool:
        runs.append(run_cli(*replica_args(lab, "--apply")))
        assert runs[-1].exit_code == 0, runs[-1].stderr
        if "unloaded ranker" in runs[-1].stderr:
            return True
        assert all(s == "READY" for t in (a, b) for s in index_states(t).values()), runs[-1].stderr
        report = run_cli("report", *replica_args(lab)[1:], "--format", "json")
        reasons = {r["version"]: r["reason"] for r in json.loads(report.stdout)["rows"]}
        declined.append(f"{runs[-1].stderr.strip()} / a report then: {reasons}")
        return False

    try:
        wait_for("an apply that unloads", unloaded, timeout=120)
    except AssertionError as e:
        raise AssertionError(f"{e}; each apply said: {declined}") from None
    run = runs[-1]
    for t in (a, b):
        assert f"unloaded ranker 1, 3 (kept 2 loaded) on {t.url}" in run.stderr
        assert index_states(t) == {"1": "UNAVAILABLE", "2": "READY", "3": "UNAVAILABLE"}
        assert [ready(t, v) for v in ("1", "2", "3")] == [False, True, False]
        after = stub_rss_kb(t)
        assert len(before[t.url]) == 3 and len(after) == 1, (before, after)
    group_after = {t.url: group_rss_kb(t) for t in (a, b)}
    out = run_cli("report", *replica_args(lab)[1:], "--format", "json")
    assert out.exit_code in (0, 4), out.stderr
    rows = {r["version"]: r for r in json.loads(out.stdout)["rows"]}
    assert {v: r["status"] for v, r in rows.items()} == {"1": "unloaded", "2": "in-use", "3": "unloaded"}
    assert rows["2"]["loaded_on"] == {a.url: True, b.url: True}

    # The change lasts: a replica started now on the same repository loads only version 2.
    assert "version_policy { specific { versions: [ 2 ] } }" in config.read_text()
    with Triton(lab.repo, lab.root / "fresh") as fresh:
        assert [ready(fresh, v) for v in ("1", "2", "3")] == [False, True, False]

        archive = str(lab.root / "archive-replicas")
        servers = ["--server", a.url, "--server", b.url, "--model-dir", str(lab.repo)]
        back = run_cli("unload", "--undo", "--preset", "triton", *servers, "--archive-dir", archive)
        assert back.exit_code == 0, back.stderr
        for t in (a, b):
            assert index_states(t) == {"1": "READY", "2": "READY", "3": "READY"}
            assert [ready(t, v) for v in ("1", "2", "3")] == [True, True, True]
        assert config.read_text() == original
        fresh.load("ranker")  # a plain load reads config.pbtxt again: every version, as before
        assert [ready(fresh, v) for v in ("1", "2", "3")] == [True, True, True]
    group_back = {t.url: group_rss_kb(t) for t in (a, b)}

    rss = {u: (group_before[u], group_after[u], group_back[u]) for u in (a.url, b.url)}
    names = {
        a.url: "http://triton-a:8000",
        b.url: "http://triton-b:8000",
        str(lab.repo): "/models",
        archive: "/archive",
    }
    command = (
        "$ retire unload --prometheus http://prom:9090 --model-dir /models --preset triton \\\n"
        "    --server http://triton-a:8000 --server http://triton-b:8000 --archive-dir /archive --apply"
    )
    measured = memory_block(command, run.stderr, rss, names)
    (lab.root / "readme-memory.txt").write_text(measured)
    check_readme_quotes(measured)

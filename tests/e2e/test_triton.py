"""The real-server tier: a real Triton Inference Server (PyPI nvidia-pytriton, run as the bundled
`tritonserver`), real inference requests, a real Prometheus scraping it every second, then
`retire report --preset triton` over a 2-minute window, with exact verdicts.

One timeline (about 3 minutes) is shared by every test of this module. S is the window's start,
T = S + 120 s its end (`--at T`); offsets are seconds after S. Calls "before S" are made
more than one step (15 s) before S, out of reach of the first busiest-step rate window.

| model     | policy        | on disk     | loaded  | what happens                                        |
|-----------|---------------|-------------|---------|-----------------------------------------------------|
| ranker    | all           | 1 2 3 4 5   | 1-5     | 1: 3 calls before S; 2: exactly 1 call (+30);        |
|           |               |             |         | 3, 5: never called; 4: busy, directory removed at +40 |
|           |               |             |         | while loaded (Triton keeps serving it)              |
| detector  | (latest 1)    | 1 2 3       | 3       | 3 busy                                              |
| scorer    | latest 2      | 1 2 3 4     | 3 4     | 4 busy, 3 idle                                      |
| embedder  | specific 1,3  | 1 2 3       | 1 3     | 3 busy, 1 idle                                      |
| reloaded  | all           | 1 2         | 1 2     | 1: 2 calls before S; 2 busy; reloaded through the    |
|           |               |             |         | repository API at +50 (model.py changed)            |
| cycled    | all           | 1 2         | 1 2     | 1: 2 calls before S; 2: 5 calls before S, 3 in the   |
|           |               |             |         | window, then the model is unloaded and loaded again, |
|           |               |             |         | then 5 more calls                                   |
| legacy    | (latest 1)    | 1 2 03      | 2       | never called; Triton ignores `03` (leading zero)    |

`--max-gap 20s`: the window must be longer than the longest tolerated hole.

"busy" = one call every 10 s from +5 to +105 (11 calls in the window).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from retire.errors import ServerError
from retire.lab.servers import LabError, Prometheus, scrape_job
from retire.lab.triton import Triton, write_model
from tests.conftest import ask_loaded as ask
from tests.conftest import rows, run_cli, statuses

pytestmark = [pytest.mark.triton, pytest.mark.timeout(600)]

WINDOW = 120.0
BUSY = [("ranker", 4), ("detector", 3), ("scorer", 4), ("embedder", 3), ("reloaded", 2)]
BUSY_OFFSETS = range(5, 106, 10)


@dataclass
class TritonLab:
    triton: Triton
    prometheus: str
    repo: Path
    start: float
    end: float
    facts: dict[str, object] = field(default_factory=dict)
    reports: dict[tuple[str, ...], tuple[int, dict[str, object]]] = field(default_factory=dict)

    def report(self, *extra: str) -> tuple[int, dict[str, object]]:
        """`retire report --preset triton --format json` at T (cached per set of extra flags)."""
        if extra not in self.reports:
            run = run_cli(
                "report",
                "--prometheus",
                self.prometheus,
                "--model-dir",
                str(self.repo),
                "--preset",
                "triton",
                "--window",
                "2m",
                "--step",
                "15s",
                "--min-age",
                "0",
                "--coverage",
                'up{job="triton"}',
                "--max-gap",
                "20s",
                "--at",
                f"{self.end:.3f}",
                "--format",
                "json",
                *extra,
            )
            report = run.json()
            assert isinstance(report, dict), run.stderr
            self.reports[extra] = (run.exit_code, report)
            name = "report" + "".join(extra).replace("-", "_").replace("/", "_") + ".json"
            (self.repo.parent / name).write_text(run.stdout)  # kept for a look after a failure
        return self.reports[extra]


def query(url: str, promql: str) -> list[dict[str, object]]:
    answer = httpx.post(url + "/api/v1/query", data={"query": promql}, timeout=10).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def scraped(url: str, model: str, version: int, value: float) -> Callable[[], bool]:
    """Prometheus holds `value` as the latest sample of the version's success counter."""
    promql = f'nv_inference_request_success{{model="{model}",version="{version}"}}'
    return lambda: [float(r["value"][1]) for r in query(url, promql)] == [value]  # type: ignore[index]


def absent(url: str, model: str, version: int) -> Callable[[], bool]:
    promql = f'nv_inference_request_success{{model="{model}",version="{version}"}}'
    return lambda: query(url, promql) == []


def success_counters(triton: Triton) -> dict[str, float]:
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in triton.metrics().splitlines()
        if line.startswith("nv_inference_request_success{")
    }


@pytest.fixture(scope="module")
def tlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonLab]:
    root = tmp_path_factory.mktemp("triton")
    repo = root / "repo"
    write_model(repo, "ranker", [1, 2, 3, 4, 5], "all")
    write_model(repo, "detector", [1, 2, 3])
    write_model(repo, "scorer", [1, 2, 3, 4], "latest 2")
    write_model(repo, "embedder", [1, 2, 3], "specific 1,3")
    write_model(repo, "reloaded", [1, 2], "all")
    write_model(repo, "cycled", [1, 2], "all")
    write_model(repo, "legacy", [1, 2, "03"])
    with Triton(repo, root / "triton") as triton:
        facts: dict[str, object] = {
            "index_at_start": triton.index(),
            "counters_at_start": success_counters(triton),
            "pycache_at_start": sorted(str(p.parent.relative_to(repo)) for p in repo.rglob("__pycache__")),
        }
        job = scrape_job("triton", triton.metrics_target, "1s")
        with Prometheus(root / "tsdb", root / "prometheus", scrape=job) as prometheus:
            url = prometheus.url
            wait_for("the first scrape", lambda: bool(query(url, 'up{job="triton"} == 1')))
            before = [
                ("ranker", 1, 3),
                ("ranker", 4, 2),
                ("reloaded", 1, 2),
                ("cycled", 1, 2),
                ("cycled", 2, 5),
            ]
            for model, version, n in before:
                for _ in range(n):
                    triton.infer(model, version)
            for model, version, n in before:
                wait_for(f"{model}/{version} scraped", scraped(url, model, version, n))
            # The busiest-step query's first rate window reaches one step (15 s) back before S:
            # calls closer to S than that count as traffic in the window (errs towards in-use).
            start = float(int(time.time()) + 20)
            lab = TritonLab(triton, url, repo, start, start + WINDOW, facts)

            def at(offset: float) -> None:
                time.sleep(max(0.0, start + offset - time.time()))

            events: list[tuple[float, Callable[[], None]]] = []
            for off in BUSY_OFFSETS:
                for model, version in BUSY:
                    events.append((off, lambda m=model, v=version: triton.infer(m, v)))  # type: ignore[misc]
            for off in (10, 20, 30):
                events.append((off + 1, lambda: triton.infer("cycled", 2)))
            events.append((30.5, lambda: triton.infer("ranker", 2)))
            events.append((40.5, lambda: shutil.rmtree(repo / "ranker" / "4")))

            def reload() -> None:
                model_py = repo / "reloaded" / "2" / "model.py"
                model_py.write_text(model_py.read_text() + "\n# changed\n")
                triton.load("reloaded")
                facts["counters_after_reload"] = success_counters(triton)

            events.append((50.5, reload))

            def cycle() -> None:
                wait_for("cycled/2 scraped", scraped(url, "cycled", 2, 8))
                triton.unload("cycled")
                wait_for(
                    "cycled unloaded",
                    lambda: all(
                        m.get("state") == "UNAVAILABLE" for m in triton.index() if m["name"] == "cycled"
                    ),
                )
                facts["index_after_unload"] = [m for m in triton.index() if m["name"] == "cycled"]
                facts["counters_after_unload"] = success_counters(triton)
                wait_for("cycled/2 gone from Prometheus", absent(url, "cycled", 2))
                triton.load("cycled")
                facts["counters_after_load"] = success_counters(triton)

            events.append((55.5, cycle))
            for off in (70, 75, 80, 85, 90):
                events.append((off + 1.5, lambda: triton.infer("cycled", 2)))
            for off, action in sorted(events, key=lambda e: e[0]):
                at(off)
                action()
            facts["index_at_end"] = triton.index()
            facts["pycache_at_end"] = sorted(
                str(p.parent.relative_to(repo)) for p in repo.rglob("__pycache__")
            )
            at(WINDOW + 2)  # T has passed and been scraped
            facts["metric_names"] = sorted(
                {
                    line.split("{")[0].split(" ")[0]
                    for line in triton.metrics().splitlines()
                    if line.startswith("nv_")
                }
            )
            (root / "facts.json").write_text(json.dumps(facts, indent=1, sort_keys=True))
            yield lab


def test_verdicts(tlab: TritonLab) -> None:
    code, report = tlab.report()
    table = "\n".join(f"{r['model']}/{r['version']}: {r['status']}, {r['reason']}" for r in report["rows"])  # type: ignore[attr-defined]
    assert code == 0, f"no version is unknown; got:\n{table}"
    expected = {
        ("ranker", "1"): "safe",  # loaded, called before the window, counter flat all window
        ("ranker", "2"): "in-use",  # exactly one call
        ("ranker", "3"): "safe",  # loaded, never called: series at 0 all window
        ("ranker", "4"): "not-on-disk",  # directory removed while loaded; Triton still serves it
        ("ranker", "5"): "protected",  # newest on disk (--keep-latest 1)
        ("detector", "1"): "safe",  # never loaded (latest 1): no series
        ("detector", "2"): "safe",
        ("detector", "3"): "in-use",
        ("scorer", "1"): "safe",  # never loaded (latest 2)
        ("scorer", "2"): "safe",
        ("scorer", "3"): "protected",  # the config keeps the newest 2
        ("scorer", "4"): "in-use",
        ("embedder", "1"): "protected",  # listed under the specific policy, idle
        ("embedder", "2"): "safe",  # not listed: never loaded
        ("embedder", "3"): "in-use",
        ("reloaded", "1"): "safe",  # Triton 2.51 keeps the counters through a reload
        ("reloaded", "2"): "in-use",
        # Unload + load: the series ends and comes back at 0, a counter reset; its calls are
        # counted across it, and the span without samples before it (a few seconds: the unload,
        # one scrape, the load) is shorter than --max-gap 20s, so it is tolerated like a short hole.
        ("cycled", "1"): "safe",
        ("cycled", "2"): "in-use",
        ("legacy", "1"): "safe",  # never loaded (latest 1): no series
        ("legacy", "2"): "protected",  # Triton's newest: it ignores 03/ (leading zero)
    }
    assert statuses(report) == expected
    assert "reset" in rows(report)[("cycled", "1")]["reason"]  # type: ignore[operator]


def test_calls(tlab: TritonLab) -> None:
    _, report = tlab.report()
    calls = {k: r["calls"] for k, r in rows(report).items()}
    busy = len(BUSY_OFFSETS)
    assert calls[("ranker", "1")] == 0
    assert calls[("ranker", "2")] == 1
    assert calls[("ranker", "3")] == 0
    assert calls[("ranker", "4")] == busy  # still served after its directory went
    assert calls[("ranker", "5")] == 0
    assert calls[("detector", "1")] is None and calls[("detector", "2")] is None  # no series
    assert calls[("detector", "3")] == busy
    assert calls[("scorer", "3")] == 0 and calls[("scorer", "4")] == busy
    assert calls[("embedder", "1")] == 0 and calls[("embedder", "3")] == busy
    assert calls[("reloaded", "1")] == 0
    assert calls[("reloaded", "2")] == busy  # the reload kept the counter


def test_calls_across_unload_and_load(tlab: TritonLab) -> None:
    """cycled/2 went 5 → 8 (3 calls), was unloaded (series gone), loaded again at 0 and called 5
    times: counted across the reset (as increase() does), 3 + 5 = 8: resets() finds the reset
    although the counter ends where it started."""
    _, report = tlab.report()
    assert rows(report)[("cycled", "2")]["calls"] == 8


def test_leading_zero_directory_is_not_a_version(tlab: TritonLab) -> None:
    """legacy has 1, 2 and 03; Triton loads 2 (its newest version) and ignores 03. So 2 is the
    newest version (protected by --keep-latest 1), there is no version 3, and 03/ is listed among
    the ignored entries."""
    _, report = tlab.report()
    legacy = {k: v for k, v in statuses(report).items() if k[0] == "legacy"}
    assert legacy == {("legacy", "1"): "safe", ("legacy", "2"): "protected"}
    assert [Path(e["path"]).name for e in report["ignored"]] == ["03"]  # type: ignore[attr-defined]


def test_index_per_version_policy(tlab: TritonLab) -> None:
    """What Triton loads, per policy: the facts the `loaded` column stands on."""
    ready = {(m["name"], m["version"]) for m in tlab.facts["index_at_start"] if m["state"] == "READY"}  # type: ignore[attr-defined]
    assert ready == {
        *(("ranker", str(v)) for v in range(1, 6)),
        ("detector", "3"),
        ("scorer", "3"),
        ("scorer", "4"),
        ("embedder", "1"),
        ("embedder", "3"),
        ("reloaded", "1"),
        ("reloaded", "2"),
        ("cycled", "1"),
        ("cycled", "2"),
        ("legacy", "2"),
    }
    assert all(set(m) == {"name", "version", "state"} for m in tlab.facts["index_at_start"])  # type: ignore[attr-defined]
    # A version whose directory was removed stays loaded (explicit model control polls nothing).
    end = {(m["name"], m["version"]): m["state"] for m in tlab.facts["index_at_end"]}  # type: ignore[attr-defined]
    assert end[("ranker", "4")] == "READY"
    assert tlab.facts["index_after_unload"] == [
        {"name": "cycled", "version": v, "state": "UNAVAILABLE", "reason": "unloaded"} for v in ("1", "2")
    ]


def test_counters_start_at_zero_and_follow_the_load(tlab: TritonLab) -> None:
    start = tlab.facts["counters_at_start"]
    assert isinstance(start, dict)
    assert len(start) == 15 and set(start.values()) == {0.0}  # one series per loaded version, at 0
    after_unload = tlab.facts["counters_after_unload"]
    assert isinstance(after_unload, dict)
    assert not [k for k in after_unload if 'model="cycled"' in k]  # unloading removes the series
    after_load = tlab.facts["counters_after_load"]
    assert isinstance(after_load, dict)
    assert {k: v for k, v in after_load.items() if 'model="cycled"' in k} == {
        'nv_inference_request_success{model="cycled",version="1"}': 0.0,
        'nv_inference_request_success{model="cycled",version="2"}': 0.0,
    }
    after_reload = tlab.facts["counters_after_reload"]
    assert isinstance(after_reload, dict)
    assert after_reload['nv_inference_request_success{model="reloaded",version="1"}'] == 2.0  # kept


def test_python_backend_writes_pycache_into_loaded_version_directories(tlab: TritonLab) -> None:
    """Why directory mtime is not the version's age under Triton's Python backend."""
    loaded = {f"{m['name']}/{m['version']}" for m in tlab.facts["index_at_start"]}  # type: ignore[attr-defined]
    assert set(tlab.facts["pycache_at_start"]) == loaded  # type: ignore[arg-type]


def test_metric_names(tlab: TritonLab) -> None:
    names = tlab.facts["metric_names"]
    assert isinstance(names, list)
    assert "nv_inference_request_success" in names and "nv_inference_request_failure" in names
    assert json.dumps(names)  # recorded for the report


def test_loaded_asked_of_the_real_triton(tlab: TritonLab) -> None:
    """retire.sources.loaded against the real server: what the `loaded` column will show."""
    got = ask(
        "triton",
        tlab.triton.url,
        ["ranker", "detector", "scorer", "embedder", "reloaded", "cycled", "legacy"],
    )
    assert {k for k, v in got.versions.items() if v} == {
        *(("ranker", str(v)) for v in range(1, 6)),  # ranker/4 too: its directory is gone, it is loaded
        ("detector", "3"),
        ("scorer", "3"),
        ("scorer", "4"),
        ("embedder", "1"),
        ("embedder", "3"),
        ("reloaded", "1"),
        ("reloaded", "2"),
        ("cycled", "1"),
        ("cycled", "2"),
        ("legacy", "2"),
    }
    assert got.loaded("detector", "1") is False  # on disk, never loaded (latest 1): disk only
    assert got.loaded("scorer", "2") is False
    assert got.loaded("embedder", "2") is False
    assert got.loaded("legacy", "3") is False  # 03/ is ignored by Triton
    assert got.loaded("elsewhere", "1") is None


@pytest.mark.parametrize("server", ["tfserving", "torchserve"])
def test_loaded_asked_with_the_wrong_kind_of_server(tlab: TritonLab, server: str) -> None:
    with pytest.raises(ServerError, match="is --server the"):
        ask(server, tlab.triton.url, ["ranker"])


def test_loaded_asked_of_the_metrics_port(tlab: TritonLab) -> None:
    with pytest.raises(ServerError, match="HTTP 40"):
        ask("triton", f"http://{tlab.triton.metrics_target}")


def test_a_triton_that_cannot_start_says_why(tmp_path: Path) -> None:
    """A model that fails to load stops Triton at start (--load-model='*'); the lab says why,
    with the server's log, and leaves no process behind."""
    write_model(tmp_path / "repo", "broken", [1])
    (tmp_path / "repo" / "broken" / "1" / "model.py").write_text("this is not Python (\n")
    triton = Triton(tmp_path / "repo", tmp_path / "triton")
    with pytest.raises(LabError, match=r"server exited with \d+: (?s:.*)broken"):
        triton.start()
    assert triton.process is None


def test_loaded_column_from_the_server_and_from_the_policy(tlab: TritonLab) -> None:
    """`--server` asks Triton which versions are loaded; without it the loaded state is inferred
    from each config.pbtxt's version_policy. The summary splits what retiring frees."""
    _, asked = tlab.report("--server", tlab.triton.url)
    _, inferred = tlab.report()
    a, i = rows(asked), rows(inferred)
    for key, loaded in (
        (("detector", "1"), False),
        (("detector", "3"), True),
        (("scorer", "3"), True),
        (("embedder", "2"), False),
        (("ranker", "1"), True),
        (("legacy", "2"), True),
    ):
        assert (a[key]["loaded"], a[key]["loaded_from"]) == (loaded, "server"), key
        assert (i[key]["loaded"], i[key]["loaded_from"]) == (loaded, "policy"), key
    assert statuses(asked) == statuses(inferred)  # what is loaded never changes a verdict
    summary = asked["summary"]
    safe = [r for r in asked["rows"] if r["status"] == "safe"]  # type: ignore[attr-defined]
    assert summary["safe_bytes_loaded"] == sum(r["size_bytes"] for r in safe if r["loaded"])  # type: ignore[index]
    assert summary["safe_bytes_disk_only"] == sum(r["size_bytes"] for r in safe if r["loaded"] is False)  # type: ignore[index]
    assert summary["safe_bytes_loaded"] > 0 and summary["safe_bytes_disk_only"] > 0  # type: ignore[index]

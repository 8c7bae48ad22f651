"""The real-server tier for MLServer: a real Seldon MLServer 1.7.1 (its own venv, see
retire/lab/mlserver.py), real inference requests, a real Prometheus scraping it every second,
then `retire report --preset mlserver` over a 20-second window, with exact verdicts.

S is the window's start, T = S + 20 s its end (`--at T`); offsets are seconds after S. One call
to ranker/1 is made before S, so the metric has samples from the window's start.

| folder    | model-settings.json            | what happens                                        |
|-----------|--------------------------------|-----------------------------------------------------|
| ranker-1  | ranker, version "1"            | called by version at +2, +6, +10, +14               |
| ranker-2  | ranker, version "2"            | never called                                        |
| ranker-3  | ranker, version "3"            | written after start, never loaded (the index still  |
|           |                                | says READY: it reports the model's default's state) |
| scorer-a  | scorer, version "a"            | called by version                                   |
| scorer-b  | scorer, version "b"            | gets the calls that name no version ("b" > "a")     |
| plain     | (folder name), no version      | called without a version: `version="None"`          |
| idle      | (folder name), no version      | never called                                        |
| mixed     | (folder name), no version      | gets the calls that name no version                 |
| mixed-1   | mixed, version "1"             | never called by version                             |
| flaky-1   | flaky, version "1"             | every call fails (HTTP 500: the model raises)       |
| flaky-2   | flaky, version "2"             | never called                                        |

`--keep-latest 0 --min-age 0` so that every verdict shows; `--max-gap 5s` (shorter than the window).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from retire.errors import ServerError
from retire.lab.mlserver import MLServer, write_model
from retire.lab.servers import Prometheus, scrape_job
from tests.conftest import ask_loaded as ask
from tests.conftest import rows, run_cli, statuses

pytestmark = [pytest.mark.mlserver, pytest.mark.timeout(300)]

WINDOW = 20.0
OFFSETS = (2, 6, 10, 14)
SUMMED = "mlserver:model_infer_requests:total"
RULES = f"""\
groups:
  - name: mlserver
    interval: 1s
    rules:
      - record: {SUMMED}
        expr: sum without () ({{__name__=~"model_infer_request_(success|failure)_total"}})
"""


@dataclass
class MLServerLab:
    server: MLServer
    prometheus: str
    repo: Path
    start: float
    end: float
    facts: dict[str, object] = field(default_factory=dict)
    reports: dict[tuple[str, ...], tuple[int, dict[str, object]]] = field(default_factory=dict)

    def report(self, *extra: str) -> tuple[int, dict[str, object]]:
        """`retire report --preset mlserver --format json` at T (cached per set of extra flags)."""
        if extra not in self.reports:
            run = run_cli(
                "report",
                "--prometheus",
                self.prometheus,
                "--model-dir",
                str(self.repo),
                "--preset",
                "mlserver",
                "--window",
                "20s",
                "--step",
                "5s",
                "--min-age",
                "0",
                "--coverage",
                'up{job="mlserver"}',
                "--max-gap",
                "5s",
                "--at",
                f"{self.end:.3f}",
                "--format",
                "json",
                *extra,
            )
            report = run.json()
            assert isinstance(report, dict), run.stderr
            self.reports[extra] = (run.exit_code, report)
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


def counters(server: MLServer) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in server.metrics().splitlines()
        if (line.startswith("model_infer_request_") and not line.startswith("model_infer_request_duration_"))
        or line.startswith("model_infer_request_duration_count")
    }


@pytest.fixture(scope="module")
def mlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServerLab]:
    root = tmp_path_factory.mktemp("mlserver")
    repo = root / "repo"
    for folder, name, version in [
        ("ranker-1", "ranker", "1"),
        ("ranker-2", "ranker", "2"),
        ("scorer-a", "scorer", "a"),
        ("scorer-b", "scorer", "b"),
        ("plain", None, None),
        ("idle", None, None),
        ("mixed", None, None),
        ("mixed-1", "mixed", "1"),
        ("flaky-1", "flaky", "1"),
        ("flaky-2", "flaky", "2"),
    ]:
        write_model(repo, folder, name, version)
    rules = root / "rules.yml"
    rules.write_text(RULES)
    started = time.monotonic()
    with MLServer(repo, root / "mlserver") as server:
        facts: dict[str, object] = {"ready_after": time.monotonic() - started}
        write_model(repo, "ranker-3", "ranker", "3")  # on disk, never loaded
        facts["index_at_start"] = server.index()
        job = scrape_job("mlserver", server.metrics_target, "1s")
        with Prometheus(root / "tsdb", root / "prometheus", scrape=job, rules=(rules,)) as prometheus:
            url = prometheus.url
            wait_for("the first scrape", lambda: bool(query(url, 'up{job="mlserver"} == 1')))
            assert server.infer("ranker", "1") == 200
            wait_for(
                "ranker/1 scraped",
                lambda: bool(query(url, 'model_infer_request_success_total{model="ranker",version="1"}')),
            )
            start = float(int(time.time()) + 2)
            lab = MLServerLab(server, url, repo, start, start + WINDOW, facts)
            answers: dict[str, list[int]] = {}
            calls: list[tuple[str, str | None, float]] = [
                ("ranker", "1", 1.0),
                ("scorer", "a", 1.0),
                ("scorer", None, 1.0),
                ("plain", None, 1.0),
                ("mixed", None, 1.0),
                ("flaky", "1", -1.0),  # fails: the model raises
            ]
            for off in OFFSETS:
                time.sleep(max(0.0, start + off - time.time()))
                for model, version, value in calls:
                    answers.setdefault(f"{model}/{version}", []).append(server.infer(model, version, value))
            facts["answers"] = answers
            facts["served_without_version"] = {
                m: httpx.post(
                    f"{server.url}/v2/models/{m}/infer",
                    json={"inputs": [{"name": "X", "shape": [1], "datatype": "FP32", "data": [0.0]}]},
                    timeout=30,
                )
                .json()
                .get("model_version")  # left out when None
                for m in ("scorer", "mixed", "plain")
            }  # at +14, beside calls of the same kind
            time.sleep(max(0.0, start + WINDOW + 2 - time.time()))  # T has passed and been scraped
            facts["counters"] = counters(server)
            facts["index_at_end"] = server.index()
            (root / "facts.json").write_text(json.dumps(facts, indent=1, sort_keys=True))
            yield lab


def test_the_server_starts_fast(mlab: MLServerLab) -> None:
    assert float(mlab.facts["ready_after"]) < 60  # type: ignore[arg-type]


def test_what_mlserver_exports(mlab: MLServerLab) -> None:
    """The facts the preset stands on: metric names with `_total`, labels as requested, "None"
    for a request that names no version, a failure series created (at 0) by every request."""
    c = mlab.facts["counters"]
    assert isinstance(c, dict)
    n = len(OFFSETS)
    assert c['model_infer_request_success_total{model="ranker",version="1"}'] == n + 1
    assert c['model_infer_request_success_total{model="scorer",version="a"}'] == n
    assert c['model_infer_request_success_total{model="scorer",version="None"}'] == n + 1
    assert c['model_infer_request_success_total{model="plain",version="None"}'] == n + 1
    assert c['model_infer_request_failure_total{model="flaky",version="1"}'] == n
    assert c['model_infer_request_failure_total{model="ranker",version="1"}'] == 0
    assert not [k for k in c if 'model="flaky"' in k and k.startswith("model_infer_request_success")]
    # The preset's counter: every request, failed ones too.
    assert c['model_infer_request_duration_count{model="flaky",version="1"}'] == n
    assert c['model_infer_request_duration_count{model="ranker",version="1"}'] == n + 1
    assert not [k for k in c if 'version="2"' in k or 'version="b"' in k]  # created on a request
    assert mlab.facts["answers"]["flaky/1"] == [500] * n  # type: ignore[index]
    # A call that names no version goes to the unversioned entry, else to the newest ("b" > "a").
    assert mlab.facts["served_without_version"] == {"scorer": "b", "mixed": None, "plain": None}


def test_verdicts(mlab: MLServerLab) -> None:
    code, report = mlab.report("--keep-latest", "0")
    table = "\n".join(f"{r['model']}/{r['version']}: {r['status']}, {r['reason']}" for r in report["rows"])  # type: ignore[attr-defined]
    (mlab.repo.parent / "report.json").write_text(json.dumps(report, indent=1))  # for a look after a failure
    assert statuses(report) == {
        ("ranker", "1"): "in-use",
        ("ranker", "2"): "safe",  # loaded, never called: no series, reach proven
        ("ranker", "3"): "safe",  # never loaded, never called
        ("scorer", "a"): "in-use",
        ("scorer", "b"): "unknown",  # the calls naming no version reached it: never safe
        ("scorer", "None"): "not-on-disk",  # those calls, under the label that names no version
        ("plain", "None"): "in-use",  # a model without a version: its calls are all its own
        ("idle", "None"): "safe",
        ("mixed", "1"): "unknown",  # "None" calls went to the unversioned entry, which is ignored
        ("mixed", "None"): "not-on-disk",
        ("flaky", "1"): "in-use",  # every call failed, and each is counted (the duration summary)
        ("flaky", "2"): "safe",
    }, table
    assert code == 4  # some versions are unknown
    r = rows(report)
    assert "'None'" in str(r[("scorer", "b")]["reason"]) and "'None'" in str(r[("mixed", "1")]["reason"])
    ignored = {Path(e["path"]).name: e["reason"] for e in report["ignored"]}  # type: ignore[attr-defined]
    assert list(ignored) == ["mixed"] and "without a version beside versioned ones" in ignored["mixed"]


def test_newest_is_mlservers_newest(mlab: MLServerLab) -> None:
    """--keep-latest 1 (the default) protects the version a call naming none would get."""
    _, report = mlab.report()
    s = statuses(report)
    assert s[("ranker", "3")] == "protected" and s[("ranker", "2")] == "safe"
    assert s[("scorer", "b")] == "protected" and s[("flaky", "2")] == "protected"
    assert s[("idle", "None")] == "protected"  # a model's only version is its newest


def test_failed_calls_counted_through_a_recording_rule(mlab: MLServerLab) -> None:
    """A recording rule summing success and failure, as a user might give with --metric, agrees:
    flaky/1, whose every call failed, is in use."""
    _, report = mlab.report("--keep-latest", "0", "--metric", SUMMED)
    s = statuses(report)
    assert s[("flaky", "1")] == "in-use" and s[("flaky", "2")] == "safe"
    assert s[("ranker", "1")] == "in-use" and s[("ranker", "2")] == "safe"
    assert s[("scorer", "b")] == "unknown" and s[("plain", "None")] == "in-use"


def test_index_says_ready_for_a_version_never_loaded(mlab: MLServerLab) -> None:
    """Why --server asks each READY version again: the index gives the model's state."""
    index = {(e["name"], e.get("version")): e["state"] for e in mlab.facts["index_at_start"]}  # type: ignore[attr-defined]
    assert index[("ranker", "3")] == "READY"
    assert mlab.server.ready("ranker", "3") == 404 and mlab.server.ready("ranker", "1") == 200
    assert index[("plain", None)] == "READY"


def test_loaded_asked_of_the_real_mlserver(mlab: MLServerLab) -> None:
    got = ask("mlserver", mlab.server.url, ["ranker", "scorer", "elsewhere"])
    loaded = {k for k, v in got.versions.items() if v}
    assert loaded == {
        ("ranker", "1"),
        ("ranker", "2"),
        ("scorer", "a"),
        ("scorer", "b"),
        ("plain", "None"),
        ("idle", "None"),
        ("mixed", "None"),
        ("mixed", "1"),
        ("flaky", "1"),
        ("flaky", "2"),
    }
    assert got.loaded("ranker", "3") is False and got.states[("ranker", "3")] == "NOT_LOADED"
    assert got.loaded("elsewhere", "1") is False  # asked, not in the index: not loaded
    assert got.loaded("never_asked", "1") is None


def test_loaded_column_from_the_server(mlab: MLServerLab) -> None:
    _, asked = mlab.report("--keep-latest", "0", "--server", mlab.server.url)
    _, plain = mlab.report("--keep-latest", "0")
    a = rows(asked)
    assert (a[("ranker", "2")]["loaded"], a[("ranker", "2")]["loaded_from"]) == (True, "server")
    assert a[("ranker", "3")]["loaded"] is False and a[("idle", "None")]["loaded"] is True
    assert statuses(asked) == statuses(plain)  # what is loaded never changes a verdict
    summary = asked["summary"]
    assert summary["safe_bytes_disk_only"] == a[("ranker", "3")]["size_bytes"]  # type: ignore[index]


# (triton is no wrong kind here: MLServer serves the same repository index, and Triton's reader reads it)
@pytest.mark.parametrize("server", ["tfserving", "torchserve"])
def test_loaded_asked_with_the_wrong_kind_of_server(mlab: MLServerLab, server: str) -> None:
    with pytest.raises(ServerError, match="is --server the"):
        ask(server, mlab.server.url, ["ranker"])


def test_loaded_asked_of_the_metrics_port(mlab: MLServerLab) -> None:
    with pytest.raises(ServerError, match="HTTP 40"):
        ask("mlserver", f"http://{mlab.server.metrics_target}", ["ranker"])


def test_the_repository_stays_clean(mlab: MLServerLab) -> None:
    """The lab writes only inside its directory: no bytecode or metrics files in version folders."""
    assert sorted(p.name for p in (mlab.repo / "ranker-1").iterdir()) == ["echo.py", "model-settings.json"]

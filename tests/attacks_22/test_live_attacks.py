"""Attacks on this round's changes against one real Prometheus 2.42 scraping small real exporters
every second (`python -m http.server` serving a fixed `/metrics` file, as tests/e2e/test_staleness.py).

- Staleness markers (targets.py `_confirm_gone`, (b)): Prometheus also writes them when a scrape
  *fails*, for every series the failed scrape no longer returns. A central Prometheus federating
  an edge one (`honor_labels: true`, the documented federation set-up) holds the edge's `up`
  series as ordinary scraped series: when the edge cannot be reached, each of them ends with a
  staleness marker although no target was dropped and the pod behind it still takes calls.
- RE2 regexes (queries.py `python_regex`): `(?i)` folds case over Unicode in RE2 (Go's regexp), over
  ASCII only in Python's `re` with `re.ASCII`; the fleet matchers then decide which series are the
  selector's servers (`Scope.hidden`).
- Lookalike names (facts.py `lookalikes`): served names that contain a silent model's words in
  ways the word splitter does not see.

Each exporter has its own job; each test reads its own model directory, so their rows are apart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from retire.lab.live import wait_scraped
from retire.lab.servers import FileExporter, LabError, Prometheus
from tests.conftest import rows, run_cli, statuses

pytestmark = pytest.mark.prometheus

METRIC = ":tensorflow:serving:model_call_count"
WINDOW = 30  # seconds of history each report reads; every exporter ran longer than that
# Served names (on job "other", which the names test's --selector leaves out) -> the silent model
# directory each hides.
LOOKALIKES = {
    # nine words: runs of words are indexed up to eight (facts.py _MAX_WORDS)
    "tf-fraud-score-eu-west-1-gbdt-v2-int8-canary": "tf-fraud-score-eu-west-1-gbdt-v2-int8",
    "rankerCanary": "ranker",  # camelCase: one "word" to the splitter
    "prod/gamma": "gamma",  # a slash is no separator to the splitter
    "omega": "omega_v2",  # the served name is the shorter one
}


@dataclass
class Lab:
    url: str
    root: Path
    edge_instance: str  # the federated pod whose `up` ended with a marker on a failed scrape


def _query(url: str, promql: str) -> list[dict[str, object]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    return answer["data"]["result"]  # type: ignore[no-any-return]


def models(root: Path, name: str, *names: str) -> Path:
    """A model directory `root/name` with versions 1-3 of each model, all ten days old."""
    old = time.time() - 10 * 86400
    for model in names:
        for version in ("1", "2", "3"):
            path = root / name / model / version
            path.mkdir(parents=True)
            (path / "saved_model.pb").write_bytes(b"\0" * 64)
            os.utime(path, (old, old))
    return root / name


def _line(labels: dict[str, str], value: int) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{METRIC}{{{inner}}} {value}\n"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("attacks22")
    pod = "pod-0:8501"
    # What the edge's /federate answers: its series with its external label (cluster), so no
    # target of the central Prometheus's own jobs can vouch for the pod (`same_pipeline`).
    edge_text = f'up{{cluster="edge-1",instance="{pod}",job="edge-serving"}} 1\n' + _line(
        {
            "cluster": "edge-1",
            "instance": pod,
            "job": "edge-serving",
            "model_name": "f",
            "model_version": "1",
        },
        4,
    )
    serving = FileExporter(root / "serving", _line({"model_name": "b", "model_version": "1"}, 3))
    other = FileExporter(
        root / "other", "".join(_line({"model_name": n, "model_version": "1"}, 9) for n in LOOKALIKES)
    )
    teams = FileExporter(
        root / "teams",
        _line({"model_name": "b", "model_version": "1", "team": "Équipe"}, 3)
        + _line({"model_name": "d7", "model_version": "1", "team": "Équipe"}, 7),
    )
    edge = FileExporter(root / "edge", edge_text)
    with serving, other, teams, edge:
        scrape = "".join(
            f"  - job_name: {job}\n    scrape_interval: 1s\n    scrape_timeout: 1s\n{extra}"
            f"    static_configs:\n      - targets: ['127.0.0.1:{exporter.port}']\n"
            for job, exporter, extra in (
                ("serving", serving, ""),
                ("other", other, ""),
                ("teams", teams, ""),
                ("federate", edge, "    honor_labels: true\n"),
            )
        )
        (root / "tsdb").mkdir()
        with Prometheus(root / "tsdb", root / "prometheus", scrape=scrape) as server:
            wait_scraped(server.url, 'up{job="edge-serving"}', 0)
            wait_scraped(server.url, 'up{job=~"serving|other|teams"}', 0)
            time.sleep(WINDOW + 3)  # every series covers the whole window
            edge.stop()  # the edge Prometheus cannot be reached: the federation scrape fails
            deadline = time.monotonic() + 30
            while _query(server.url, 'up{job="edge-serving"}'):
                if time.monotonic() > deadline:
                    raise LabError("no staleness marker for the federated up series in 30s")
                time.sleep(0.5)
            time.sleep(2)  # the report's instant is past the marker
            yield Lab(server.url, root, pod)


def _report(lab: Lab, model_dir: Path, *extra: str) -> dict[str, object]:
    run = run_cli(
        "report", "--prometheus", lab.url, "--model-dir", str(model_dir), "--format", "json",
        "--window", f"{WINDOW}s", "--max-gap", "10s", "--step", "10s", *extra,
    )  # fmt: skip
    assert run.exit_code in (0, 4), run.stdout + run.stderr  # 4: some version is unknown
    doc = run.json()
    assert isinstance(doc, dict)
    return doc


# --- (3b) a staleness marker written on a failed scrape -------------------------------------------


def test_the_federated_pods_up_ended_with_a_marker_while_the_federation_scrape_failed(lab: Lab) -> None:
    """The set-up the attack needs, checked: the federation job is down, the pod's `up` ended on a
    good scrape and is now absent (a marker), well within Prometheus's 5-minute lookback."""
    assert [r["value"][1] for r in _query(lab.url, 'up{job="federate"}')] == ["0"]  # type: ignore[index]
    assert _query(lab.url, 'up{job="edge-serving"}') == []
    last = _query(lab.url, 'last_over_time(up{job="edge-serving"}[1m])')
    assert [r["value"][1] for r in last] == ["1"]  # type: ignore[index]


@pytest.mark.parametrize(
    "extra",
    [(), ("--coverage", 'up{job=~"edge-serving|serving|other|teams"}'), ("--threshold", "0.5")],
    ids=["raw", "coverage", "threshold"],
)
def test_a_federated_pod_whose_edge_is_unreachable_is_not_gone(lab: Lab, extra: tuple[str, ...]) -> None:
    """A staleness marker is also written when a scrape fails: a federated (honor_labels) up series
    ends with one when the edge Prometheus cannot be reached, and the still-running pod was taken
    as dropped by service discovery. Markers are read now only for targets the server scrapes
    itself (a job_name of its own without honor_labels, or an active target of the same pipeline)."""
    doc = _report(lab, models(lab.root, f"fed-{len(extra)}-{'-'.join(extra)[:12]}", "f"), *extra)
    found = statuses(doc)
    assert found[("f", "1")] != "safe" and found[("f", "2")] != "safe", (doc["header"], rows(doc))


# --- (2) RE2's (?i) folds Unicode case ---------------------------------------------------------------


def test_prometheus_matches_the_case_folded_team(lab: Lab) -> None:
    """RE2 (Go's regexp) folds É to é under (?i): Prometheus's own answer, which the attack below
    relies on."""
    found = _query(lab.url, f'count({METRIC}{{team=~"(?i)équipe"}})')
    assert [r["value"][1] for r in found] == ["2"]  # type: ignore[index]


def test_a_served_name_on_the_selectors_team_spelled_out_makes_the_silent_model_unknown(lab: Lab) -> None:
    """The control: the same team written as Prometheus stores it finds 'd7', a name with no
    directory served by the selector's servers, so the silent model is unknown."""
    doc = _report(
        lab, models(lab.root, "team-plain", "b", "delta"), "--selector", 'team="Équipe",model_name=~"b|delta"'
    )
    found = statuses(doc)
    assert found[("delta", "1")] == "unknown" and found[("delta", "2")] == "unknown", rows(doc)


@pytest.mark.parametrize("flag", ["(?i)", "(?i:"], ids=["flag", "group"])
def test_a_case_insensitive_team_regex_does_not_hide_a_served_name(lab: Lab, flag: str) -> None:
    """python_regex compiled with re.ASCII, so (?i) folded ASCII letters only while RE2 folds
    Unicode: team=~'(?i)équipe' rejected 'Équipe' in retire (Prometheus accepts it), the served
    name 'd7' on that team was not seen as hidden, and the silent model 'delta' was safe."""
    team = f"{flag}équipe" + (")" if flag.endswith(":") else "")
    selector = f'team=~"{team}",model_name=~"b|delta"'
    doc = _report(
        lab,
        models(lab.root, "team-group" if flag.endswith(":") else "team-flag", "b", "delta"),
        "--selector",
        selector,
    )
    found = statuses(doc)
    assert found[("delta", "1")] != "safe" and found[("delta", "2")] != "safe", rows(doc)


# --- (1) lookalike names the word splitter misses ----------------------------------------------------


def test_a_served_name_containing_the_silent_models_words_on_another_job_makes_it_unknown(lab: Lab) -> None:
    """The control: the documented case (a name served outside the selector that contains the
    silent model's words, as 'prod_delta' contains 'delta') is caught."""
    doc = _report(
        lab, models(lab.root, "names-control", "b", "tf-fraud-score-eu"), "--selector", 'job="serving"'
    )
    found = statuses(doc)
    assert found[("tf-fraud-score-eu", "1")] == "unknown", rows(doc)


@pytest.mark.parametrize("served", list(LOOKALIKES), ids=["nine-words", "camel-case", "slash", "shorter"])
def test_a_served_lookalike_on_another_job_makes_the_silent_model_unknown(lab: Lab, served: str) -> None:
    """lookalikes split names only at spaces, '_', '.' and '-', indexed runs of at most 8 words and
    looked only for served names containing the silent model's words: a 9-word name plus a suffix,
    camelCase, a '/' separator or a served name shorter than its directory hid the model."""
    silent = LOOKALIKES[served]
    doc = _report(
        lab, models(lab.root, f"names-{served.replace('/', '_')}", "b", silent), "--selector", 'job="serving"'
    )
    found = statuses(doc)
    assert found[(silent, "1")] != "safe" and found[(silent, "2")] != "safe", rows(doc)

"""A hole before a job's first pod is excused only where Prometheus, scraping itself, says the
job's scrape pool was empty then (`retire/sources/prometheus/no_targets.py`), against a real
Prometheus backfilled with per-target scrape times and its own
`prometheus_target_scrape_pool_targets`.

Each scenario: model directories 1..3 (3, the newest, protected); version 1 called every 30 s on
the job's pod, version 2 never called. Times are relative to END.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from retire.lab.servers import Prometheus, backfill
from retire.lab.synth import Scenario
from tests.attacks_21.history import METRIC, Counter, Pod, every, lines
from tests.attacks_21.test_reach_attacks import disk
from tests.conftest import Lab, rows, run_cli, statuses
from tests.scenarios import END

pytestmark = pytest.mark.prometheus

HOUR = 3600
BIRTH = END - 3 * HOUR  # the deployment is created: its pod's first scrape is right after
B = END - 5 * HOUR  # the pipeline outage of the restart scenario starts here


@dataclass(frozen=True)
class Pool:
    """Prometheus's own count of one job's targets at its self-scrapes."""

    job: str
    times: np.ndarray
    values: np.ndarray
    labels: tuple[tuple[str, str], ...] = ()


PODS: list[Pod] = []
COUNTERS: list[Counter] = []
POOLS: list[Pool] = []


def case(name: str, model: str, pod: Pod, pools: list[Pool], calls_from: float) -> Scenario:
    PODS.append(pod)
    COUNTERS.append(Counter(pod, model, "1", tuple(np.arange(calls_from + 5, END, 30.0))))
    POOLS.extend(pools)
    return disk(name, model)


def born(name: str, **labels: str) -> Pod:
    """A pod of job `name` created at BIRTH, scraped every 60 s (at :30 s) from then on."""
    return Pod(every(60, BIRTH, END, 30), {"job": name, "instance": "tfs-0", "scenario": name, **labels})


def pool(job: str, count_at: dict[float, int], interval: float = 15, **labels: str) -> Pool:
    """Self-scrapes every `interval` from 26 h before END; the count at each is the value of the
    latest key of `count_at` at or before it (times with no key before them: no sample)."""
    t = every(interval, END - 26 * HOUR, END, 7)
    keys = sorted(count_at)
    idx = np.searchsorted(keys, t, side="right") - 1
    keep = idx >= 0
    values = np.array([count_at[keys[i]] for i in idx[keep]])
    return Pool(job, t[keep], values, tuple(labels.items()))


def without(p: Pool, *spans: tuple[float, float]) -> Pool:
    keep = np.ones(len(p.times), dtype=bool)
    for a, b in spans:
        keep &= (p.times < a) | (p.times >= b)
    return Pool(p.job, p.times[keep], p.values[keep], p.labels)


# The deployment created 3 hours before END; Prometheus (scraping itself) shows its pool empty
# before: the 21 hours without samples are no hole.
WITNESSED = case("ntborn", "nb", born("ntborn"), [pool("ntborn", {0: 0, BIRTH: 1})], BIRTH)
# The same without Prometheus's own series: nothing tells it from a pipeline that lost 21 hours.
BLIND = case("ntblind", "nn", born("ntblind"), [], BIRTH)
# The pod ran all along, but its samples were lost for those 21 hours (scrapes failing at the
# network, or the data never arriving) while its pool held it: a real hole.
_held = Pod(every(60, END - 26 * HOUR, END, 30), {"job": "ntheld", "instance": "tfs-0", "scenario": "ntheld"},
            lost=((END - 24 * HOUR, BIRTH),))  # fmt: skip
HELD = case("ntheld", "nh", _held, [pool("ntheld", {0: 1})], END - 26 * HOUR)
# Two clusters in one store told apart by `cluster`: the pod is east's, the empty pool west's
# (east's Prometheus does not scrape itself). West's word says nothing of east.
OTHER = case(
    "ntother",
    "no",
    born("ntother", cluster="east"),
    [pool("ntother", {0: 0, BIRTH: 1}, cluster="west")],
    BIRTH,
)
# Prometheus down 14 minutes from B (nothing stored, its own series neither); when it starts
# again its pool is empty for 2 minutes (discovery not listed yet) and the pod is not scraped:
# a hole of 16 minutes, more than --max-gap 15m, of which those 2 minutes are not excused.
_restarted = Pod(
    every(60, END - 26 * HOUR, END, 30),
    {"job": "ntrestart", "instance": "tfs-0", "scenario": "ntrestart"},
    lost=((B, B + 16 * 60),),
)
RESTART = case(
    "ntrestart",
    "nr",
    _restarted,
    [without(pool("ntrestart", {0: 1, B + 14 * 60: 0, B + 16 * 60: 1}), (B, B + 14 * 60))],
    END - 26 * HOUR,
)


# A pod replaced 2 hours before END, its successor first scraped 2.5 minutes after its last
# scrape: no other target of the job was scraped right after it. Prometheus scraping itself
# then (its pool count stored every 15 s) shows the scraping went on: the pod was dropped.
DEATH = END - 2 * HOUR + 30  # the old pod's last scrape
_old = Pod(
    every(60, END - 26 * HOUR, DEATH, 30), {"job": "ntgone", "instance": "tfs-0", "scenario": "ntgone"}
)
_new = Pod(every(60, DEATH + 150, END, 0), {"job": "ntgone", "instance": "tfs-1", "scenario": "ntgone"})


def replaced(name: str, model: str, pools: list[Pool], **down: tuple[tuple[float, float], ...]) -> Scenario:
    old = Pod(_old.scrapes, {**_old.labels, "job": name, "scenario": name}, **down)  # type: ignore[arg-type]
    new = Pod(_new.scrapes, {**_new.labels, "job": name, "scenario": name})
    PODS.extend([old, new])
    COUNTERS.append(Counter(old, model, "1", tuple(np.arange(END - 26 * HOUR, DEATH - 60, 30.0))))
    COUNTERS.append(Counter(new, model, "1", tuple(np.arange(DEATH + 200, END, 30.0))))
    POOLS.extend(pools)
    return disk(name, model)


GONE = replaced("ntgone", "ng", [pool("ntgone", {0: 1, DEATH + 20: 0, DEATH + 140: 1})])
# The same without Prometheus's own series: the old pod's end is a doubt.
GONE_BLIND = replaced("ntgoneblind", "ngb", [])
# The old pod's last scrapes failed (up = 0): calls it took since its last good one are lost,
# whoever vouches that the scraping went on.
GONE_DOWN = replaced(
    "ntgonedown",
    "ngd",
    [pool("ntgonedown", {0: 1, DEATH + 20: 0, DEATH + 140: 1})],
    down=((DEATH - 300, DEATH + 1),),
)


def write(path: Path) -> None:
    families: dict[str, list[str]] = {METRIC: [], "up": []}
    for family, line in lines(COUNTERS, PODS):
        families[family].append(line)
    with path.open("w", encoding="utf-8") as f:
        f.write(f"# TYPE {METRIC} unknown\n")
        f.writelines(families[METRIC])
        f.write("# TYPE up gauge\n")
        f.writelines(families["up"])
        f.write("# TYPE prometheus_target_scrape_pool_targets gauge\n")
        for p in POOLS:
            labels = {"job": "prometheus", "instance": f"prom-{p.job}", "scrape_job": p.job, **dict(p.labels)}
            head = ",".join(f'{k}="{v}"' for k, v in labels.items())
            f.writelines(
                f"prometheus_target_scrape_pool_targets{{{head}}} {int(v)} {t:.3f}\n"
                for t, v in zip(p.times.tolist(), p.values.tolist(), strict=True)
            )
        f.write("# EOF\n")


@pytest.fixture(scope="module")
def lab_nt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("notargets")
    write(root / "history.om")
    backfill(root / "history.om", root / "tsdb")
    with Prometheus(root / "tsdb", root / "prometheus") as server:
        yield Lab(server.url, END, root)


MODES = pytest.mark.parametrize(
    ("coverage", "extra"),
    [(False, ()), (True, ()), (False, ("--threshold", "0.001")), (False, ("--split-by-model",))],
    ids=["raw", "coverage", "threshold", "split"],
)


def report(lab: Lab, scenario: Scenario, coverage: bool, extra: tuple[str, ...]) -> dict[str, object]:
    run = run_cli("report", *lab.args(scenario, "--format", "json", *extra, coverage=coverage))
    assert run.exit_code in (0, 4), run.stderr
    doc = run.json()
    assert isinstance(doc, dict)
    return doc


@MODES
def test_a_job_created_mid_window_with_its_pool_shown_empty_before_is_judged(
    lab_nt: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    doc = report(lab_nt, WITNESSED, coverage, extra)
    assert statuses(doc)[("nb", "2")] == "safe", rows(doc)[("nb", "2")]
    assert statuses(doc)[("nb", "1")] == "in-use"
    notes = " ".join(doc["header"]["notes"])  # type: ignore[index]
    assert "no target to scrape for job ntborn" in notes, notes


@MODES
def test_without_prometheus_own_series_the_hole_before_the_first_pod_stays_a_doubt(
    lab_nt: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    doc = report(lab_nt, BLIND, coverage, extra)
    assert statuses(doc)[("nn", "2")] == "unknown"
    assert "data gap" in str(rows(doc)[("nn", "2")]["reason"])
    notes = " ".join(doc["header"]["notes"])  # type: ignore[index]
    assert "no prometheus_target_scrape_pool_targets (Prometheus scraping itself)" in notes, notes


@MODES
def test_a_hole_while_the_pool_held_the_target_stays_a_doubt(
    lab_nt: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    doc = report(lab_nt, HELD, coverage, extra)
    assert statuses(doc)[("nh", "2")] == "unknown", rows(doc)[("nh", "2")]


@MODES
def test_an_empty_pool_of_another_cluster_excuses_nothing(
    lab_nt: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    doc = report(lab_nt, OTHER, coverage, extra)
    assert statuses(doc)[("no", "2")] == "unknown", rows(doc)[("no", "2")]


@MODES
def test_an_empty_pool_right_after_prometheus_starts_again_does_not_shorten_the_hole(
    lab_nt: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    doc = report(lab_nt, RESTART, coverage, extra)
    assert statuses(doc)[("nr", "2")] == "unknown", rows(doc)[("nr", "2")]


@MODES
def test_a_pod_dropped_while_prometheus_scraped_itself_is_gone(
    lab_nt: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    doc = report(lab_nt, GONE, coverage, extra)
    assert statuses(doc)[("ng", "2")] == "safe", rows(doc)[("ng", "2")]
    assert statuses(doc)[("ng", "1")] == "in-use"


@MODES
def test_without_prometheus_own_series_a_pod_replaced_late_is_a_doubt(
    lab_nt: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    doc = report(lab_nt, GONE_BLIND, coverage, extra)
    assert statuses(doc)[("ngb", "2")] == "unknown", rows(doc)[("ngb", "2")]


@MODES
def test_a_pod_whose_last_scrapes_failed_stays_a_doubt_whatever_prometheus_stored(
    lab_nt: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    doc = report(lab_nt, GONE_DOWN, coverage, extra)
    assert statuses(doc)[("ngd", "2")] == "unknown", rows(doc)[("ngd", "2")]

"""Attacks on retire's use of Prometheus's own scrape-pool counts (`no_targets.py`: a hole where
`prometheus_target_scrape_pool_targets{scrape_job=<job>}` = 0 is no hole; `up.py` `pool_scraped`:
a target whose `up` ended on a good scrape is gone where that series was stored right after).

Each scenario is a world where a version (2) was called in the window and no stored sample shows
it; before these changes retire called it unknown (a hole, or a target whose end is a doubt).
Seven attacks worked (false "safe") and are fixed: their docstrings say how they worked; the
rest failed from the start. All are regression tests now. One real Prometheus 2.42 for the module, backfilled with promtool.

Model directories 1..3 per scenario (3, the newest, is protected); version 1 is called steadily
where a pod is scraped. Times are relative to END (17 s past a minute, 2 s past a multiple of
15 s): pods are scraped every 60 s at :30 (END-47, END-107, ...), Prometheus scrapes itself
every 15 s at :07 (END-100, END-85, ...).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from retire.lab.servers import Prometheus, backfill
from retire.lab.synth import HOUR, Scenario
from tests.attacks_21.history import METRIC, Counter, Pod, every, lines
from tests.attacks_21.test_reach_attacks import disk
from tests.conftest import Lab, rows, run_cli, statuses
from tests.scenarios import END

pytestmark = pytest.mark.prometheus

START = END - 26 * HOUR  # the history's first scrape
BIRTH = END - 3 * HOUR
A, B = END - 10 * HOUR, END - 8 * HOUR  # the two-hour hole of the hole scenarios
WITNESS = "prometheus_target_scrape_pool_targets"


@dataclass(frozen=True)
class Pool:
    """One series of Prometheus's own count of a job's targets: `values` at `times`; `labels`
    besides scrape_job (job/instance of the Prometheus scraping itself by default)."""

    job: str
    times: np.ndarray
    values: np.ndarray
    labels: dict[str, str] = field(default_factory=dict)


def pool(
    job: str,
    count_at: dict[float, float],
    interval: float = 15,
    lost: Sequence[tuple[float, float]] = (),
    **labels: str,
) -> Pool:
    """Self-scrapes every `interval` (at :07) from START; each stores the value of the latest
    key of `count_at` at or before it; none inside `lost`."""
    t = every(interval, START, END, 7)
    for a, b in lost:
        t = t[(t < a) | (t >= b)]
    keys = sorted(count_at)
    idx = np.searchsorted(keys, t, side="right") - 1
    keep = idx >= 0
    values = np.array([count_at[keys[i]] for i in idx[keep]], dtype=float)
    return Pool(job, t[keep], values, {"job": "prometheus", "instance": "prom-0:9090", **labels})


PODS: list[Pod] = []
COUNTERS: list[Counter] = []
POOLS: list[Pool] = []


def case(name: str, model: str, pods: list[Pod], counters: list[Counter], pools: list[Pool]) -> Scenario:
    PODS.extend(pods)
    COUNTERS.extend(counters)
    POOLS.extend(pools)
    return disk(name, model)


def steady(pod: Pod, model: str, start: float, stop: float) -> Counter:
    """Version 1 called every 30 s on `pod` from `start` to `stop`."""
    return Counter(pod, model, "1", tuple(np.arange(start + 5, stop, 30.0)))


def replaced_in_hole(name: str, model: str, pools: list[Pool], **labels: str) -> Scenario:
    """A pod whose data is lost from A to B (nothing stored, not even `up`), which served version
    2 then and was replaced by a new pod at B: version 2's calls are stored nowhere, and no
    counter outlives the hole to carry them."""
    base = {"job": name, "scenario": name, **labels}
    old = Pod(every(60, START, B, 30), {**base, "instance": "tfs-0"}, lost=((A, B + 1),))
    new = Pod(every(60, B + 60, END, 30), {**base, "instance": "tfs-1"})
    called = tuple(np.arange(A + 1800, B - 1800, 60.0))
    return case(
        name,
        model,
        [old, new],
        [steady(old, model, START, B), Counter(old, model, "2", called), steady(new, model, B + 60, END)],
        pools,
    )


# --- holes ---------------------------------------------------------------------------------

# A job created 3 h before END (its pool empty before, as in tests/e2e/test_no_targets.py) and
# another job of the same fleet (same scenario label) whose only pod served version 2 while its
# scrapes failed (`up` = 0, stored) and then restarted: that job has no series of the metric in
# the window, so only the new job's empty pool is asked about the 21 h hole.
_ua = Pod(every(60, BIRTH, END, 30), {"job": "una", "instance": "a-0", "scenario": "una"})
_ub = Pod(
    every(60, START, END, 30),
    {"job": "una-b", "instance": "b-0", "scenario": "una"},
    down=((END - 9 * HOUR, END - 5 * HOUR),),
)
UNASKED = case(
    "una",
    "ua",
    [_ua, _ub],
    [
        steady(_ua, "ua", BIRTH, END),
        Counter(
            _ub,
            "ua",
            "2",
            tuple(np.arange(END - 8 * HOUR, END - 6 * HOUR, 60.0)),
            restarts=(END - 5 * HOUR - 300,),
        ),
    ],
    [pool("una", {0: 0, BIRTH: 1}), pool("una-b", {0: 1})],
)
# East remote-writes its pods' series (with its external label cluster="east") into a central
# Prometheus, and loses them from A to B. The central Prometheus's configuration (one template
# for every cluster) has the same job, with no target there: its own pool count is 0 all window
# and carries no cluster label (external labels are not stored locally). East's Prometheus does
# not send its own self-scrape.
CENTRAL = replaced_in_hole("cen", "ce", [pool("cen", {0: 0}, instance="central:9090")], cluster="east")
# The same, but east does send its own pool count (cluster="east"), lost with the rest.
CENTRAL_EAST = replaced_in_hole(
    "cene",
    "cf",
    [pool("cene", {0: 0}, instance="central:9090"), pool("cene", {0: 1}, lost=((A, B + 1),), cluster="east")],
    cluster="east",
)
# One Prometheus. The pods' `job` label is set by relabelling in the generic pool
# "kubernetes-pods" (which holds them); an old static job of the same name as that label has no
# target left (0). The old pod's scrapes fail from A (`up` = 0) while it serves version 2; it
# crashes 5 minutes before B (the counter is wiped), is scraped fine twice, and is replaced at B.
_r_old = Pod(
    every(60, START, B, 30), {"job": "ren", "instance": "tfs-0", "scenario": "ren"}, down=((A, B - 300),)
)
_r_new = Pod(every(60, B + 30, END, 30), {"job": "ren", "instance": "tfs-1", "scenario": "ren"})
RENAMED = case(
    "ren",
    "re",
    [_r_old, _r_new],
    [
        Counter(_r_old, "re", "1", tuple(np.arange(START + 5, B, 30.0)), restarts=(B - 300,)),
        Counter(_r_old, "re", "2", tuple(np.arange(A + 1800, B - 1800, 60.0)), restarts=(B - 300,)),
        steady(_r_new, "re", B + 30, END),
    ],
    [pool("ren", {0: 0}), pool("kubernetes-pods", {0: 1})],
)
# A relabel rule drops the serving pods from the pool from A until a rollout at B fixes their
# labels: the pool is 0, the pods serve on, unscraped.
RELABELLED = replaced_in_hole("rlb", "rl", [pool("rlb", {0: 1, A: 0, B + 30: 1})])
# Scale to zero: after A the job's pod is scaled down; every 20 minutes a pod is started for
# 50 s (pool 1), takes version 2's calls and is scaled down (pool 0) before its first scrape
# (Prometheus scrapes a new target at its own offset in the 60 s interval): nothing of it is
# stored but the pool count. A steady pod again from END-4h.
_k0 = Pod(every(60, START, A, 30), {"job": "kz", "instance": "k-0", "scenario": "kz"})
_k2 = Pod(every(60, END - 4 * HOUR, END, 30), {"job": "kz", "instance": "k-2", "scenario": "kz"})
_burst_starts = [A + 614 + j * 1200 for j in range(17)]  # 1 s past :30, gone by :21
_bursts = [Pod(np.array([]), {"job": "kz", "instance": f"burst-{j}", "scenario": "kz"}) for j in range(17)]
_kz_pool: dict[float, float] = {0: 1, A: 0, END - 4 * HOUR: 1}
for _s in _burst_starts:
    _kz_pool[_s], _kz_pool[_s + 50] = 1, 0
BURSTS = case(
    "kz",
    "kz",
    [_k0, _k2, *_bursts],
    [
        steady(_k0, "kz", START, A),
        steady(_k2, "kz", END - 4 * HOUR, END),
        *(
            Counter(p, "kz", "2", tuple(np.arange(s + 5, s + 45, 5.0)))
            for p, s in zip(_bursts, _burst_starts, strict=True)
        ),
    ],
    [pool("kz", _kz_pool)],
)

# Lying values of the pool's own series, each over a real hole (`replaced_in_hole`, one
# Prometheus): not a number, negative, infinite, 0 but stored every 5 minutes (coarser than the
# hole check's 60 s), 0 but carrying a label (a replica) the metric's series do not.
LYING = {
    "nan": replaced_in_hole("wnan", "wa", [pool("wnan", {0: 1, A: float("nan"), B + 30: 1})]),
    "negative": replaced_in_hole("wneg", "wb", [pool("wneg", {0: 1, A: -1, B + 30: 1})]),
    "inf": replaced_in_hole("winf", "wc", [pool("winf", {0: 1, A: float("inf"), B + 30: 1})]),
    "sparse": replaced_in_hole("wsparse", "wd", [pool("wsparse", {0: 0}, interval=300)]),
    "replica": replaced_in_hole("wrep", "we", [pool("wrep", {0: 0}, replica="a")]),
    "stale": replaced_in_hole("wstale", "wf", [pool("wstale", {0: 1}, lost=((A, B + 30),))]),
}

# --- targets that end ----------------------------------------------------------------------


def ending(name: str, model: str, lost_from: float, pools: list[Pool], **labels: str) -> Scenario:
    """One pod, scraped all window, of which nothing is stored from `lost_from`; version 2 is
    called 5 times right after its last stored scrape (those calls are in no stored sample)."""
    p = Pod(
        every(60, START, END, 30),
        {"job": name, "instance": "tfs-0", "scenario": name, **labels},
        lost=((lost_from, END + 1),),
    )
    last = float(p.stored()[0][-1])
    return case(
        name, model, [p], [steady(p, model, START, END), Counter(p, model, "2", (last + 3,) * 5)], pools
    )


# East's remote write stalls 98 s before END (a lag a central store often has): its pod's last
# scrape there is END-107 and its Prometheus's self-scrape at END-100 went out with it; nothing
# after. Everything stopped together, but the self-scrape is 7 s after the pod's last scrape.
STALL = ending(
    "gst", "gs", END - 98, [pool("gst", {0: 1}, lost=((END - 98, END + 1),), cluster="east")], cluster="east"
)
# Prometheus itself restarts 98 s before END (self-scrape at END-100 stored), is down 78 s, and
# scrapes itself again from END-20; the pod's next scrape is after END.
RESTART = ending("grs", "gr", END - 98, [pool("grs", {0: 1}, lost=((END - 98, END - 20),))])
# Control of STALL: the stall starts 104 s before END, before the self-scrape at END-100: no
# self-scrape after the pod's last scrape, the end stays a doubt.
STALL_EARLY = ending(
    "gse",
    "ge",
    END - 104,
    [pool("gse", {0: 1}, lost=((END - 104, END + 1),), cluster="east")],
    cluster="east",
)
# East's data lags 10 minutes at END; the central Prometheus's own empty pool of the same job
# (no cluster label) is stored on time.
CENTRAL_END = ending("gce", "gc", END - 600, [pool("gce", {0: 0}, instance="central:9090")], cluster="east")


def write(path: Path) -> None:
    families: dict[str, list[str]] = {METRIC: [], "up": []}
    for family, line in lines(COUNTERS, PODS):
        families[family].append(line)
    with path.open("w", encoding="utf-8") as f:
        f.write(f"# TYPE {METRIC} unknown\n")
        f.writelines(families[METRIC])
        f.write("# TYPE up gauge\n")
        f.writelines(families["up"])
        f.write(f"# TYPE {WITNESS} gauge\n")
        for p in POOLS:
            head = ",".join(f'{k}="{v}"' for k, v in {**p.labels, "scrape_job": p.job}.items())
            f.writelines(
                f"{WITNESS}{{{head}}} {_number(v)} {t:.3f}\n"
                for t, v in zip(p.times.tolist(), p.values.tolist(), strict=True)
            )
        f.write("# EOF\n")


def _number(v: float) -> str:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    return repr(int(v)) if v == int(v) else repr(v)


@pytest.fixture(scope="module")
def lab_w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("witness")
    write(root / "history.om")
    backfill(root / "history.om", root / "tsdb")
    with Prometheus(root / "tsdb", root / "prometheus") as server:
        yield Lab(server.url, END, root)


def report(lab: Lab, scenario: Scenario, coverage: bool, extra: Sequence[str]) -> dict[str, object]:
    run = run_cli("report", *lab.args(scenario, "--format", "json", *extra, coverage=coverage))
    assert run.exit_code in (0, 4), run.stderr
    doc = run.json()
    assert isinstance(doc, dict)
    return doc


def verdict(lab: Lab, scenario: Scenario, model: str, coverage: bool, extra: Sequence[str]) -> None:
    doc = report(lab, scenario, coverage, extra)
    notes = doc["header"]["notes"]  # type: ignore[index]
    assert statuses(doc)[(model, "2")] != "safe", (rows(doc)[(model, "2")], notes)


MODES = {
    "raw": (False, ()),
    "coverage": (True, ()),
    "threshold": (False, ("--threshold", "0.001")),
    "split": (False, ("--split-by-model",)),
    "window12h-step5m": (False, ("--window", "12h", "--step", "5m")),
    "coverage-maxgap30m": (True, ("--max-gap", "30m")),
}


def modes(broken: dict[str, str] | None = None) -> pytest.MarkDecorator:
    """Every mode; those in `broken` (mode -> reason) as strict xfails."""
    broken = broken or {}
    return pytest.mark.parametrize(
        ("coverage", "extra"),
        [
            pytest.param(
                *MODES[m],
                id=m,
                marks=[pytest.mark.xfail(strict=True, reason=broken[m])] if m in broken else [],
            )
            for m in MODES
        ],
    )


@modes()
def test_unasked_job(lab_w: Lab, coverage: bool, extra: tuple[str, ...]) -> None:
    """Was a false safe, fixed: no_target_steps asks only the pools of jobs that have a series of the metric in the window; job una-b, whose pod served version 2 with its scrapes failing (up = 0) and then restarted, has none, so job una's empty pool (before its first pod) excuses the 21 h hole across every series and version 2 is safe."""
    verdict(lab_w, UNASKED, "ua", coverage, extra)


@modes()
def test_central_empty_pool_without_cluster_label(lab_w: Lab, coverage: bool, extra: tuple[str, ...]) -> None:
    """Was a false safe, fixed: vouches() ties a pool count to the metric's series by scrape_job = job alone when the count carries no label of its own: the central Prometheus's empty pool of the same job name (no external labels: they are not stored locally) excuses the 2 h in which east's remote-written data was lost, while east's pod served version 2 and was replaced."""
    verdict(lab_w, CENTRAL, "ce", coverage, extra)


@modes()
def test_central_empty_pool_with_east_own_pool_lost_too(
    lab_w: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    verdict(lab_w, CENTRAL_EAST, "cf", coverage, extra)


@modes()
def test_job_label_relabelled_onto_an_empty_pool(lab_w: Lab, coverage: bool, extra: tuple[str, ...]) -> None:
    """Was a false safe, fixed: the series' job label is set by relabelling in pool kubernetes-pods, which holds the pod, but no_target_steps reads the pool whose scrape_job equals that label (an old static job with no target, 0): the 2 h hole while the pod's scrapes failed (up = 0) is excused and version 2, served then and wiped by a crash, is safe."""
    verdict(lab_w, RENAMED, "re", coverage, extra)


@modes()
def test_pool_emptied_by_relabelling(lab_w: Lab, coverage: bool, extra: tuple[str, ...]) -> None:
    """Was a false safe, fixed: the pool count is after relabelling: a relabel rule that dropped the serving pods from A to B makes it 0, and no_target_steps excuses the 2 h hole while the pod served version 2 unscraped (docs/verdicts.md trusts that service discovery lists the pods that serve; here discovery listed them and relabelling dropped them)."""
    verdict(lab_w, RELABELLED, "rl", coverage, extra)


@modes()
def test_scale_to_zero_bursts(lab_w: Lab, coverage: bool, extra: tuple[str, ...]) -> None:
    """Was a false safe, fixed: excused steps (pool 0) cut the 6 h hole into pieces of a few minutes, each under --max-gap, although the pool count shows a target (pool 1) in every piece: pods of 50 s never scraped took version 2's calls; without the pool count the 6 h hole made it unknown."""
    verdict(lab_w, BURSTS, "kz", coverage, extra)


@pytest.mark.parametrize("lie", list(LYING))
@modes()
def test_lying_pool_values(lab_w: Lab, lie: str, coverage: bool, extra: tuple[str, ...]) -> None:
    scenario = LYING[lie]
    model = next(iter({d.model for d in scenario.disk}))
    verdict(lab_w, scenario, model, coverage, extra)


@modes()
def test_everything_stalls_right_after_a_self_scrape(
    lab_w: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    """Was a false safe, fixed: pool_scraped takes one self-scrape stored within one interval plus grace after the pod's last scrape as proof that scraping went on: east's remote write stalled at END-98 s, 7 s after the self-scrape at END-100 and 9 s after the pod's last scrape (END-107), so everything stopped together, yet the pod is taken as replaced and version 2, called after its last scrape, is safe (STALL_EARLY, the stall 4 s earlier, stays unknown)."""
    verdict(lab_w, STALL, "gs", coverage, extra)


@modes()
def test_prometheus_restarts_at_the_end(lab_w: Lab, coverage: bool, extra: tuple[str, ...]) -> None:
    """Was a false safe, fixed: pool_scraped: Prometheus scraped itself at END-100 s, 7 s after the pod's last scrape, then restarted (down 78 s, no scrape of the pod since); the one self-scrape right after the pod's last scrape is taken as proof the pod was dropped, and version 2, called after that scrape, is safe."""
    verdict(lab_w, RESTART, "gr", coverage, extra)


@modes()
def test_central_empty_pool_vouches_for_a_lagging_cluster(
    lab_w: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    verdict(lab_w, CENTRAL_END, "gc", coverage, extra)


@modes()
def test_stall_before_the_self_scrape(lab_w: Lab, coverage: bool, extra: tuple[str, ...]) -> None:
    verdict(lab_w, STALL_EARLY, "ge", coverage, extra)

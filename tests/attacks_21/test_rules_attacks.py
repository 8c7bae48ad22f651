"""Attacks on the recording-rules mode at a threshold: "every mode" (README "What each mode
proves") includes --use-recording-rules, and README says its verdicts are those of the raw
queries. Issue #21 point 3 made raw reports count every call per step at a threshold; the rules
still read only rates there. Each strict xfail is a version safe from the rules while the raw
report (the control beside it) calls it in use.

One raw Prometheus and one with the rules' history, for this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retire.lab.servers import Prometheus, backfill, with_recorded_history
from retire.lab.synth import Scenario, VersionDir
from tests.attacks_21.history import Counter, Pod, every, write
from tests.conftest import Lab, run_cli, statuses
from tests.scenarios import END, HOUR

pytestmark = pytest.mark.prometheus

# rb/1: 10,000 calls in one scrape create its series 5 hours before END (rate 0); rb/2 flat;
# rb/3 steady at 5 req/s; rb/4 the newest (protected).
_pod = Pod(every(60, END - 26 * HOUR, END, 30), {"job": "tfs", "instance": "tfs-0", "scenario": "rules"})
COUNTERS = [
    Counter(_pod, "rb", "1", (END - 5 * HOUR,) * 10_000),
    Counter(_pod, "rb", "2", (END - 40 * HOUR,)),
    Counter(_pod, "rb", "3", tuple(np.arange(END - 26 * HOUR, END, 0.2))),
]
RULES = Scenario("rules", disk=tuple(VersionDir("rb", str(v), age=10 * 86400) for v in (1, 2, 3, 4)))
STEPS = ("1h",)  # rules for --step 1m are refused up front (test below)


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Lab]]:
    """(raw, recorded): the recorded one has the fine and rollup rules for both steps."""
    root = tmp_path_factory.mktemp("attacks21rules")
    write(root / "history.om", COUNTERS, [_pod])
    backfill(root / "history.om", root / "tsdb")
    with Prometheus(root / "tsdb", root / "prometheus") as raw:
        files: dict[str, list[Path]] = {"fine": [], "rollup": []}
        for step in STEPS:
            for group, paths in files.items():
                path = root / f"{step}-{group}.yml"
                run = run_cli(
                    "rules",
                    "--selector",
                    'scenario="rules"',
                    "--step",
                    step,
                    "--group",
                    group,
                    "-o",
                    str(path),
                )
                assert run.exit_code == 0, run.stderr
                paths.append(path)
        recorded = with_recorded_history(
            raw.url, root / "tsdb", files["fine"], files["rollup"], END - 30.5 * HOUR, END, root / "rules"
        )
        try:
            yield Lab(raw.url, END, root), Lab(recorded.url, END, root)
        finally:
            recorded.stop()


def report(lab: Lab, *extra: str) -> dict[tuple[str, str], str]:
    run = run_cli("report", *lab.args(RULES, "--format", "json", *extra, coverage=False))
    assert run.exit_code in (0, 4), run.stderr
    return statuses(run.json())


def test_a_burst_that_creates_its_series_counts_at_a_threshold_from_rules(labs: tuple[Lab, Lab]) -> None:
    """10,000 calls in one scrape created rb/1's series (rate 0): the rules' bound on the busiest
    step now counts first calls of born series (it was safe from the rules, in use from raw)."""
    _, recorded = labs
    assert report(recorded, "--use-recording-rules", "--threshold", "1")[("rb", "1")] in ("in-use", "unknown")


def test_a_burst_that_creates_its_series_counts_at_a_threshold_from_raw_series(labs: tuple[Lab, Lab]) -> None:
    """Control: the raw report counts the burst in its step."""
    raw, _ = labs
    got = report(raw, "--threshold", "1")
    assert got[("rb", "1")] == "in-use" and got[("rb", "2")] == "safe"


def test_one_minute_steps_on_one_minute_scrapes_are_refused_for_rules(labs: tuple[Lab, Lab]) -> None:
    """Rules made for --step 1m recorded rate(metric[60s]), which holds one 60 s scrape and gives
    no rate at all: rb/3, steady at 5 req/s, was safe from the rules even at threshold 0. Such a
    step is now refused up front, when the rules are printed and when a report reads them."""
    _, recorded = labs
    printed = run_cli("rules", "--selector", 'scenario="rules"', "--step", "1m")
    assert printed.exit_code == 2 and "--rule-interval" in printed.stderr
    run = run_cli("report", *recorded.args(RULES, "--use-recording-rules", "--step", "1m", coverage=False))
    assert run.exit_code == 2 and "Traceback" not in run.stderr


@pytest.mark.parametrize("threshold", ["0", "1"])
def test_one_minute_steps_on_one_minute_scrapes_from_raw_series(
    labs: tuple[Lab, Lab], threshold: str
) -> None:
    """Control: the raw report counts rb/3's calls at --step 1m."""
    raw, _ = labs
    assert report(raw, "--step", "1m", "--threshold", threshold)[("rb", "3")] == "in-use"

"""Every mode proves its reach (issue #21): options that narrow or reshape the queries must never
hide a call. Each test here was a false "safe" before the change it names; the controls show a
truly idle version still comes out safe.

Against the real Prometheus lab (tests/scenarios.py).
"""

from __future__ import annotations

import pytest

from tests import scenarios as sc
from tests.conftest import Lab, rows, run_cli, statuses

pytestmark = pytest.mark.prometheus

SPLIT = pytest.mark.parametrize("split", [(), ("--split-by-model",)], ids=["whole", "split"])


def report(lab: Lab, scenario: sc.Scenario, selector: str, *extra: str) -> tuple[int, dict]:
    """`retire report --format json` for a scenario, with more matchers after its own selector."""
    args = lab.args(scenario, "--format", "json", *extra)
    i = args.index("--selector") + 1
    args[i] = f"{args[i]},{selector}"
    run = run_cli("report", *args)
    assert run.exit_code in (0, 4), run.stderr
    return run.exit_code, run.json()  # type: ignore[return-value]


# 4. Scope checks run outside the reach of the selector's matchers on the model and version labels.


@SPLIT
def test_a_selector_listing_the_models_on_disk_does_not_hide_a_served_name(
    lab: Lab, split: tuple[str, ...]
) -> None:
    """delta/ is served as delta-prod: a selector that names the directories (delta, kappa, zeta)
    left delta-prod out, and with it the only sign of the naming mismatch: delta/1 was safe."""
    code, doc = report(lab, sc.NAMES, 'model_name=~"delta|kappa|zeta"', *split)
    got = statuses(doc)
    assert got[("delta", "1")] == "unknown" and got[("delta", "2")] == "unknown"
    assert code == 4
    assert "'delta-prod'" in rows(doc)[("delta", "1")]["reason"]


@SPLIT
def test_a_selector_on_version_numbers_does_not_hide_labels_no_directory_can_have(
    lab: Lab, split: tuple[str, ...]
) -> None:
    """lam is served under the label v1: `model_version=~"[0-9]+"` left it out, and lam/1 was safe."""
    code, doc = report(lab, sc.LABELS, 'model_version=~"[0-9]+"', *split)
    assert statuses(doc) == {("lam", "1"): "unknown", ("lam", "2"): "protected"}
    assert code == 4
    assert "version labels no version directory can have ('v1')" in rows(doc)[("lam", "1")]["reason"]


@SPLIT
def test_a_selector_on_the_model_label_does_not_hide_series_without_one(
    lab: Lab, split: tuple[str, ...]
) -> None:
    """`model_name="n"` made the unlabelled-series query ask for model_name="" and model_name="n"
    at once, which nothing matches: the busy series without a model label vanished, n/1 was safe."""
    code, doc = report(lab, sc.NO_MODEL, 'model_name="n"', *split)
    assert statuses(doc) == {("n", "1"): "unknown", ("n", "2"): "protected"}
    assert code == 4
    assert "1 series of the metric have no model_name label" in rows(doc)[("n", "1")]["reason"]


def test_a_selector_on_version_numbers_does_not_hide_torchserve_default(lab: Lab) -> None:
    """resnet's calls named no version (TorchServe labels them "default"): a selector on numbered
    versions left them out, and resnet/1.0 was safe."""
    code, doc = report(lab, sc.TORCHSERVE, 'model_version=~"[0-9.]+"')
    assert statuses(doc)[("resnet", "1.0")] == "unknown"
    assert code == 4
    assert "'default'" in rows(doc)[("resnet", "1.0")]["reason"]


def test_a_selector_on_other_labels_still_names_the_servers(lab: Lab) -> None:
    """Control: matchers on other labels (here `scenario`) say which servers the report is about;
    the scope checks keep them, so another scenario's served names and unlabelled series do not
    make this one's idle versions unknown."""
    _, doc = report(lab, sc.NO_VERSION, 'model_name=~"u|ok"')
    assert statuses(doc)[("ok", "1")] == "safe"
    assert statuses(doc)[("u", "1")] == "unknown"


def run(lab: Lab, scenario: sc.Scenario, *extra: str, coverage: bool = True) -> tuple[int, dict]:
    run = run_cli("report", *lab.args(scenario, "--format", "json", *extra, coverage=coverage))
    assert run.exit_code in (0, 4), run.stderr
    return run.exit_code, run.json()  # type: ignore[return-value]


MODES = pytest.mark.parametrize(
    ("coverage", "extra"),
    [(True, ()), (False, ()), (True, ("--split-by-model",)), (True, ("--threshold", "0.5"))],
    ids=["coverage", "raw", "split", "threshold"],
)


# 1. The end of the window is stricter than its middle.


@MODES
def test_samples_that_stop_before_the_end_are_unknown(
    lab: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    """Every sample stops 10 minutes before the instant (ingestion lag): within --max-gap, so the
    hole was tolerated and x/2 (flat) was safe, though calls in those minutes are seen nowhere."""
    code, doc = run(lab, sc.LAG, *extra, coverage=coverage)
    assert statuses(doc)[("x", "2")] == "unknown"
    assert code == 4
    reason = rows(doc)[("x", "2")]["reason"]
    assert "the data ends at" in reason and "--at" in reason


@MODES
def test_a_target_down_at_the_end_is_unknown(lab: Lab, coverage: bool, extra: tuple[str, ...]) -> None:
    """tfs-1 (no calls yet) is down for the last 10 minutes: calls it took then are seen nowhere."""
    code, doc = run(lab, sc.END_DOWN, *extra, coverage=coverage)
    assert statuses(doc)[("y", "2")] == "unknown"
    assert code == 4
    assert (
        'target {instance="tfs-1",job="tfs"} was down (up = 0) at the window\'s end'
        in rows(doc)[("y", "2")]["reason"]
        or 'target {job="tfs",instance="tfs-1"} was down' in rows(doc)[("y", "2")]["reason"]
    )


@MODES
def test_a_replaced_pod_is_said_and_not_a_doubt(lab: Lab, coverage: bool, extra: tuple[str, ...]) -> None:
    """Control: tfs-0 left 5 hours ago (its up series ended on a good scrape, tfs-1 scraped on):
    gone, not stale, and z/2, flat on it, stays safe; the header says it was taken as replaced."""
    code, doc = run(lab, sc.CHURN, *extra, coverage=coverage)
    assert statuses(doc) == {("z", "1"): "in-use", ("z", "2"): "safe", ("z", "3"): "protected"}
    assert code == 0
    assert any("taken as replaced" in n for n in doc["header"]["notes"]), doc["header"]["notes"]


# 3. Thresholds count every call.


def test_a_burst_that_creates_its_series_counts_at_a_threshold(lab: Lab) -> None:
    """b/1's 10,000 calls in one scrape created its series: rate 0, so at --threshold 1 it was
    safe while its own row said "10,000 calls in window"."""
    code, doc = run(lab, sc.BURST, "--threshold", "1")
    assert statuses(doc)[("b", "1")] == "in-use"
    assert statuses(doc)[("b", "4")] == "safe"  # control: idle
    assert code == 0


def test_calls_between_hourly_windows_count_at_a_threshold(lab: Lab) -> None:
    """b/2's 100 calls 10 s before an hour boundary (2.8 times --threshold 0.01 over an hour)
    fell between two hourly rate windows and read as 0 req/s."""
    _, doc = run(lab, sc.BURST, "--threshold", "0.01")
    assert statuses(doc)[("b", "2")] == "in-use"
    assert "busiest hour 0.0278 req/s > threshold 0.01" in rows(doc)[("b", "2")]["reason"]
    assert statuses(doc)[("b", "4")] == "safe"


def test_a_reset_back_to_the_start_counts_at_a_threshold(lab: Lab) -> None:
    """c/1: 50 calls at the top of an hour, then a reload back to 0 (the cron scenario): counted
    across the reset at threshold 0 already, but at --threshold 0.01 only rates were read."""
    code, doc = run(lab, sc.CRON, "--threshold", "0.01", coverage=False)
    assert statuses(doc)[("c", "1")] == "in-use"
    assert code in (0, 4)


def test_one_minute_steps_on_one_minute_scrapes_count_at_a_threshold(lab: Lab) -> None:
    """`--step 1m` on 60 s scrapes: a one-minute rate window holds one scrape, so no rate came
    back, which read as "at or below the threshold": b/3 serves 5 req/s."""
    _, doc = run(lab, sc.BURST, "--step", "1m", "--threshold", "1")
    assert statuses(doc)[("b", "3")] == "in-use"
    assert statuses(doc)[("b", "4")] == "safe"


@pytest.mark.parametrize(
    ("coverage", "extra"),
    [(True, ()), (False, ()), (True, ("--split-by-model",))],
    ids=["coverage", "raw", "split"],
)
def test_a_counter_created_anew_at_its_old_value_counts(
    lab: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    """rc/1: one call 30 h ago, a restart 10 h ago, one call 5 h ago creating the counter anew at
    1: it read as flat all window (found by the oracle, seed 100029). It was absent at scrapes
    its target answered, so it was created anew: its value since then are calls. rc/2 (restarted,
    never called again: its series ends) stays safe."""
    _, doc = run(lab, sc.RECREATE, *extra, coverage=coverage)
    got = statuses(doc)
    assert got[("rc", "1")] == "in-use", rows(doc)[("rc", "1")]["reason"]
    assert got[("rc", "2")] == "safe", rows(doc)[("rc", "2")]["reason"]


# The price of #21: a series lacking a label whose counter was flat all window hides no call.

MODES = pytest.mark.parametrize(
    "mode",
    [(), ("--split-by-model",), ("--threshold", "0.5"), ("--step", "15m")],
    ids=["whole", "split", "threshold", "step-15m"],
)


@MODES
@pytest.mark.parametrize("coverage", [True, False], ids=["coverage", "raw"])
@pytest.mark.parametrize(("scenario", "flat"), [(sc.UNL_FLAT, 2)], ids=["flat"])
def test_flat_series_lacking_a_label_hide_no_call(
    lab: Lab, mode: tuple[str, ...], coverage: bool, scenario: sc.Scenario, flat: int
) -> None:
    """Version 1 was unknown ("1 series of its model have no model_version label") though every
    series lacking a label was flat all window; the header says how many."""
    run = run_cli("report", *lab.args(scenario, "--format", "json", *mode, coverage=coverage))
    assert run.exit_code == 0, run.stderr
    doc = run.json()
    model = scenario.name
    assert statuses(doc) == {(model, "1"): "safe", (model, "2"): "protected"}
    notes = " ".join(doc["header"]["notes"])
    assert f"{flat} series lacking the model_name or model_version label were flat all window" in notes


@MODES
@pytest.mark.parametrize(
    ("scenario", "words"),
    [
        (sc.UNL_DOWN, 'target {instance="tfs-1",job="tfs"} was down'),
        (sc.UNL_BORN, "1 series of its model have no model_version label"),
        (sc.UNL_RECREATE, "1 series of the metric have no model_name label"),
        (sc.UNL_RESET, "1 series of its model have no model_version label"),
        (sc.UNL_JOB, 'target {instance="canary-0",job="canary"} was down'),
        (sc.UNL_VANISH, "1 series of its model have no model_version label"),
    ],
    ids=["down-at-end", "born-with-calls", "created-anew", "reset-back", "other-job-down", "ended"],
)
@pytest.mark.parametrize("coverage", [True, False], ids=["coverage", "raw"])
def test_a_series_lacking_a_label_proves_flat_only_to_the_end(
    lab: Lab, mode: tuple[str, ...], scenario: sc.Scenario, words: str, coverage: bool
) -> None:
    """Each has one more fact than the flat control that may hide a call: version 1 stays unknown.
    Without --coverage, only the series' own target checks see the pod down at the end."""
    run = run_cli("report", *lab.args(scenario, "--format", "json", *mode, coverage=coverage))
    assert run.exit_code == 4, run.stderr
    doc = run.json()
    model = scenario.name
    assert statuses(doc) == {(model, "1"): "unknown", (model, "2"): "protected"}
    assert words in rows(doc)[(model, "1")]["reason"], rows(doc)[(model, "1")]["reason"]


# A hole in the middle of the window, without --coverage: each target's holes come from its `up`.

HOLE_MODES = pytest.mark.parametrize(
    ("coverage", "extra"),
    [
        (False, ()),
        (True, ()),
        (False, ("--split-by-model",)),
        (False, ("--threshold", "0.001")),
        (False, ("--window", "12h", "--step", "5m")),
        (False, ("--step", "15m")),
    ],
    ids=["raw", "coverage", "split", "threshold", "window-12h-step-5m", "step-15m"],
)


@HOLE_MODES
def test_a_restart_inside_a_targets_hole_may_hide_calls(
    lab: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    """h/1's counter on tfs-1 came back after the hole at the value it had (a restart inside it,
    then a call): no sample differs. Without --coverage it was safe."""
    code, doc = run(lab, sc.MID_HOLE, *extra, coverage=coverage)
    assert statuses(doc)[("h", "1")] == "unknown"
    assert code == 4
    reason = rows(doc)[("h", "1")]["reason"]
    assert 'instance="tfs-1"' in reason and "down" in reason, reason


@HOLE_MODES
def test_a_hole_across_the_windows_start_is_no_birth(
    lab: Lab, coverage: bool, extra: tuple[str, ...]
) -> None:
    """tfs-1 was scraped before the window and then had nothing stored until 20 h ago: hs/1's call
    in that hole died with a restart. A target first seen late is a new pod only if it was not
    scraped before the window."""
    code, doc = run(lab, sc.HOLE_START, *extra, coverage=coverage)
    if "--window" in extra:  # the hole and the call end before a 12 h window starts
        assert statuses(doc)[("hs", "1")] == "safe", rows(doc)[("hs", "1")]["reason"]
        return
    assert statuses(doc)[("hs", "1")] == "unknown"
    assert code == 4
    reason = rows(doc)[("hs", "1")]["reason"]
    assert 'instance="tfs-1"' in reason, reason


@HOLE_MODES
def test_a_hole_shorter_than_max_gap_is_tolerated(lab: Lab, coverage: bool, extra: tuple[str, ...]) -> None:
    """Control: tfs-1's 10-minute outage is under --max-gap 15m, and hc/1 stays safe."""
    code, doc = run(lab, sc.HOLE_SHORT, *extra, coverage=coverage)
    assert statuses(doc)[("hc", "1")] == "safe", rows(doc)[("hc", "1")]["reason"]
    assert code == 0
    assert "no gaps longer" in doc["header"]["coverage"] or "no holes" in doc["header"]["coverage"]

"""Recording rules (`retire rules`, `--use-recording-rules`) against a real Prometheus.

The rules' history is backfilled with promtool in two passes (fine group, then the rollups read
back from a Prometheus that has the fine series), from 30.5 h before END: the same history as
the raw `lab`, so both readings of every scenario can be compared verdict by verdict.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from retire.lab.servers import require, with_recorded_history
from tests import scenarios
from tests.conftest import Lab, run_cli, statuses

RULES_START = scenarios.END - 30.5 * scenarios.HOUR


def _rule_args(scenario: scenarios.Scenario) -> list[str]:
    args = ["--selector", f'scenario="{scenario.name}"']
    if scenario.name in ("triton", "torchserve"):
        args += ["--preset", scenario.name]
    return args


@pytest.fixture(scope="module")
def rules_lab(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("rules")
    files: dict[str, list[Path]] = {"fine": [], "rollup": []}
    for scenario in scenarios.ALL:
        for group in files:
            path = root / f"{scenario.name}-{group}.yml"
            run = run_cli("rules", *_rule_args(scenario), "--group", group, "-o", str(path))
            assert run.exit_code == 0, run.stderr
            files[group].append(path)
    server = with_recorded_history(
        lab.url, lab.root / "tsdb", files["fine"], files["rollup"], RULES_START, scenarios.END, root
    )
    try:
        yield Lab(server.url, lab.end, lab.root)
    finally:
        server.stop()


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    for args in (
        [],
        ["--preset", "triton"],
        ["--selector", 'job="t\\"fs",ns=~"a|b"', "--step", "30m"],
        ["--rule-interval", "30s", "--rollup-interval", "15m"],
    ):
        path = tmp_path / "rules.yml"
        run = run_cli("rules", *args, "-o", str(path))
        assert run.exit_code == 0, run.stderr
        check = subprocess.run(
            [require("promtool"), "check", "rules", str(path)], capture_output=True, text=True
        )
        assert check.returncode == 0, (args, check.stdout, check.stderr)
        assert "SUCCESS: 2 rules found" in check.stdout


@pytest.mark.prometheus
@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda s: s.name)
def test_same_verdicts_as_raw(lab: Lab, rules_lab: Lab, scenario: scenarios.Scenario) -> None:
    raw = run_cli("report", "--format", "json", *lab.args(scenario))
    recorded = run_cli("report", "--format", "json", "--use-recording-rules", *rules_lab.args(scenario))
    assert recorded.exit_code in (0, 4), recorded.stderr
    assert statuses(recorded.json()) == statuses(raw.json())
    assert recorded.exit_code == raw.exit_code


@pytest.mark.prometheus
def test_pitfalls_are_seen_from_recorded_series(rules_lab: Lab) -> None:
    """The seed query's blind spots, read from the rules: a single first call (a born series),
    calls only after the last full hour, calls between the seed's hourly windows."""
    run = run_cli("report", "--format", "json", "--use-recording-rules", *rules_lab.args(scenarios.PITFALLS))
    reasons = {(r["model"], r["version"]): r["reason"] for r in run.json()["rows"]}  # type: ignore[index]
    assert statuses(run.json()) == scenarios.PITFALLS_EXPECTED
    assert any("first call of series born in window" in r for r in reasons.values())
    header = run.json()["header"]  # type: ignore[index]
    assert "read from recording rules: no holes" in header["coverage"]
    assert set(header["queries"]) >= {"recorded_window", "recorded_recent", "recorded_rollups"}
    assert "series_last" not in header["queries"]  # no raw pass over the window


@pytest.mark.prometheus
def test_rules_made_for_other_options_are_never_read(rules_lab: Lab) -> None:
    run = run_cli(
        "report",
        "--format",
        "json",
        "--use-recording-rules",
        "--step",
        "30m",
        *rules_lab.args(scenarios.BASIC),
    )
    assert run.exit_code == 4
    report = run.json()
    assert "safe" not in statuses(report).values()
    unknown = [r["reason"] for r in report["rows"] if r["status"] == "unknown"]  # type: ignore[index]
    assert unknown and all("no recorded series" in r and "retire rules" in r for r in unknown)
    assert (
        "NOT found" in report["header"]["coverage"] or "could not be checked" in report["header"]["coverage"]
    )  # type: ignore[index]


@pytest.mark.prometheus
def test_rules_younger_than_the_window_make_nothing_safe(lab: Lab, rules_lab: Lab) -> None:
    """Seven hours before END the window starts 31 h before END, before the rules' history:
    the raw series could still call versions safe, the recorded ones must not."""
    at = str(scenarios.END - 7 * scenarios.HOUR)
    raw = run_cli("report", "--format", "json", *lab.args(scenarios.BASIC), "--at", at)
    assert "safe" in statuses(raw.json()).values()
    recorded = run_cli(
        "report", "--format", "json", "--use-recording-rules", *rules_lab.args(scenarios.BASIC), "--at", at
    )
    assert recorded.exit_code == 4
    report = recorded.json()
    would_be_safe = {k for k, s in statuses(raw.json()).items() if s == "safe"}
    assert {statuses(report)[k] for k in would_be_safe} == {"unknown"}
    assert "data gap: no samples of retire:" in " ".join(report["summary"]["unknown_causes"])  # type: ignore[index]


@pytest.mark.prometheus
def test_table_with_sparklines_and_query_listing(rules_lab: Lab) -> None:
    run = run_cli("report", "--use-recording-rules", *rules_lab.args(scenarios.BASIC))
    assert run.exit_code == 0, run.stderr
    assert "alpha" in run.stdout
    listing = run_cli("query", "--use-recording-rules", "--selector", 'scenario="basic"')
    assert "recorded_window (instant)" in listing.stdout and "series_last" not in listing.stdout


@pytest.mark.prometheus
def test_split_by_model_and_rules_exclude_each_other(rules_lab: Lab) -> None:
    run = run_cli("report", "--use-recording-rules", "--split-by-model", *rules_lab.args(scenarios.BASIC))
    assert run.exit_code == 2 and "exclude each other" in run.stderr

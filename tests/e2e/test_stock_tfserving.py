"""Stock TF Serving (`--preset tfserving`): a request counter per model and status, no version
label, end to end against real Prometheus. Each model's evidence stands for all its versions."""

from __future__ import annotations

import pytest

from retire.lab.synth import Scenario
from tests import scenarios as sc
from tests.conftest import Lab, rows, run_cli, statuses

pytestmark = pytest.mark.prometheus


def _report(lab: Lab, *extra: str, scenario: Scenario = sc.STOCK) -> tuple[int, dict]:
    run = run_cli("report", "--format", "json", *lab.args(scenario), *extra)
    assert run.exit_code in (0, 4), run.stderr
    return run.exit_code, run.json()  # type: ignore[return-value]


def test_stock_verdicts_per_model(lab: Lab) -> None:
    code, doc = _report(lab)
    assert statuses(doc) == sc.STOCK_EXPECTED
    assert "sum by (model_name) (" in doc["header"]["promql"]
    assert "model_version" not in doc["header"]["promql"]
    r = rows(doc)
    assert r[("busy", "1")]["reason"].startswith("whole model: ")
    assert r[("quiet", "1")]["reason"].startswith("whole model: ")
    assert "no series in window" in r[("unused", "1")]["reason"]
    assert code == 0


def test_a_model_served_under_another_name_is_unknown(lab: Lab) -> None:
    code, doc = _report(lab, scenario=sc.STOCK_RENAMED)
    assert statuses(doc) == sc.STOCK_RENAMED_EXPECTED
    assert "'ranker_v2'" in rows(doc)[("ranker", "1")]["reason"]
    assert code == 4


@pytest.mark.parametrize(
    "extra",
    [
        ("--threshold", "0.05"),
        ("--step", "30m"),
        ("--window", "6h"),
        ("--split-by-model",),
    ],
    ids=lambda e: " ".join(e),
)
def test_no_version_of_a_called_model_is_safe_in_any_mode(lab: Lab, extra: tuple[str, ...]) -> None:
    _, doc = _report(lab, *extra)
    got = statuses(doc)
    # One call is under a --threshold above 0 (what the threshold is for); the others are above it.
    for model in ("busy", "broken") if "--threshold" in extra else ("busy", "broken", "late"):
        assert all(s != "safe" for (m, _), s in got.items() if m == model), (model, got)
    _, renamed = _report(lab, *extra, scenario=sc.STOCK_RENAMED)
    assert statuses(renamed)[("ranker", "1")] != "safe"


def test_a_selector_on_a_version_label_the_counter_lacks_matches_nothing(lab: Lab) -> None:
    run = run_cli("report", "--format", "json", *lab.args(sc.STOCK), "--selector", 'model_version="1"')
    # No report (so nothing safe): one line naming the label the counter lacks (#26).
    assert run.exit_code == 2 and run.stdout == "", run.stderr
    assert "no series has the label model_version" in run.stderr


def test_recording_rules_are_refused_without_a_version_label(lab: Lab) -> None:
    run = run_cli("report", *lab.args(sc.STOCK), "--use-recording-rules")
    assert run.exit_code == 2
    assert "needs a per-version counter" in run.stderr and "Traceback" not in run.stderr


def _doctor(lab: Lab, scenario: str) -> tuple[int, str, str]:
    run = run_cli(
        "doctor", "--prometheus", lab.url, "--selector", f'scenario="{scenario}"', "--window", "1d",
    )  # fmt: skip
    return run.exit_code, run.stdout, run.stderr


def test_doctor_tells_stock_from_patched(lab: Lab) -> None:
    code, out, _ = _doctor(lab, "tfstock")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert code == 0 and out.splitlines()[-1] == "use: --preset tfserving"
    assert lines["tfserving"].split()[1] == "fits" and "calls per model" in lines["tfserving"]
    assert (
        lines["tfserving-patched"].split()[1] == "no"
        and "no series in the window" in lines["tfserving-patched"]
    )
    code, out, _ = _doctor(lab, "basic")
    assert code == 0 and out.splitlines()[-1] == "use: --preset tfserving-patched"
    code, out, _ = _doctor(lab, "torchserve")
    assert code == 0 and out.splitlines()[-1] == "use: --preset torchserve"


def test_doctor_with_nothing_found_says_so(lab: Lab) -> None:
    code, out, err = _doctor(lab, "no-such-scenario")
    assert code == 4 and "no preset's metric" in err and "Traceback" not in err
    assert all(line.split()[1] == "no" for line in out.splitlines())


def test_doctor_checks_the_metric_and_labels_set_by_hand(lab: Lab) -> None:
    run = run_cli(
        "doctor", "--prometheus", lab.url, "--selector", 'scenario="tfstock"', "--window", "1d",
        "--metric", sc.STOCK_METRIC, "--version-label", "status",
    )  # fmt: skip
    mine = next(line for line in run.stdout.splitlines() if line.startswith("your settings"))
    assert run.exit_code == 0 and "fits" in mine and "status value(s)" in mine


def test_doctor_against_a_server_that_answers_garbage() -> None:
    from tests.fake_servers import serve_routes

    with serve_routes(
        {("GET", "/api/v1/label/__name__/values"): (200, "text/html", b"<html>login</html>")}
    ) as url:
        run = run_cli("doctor", "--prometheus", url, "--timeout", "5")
    assert run.exit_code == 3 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_the_table_says_per_model_what_is_known(lab: Lab) -> None:
    """A called model is one line, not one identical line per version; machines still get each."""
    run = run_cli("report", *lab.args(sc.STOCK))  # piped: plain text, reasons in full
    lines = [line.split() for line in run.stdout.splitlines()]
    busy = [w for w in lines if w and w[0] == "busy"]
    assert len(busy) == 1 and busy[0][1:5] == ["1,", "2,", "3", "in-use"], busy
    quiet = [w for w in lines if w and w[0] == "quiet"]
    assert [w[1:3] for w in quiet] == [["1,", "2"], ["3", "protected"]] and quiet[0][3] == "safe"
    run = run_cli("report", "--format", "markdown", *lab.args(sc.STOCK))
    assert sum(line.startswith("| busy |") for line in run.stdout.splitlines()) == 1
    run = run_cli("safe-list", *lab.args(sc.STOCK))
    assert [line.split("\t")[:2] for line in run.stdout.splitlines()] == [
        ["quiet", "1"],
        ["quiet", "2"],
        ["unused", "1"],
    ]

"""End to end against a real Prometheus with backfilled history: every version's exact status."""

from __future__ import annotations

import pytest

from tests import scenarios as sc
from tests.conftest import Lab, rows, run_cli, statuses

pytestmark = pytest.mark.prometheus


def report(lab: Lab, scenario: sc.Scenario, *extra: str, coverage: bool = True) -> tuple[int, dict]:
    run = run_cli("report", *lab.args(scenario, "--format", "json", *extra, coverage=coverage))
    assert run.exit_code in (0, 4), run.stderr
    doc = run.json()
    assert isinstance(doc, dict)
    return run.exit_code, doc


def test_basic_statuses(lab: Lab) -> None:
    code, doc = report(lab, sc.BASIC)
    assert statuses(doc) == sc.BASIC_EXPECTED
    assert code == 0
    r = rows(doc)
    assert r[("alpha", "2")]["reason"] == "no series in window"
    assert "counter flat all window" in r[("alpha", "3")]["reason"]
    for key, status in sc.BASIC_EXPECTED.items():
        if status == "in-use":  # an in-use reason names the calls, never "flat"
            assert "flat" not in r[key]["reason"] and "calls in window" in r[key]["reason"], r[key]
    assert r[("alpha", "7")]["path"].endswith("/alpha/0007")  # leading zeros join with "7"
    assert r[("alpha", "9")]["path"] is None and r[("alpha", "9")]["on_disk"] is False
    assert r[("alpha", "1")]["max_hourly_qps"] == pytest.approx(1.0, rel=0.05)
    assert r[("alpha", "2")]["size_bytes"] == 2_000_000
    assert doc["summary"]["safe_bytes"] == 2_000_000 + 3_000_000 + 2_500_000
    assert doc["summary"]["safe_bytes_by_model"] == {"alpha": 5_000_000, "beta": 2_500_000}
    h = doc["header"]
    assert h["evaluated_at"].startswith(sc_iso(sc.END))
    assert "max_over_time(sum by (model_name, model_version)" in h["promql"]
    assert h["window_seconds"] == 86400 and h["step_seconds"] == 3600 and h["threshold"] == 0
    assert [x["path"].rsplit("/", 1)[1] for x in doc["ignored"]] == ["README", "tmp-upload"]


def sc_iso(ts: float) -> str:
    from retire.advisor import iso

    return iso(ts)


@pytest.mark.parametrize(("threshold", "beta1"), [("0.1", "safe"), ("0.01", "in-use")])
def test_threshold_above_and_below_a_versions_qps(lab: Lab, threshold: str, beta1: str) -> None:
    _, doc = report(lab, sc.BASIC, "--threshold", threshold)
    assert statuses(doc)[("beta", "1")] == beta1
    assert statuses(doc)[("beta", "3")] == "in-use"  # 2 req/s is above both


def test_at_in_the_past(lab: Lab) -> None:
    # 8 h earlier, over 23 h: alpha/5 (traffic only in the last 5 h) had none yet; alpha/3's
    # callers (gone 30 h before END) were still inside that window.
    at = sc.END - 8 * sc.HOUR
    _, doc = report(lab, sc.BASIC, "--at", str(at), "--window", "23h")
    s = statuses(doc)
    assert s[("alpha", "5")] == "safe"
    assert s[("alpha", "3")] == "in-use"
    assert doc["header"]["evaluated_at"] == sc_iso(at)


def test_window_reaching_before_the_data_is_unknown(lab: Lab) -> None:
    # History starts 32 h before END; a 24 h window ending 10 h before END starts 2 h earlier.
    code, doc = report(lab, sc.BASIC, "--at", str(sc.END - 10 * sc.HOUR))
    assert code == 4
    assert statuses(doc)[("alpha", "5")] == "unknown"
    assert "data gap" in rows(doc)[("alpha", "5")]["reason"]


def test_pitfalls_of_the_seed_query(lab: Lab) -> None:
    code, doc = report(lab, sc.PITFALLS)
    assert statuses(doc) == sc.PITFALLS_EXPECTED
    r = rows(doc)
    assert r[("m", "1")]["calls"] == 1  # the single first call
    assert "born in window" in r[("m", "1")]["reason"]
    assert r[("m", "2")]["calls"] > 0  # the last partial hour
    # Replicas are summed, not double counted; a reset neither hides nor inflates traffic.
    assert r[("m", "5")]["max_hourly_qps"] == pytest.approx(2.0, rel=0.05)
    assert r[("m", "4")]["max_hourly_qps"] == pytest.approx(0.5, rel=0.1)
    # Across the reset the calls are counted from the raw samples (issue #16: was the lower bound
    # since the restart, 6 h); calls in the blind moment before the reset stay a stated "≥".
    assert r[("m", "4")]["calls"] == pytest.approx(0.5 * 24 * 3600, rel=0.01)
    assert (
        "≥ " in r[("m", "4")]["reason"]
        and "counter reset in window, calls counted across it" in r[("m", "4")]["reason"]
    )
    assert r[("m", "6")]["calls"] == pytest.approx(0.5 * 86400, rel=0.05)
    assert "younger than --min-age" in r[("m", "10")]["reason"]
    assert code == 0


def test_call_between_hourly_windows(lab: Lab) -> None:
    _, doc = report(lab, sc.BETWEEN)
    assert statuses(doc) == sc.BETWEEN_EXPECTED
    r = rows(doc)[("w", "1")]
    assert r["max_hourly_qps"] == 0  # the seed query alone would call it safe
    assert r["calls"] == 1


def test_pod_gap_with_coverage_is_unknown(lab: Lab) -> None:
    code, doc = report(lab, sc.POD_GAP)
    assert statuses(doc) == {("g", "1"): "in-use", ("g", "2"): "unknown", ("g", "3"): "protected"}
    assert code == 4
    reason = rows(doc)[("g", "2")]["reason"]
    assert 'instance="tfs-1"' in reason and "down" in reason and "--max-gap" in reason


def test_pod_gap_without_coverage_is_read_from_its_up(lab: Lab) -> None:
    """tfs-1's 3 h outage: a restart inside it would have lost the calls it took before, so
    without --coverage too g/2 is unknown, from the `up` series of the metric's job (it used to be
    safe, the header saying per-target coverage was not checked)."""
    code, doc = report(lab, sc.POD_GAP, coverage=False)
    assert statuses(doc)[("g", "2")] == "unknown"
    assert 'target {instance="tfs-1",job="tfs",scenario="podgap"} was down' in rows(doc)[("g", "2")]["reason"]
    assert "targets' scrapes checked with up{" in doc["header"]["coverage"]
    assert "1 gap(s) longer than 15m" in doc["header"]["coverage"]
    assert code == 4


@pytest.mark.parametrize("coverage", [True, False])
def test_global_hole_is_unknown_with_or_without_coverage(lab: Lab, coverage: bool) -> None:
    code, doc = report(lab, sc.HOLE, coverage=coverage)
    assert statuses(doc) == {("h", "1"): "in-use", ("h", "2"): "unknown", ("h", "3"): "protected"}
    assert code == 4
    assert "data gap" in rows(doc)[("h", "2")]["reason"]
    assert doc["summary"]["unknown_causes"]


def test_keep_latest_zero_and_pin(lab: Lab) -> None:
    _, doc = report(lab, sc.BASIC, "--keep-latest", "0", "--pin", "alpha:0002")
    s = statuses(doc)
    assert s[("alpha", "8")] == "safe"
    assert s[("alpha", "2")] == "protected"
    assert "pinned" in rows(doc)[("alpha", "2")]["reason"]


def test_safe_list_tsv_json_csv(lab: Lab) -> None:
    run = run_cli("safe-list", *lab.args(sc.BASIC))
    assert run.exit_code == 0, run.stderr
    lines = [line.split("\t") for line in run.stdout.splitlines()]
    assert [(m, v) for m, v, _ in lines] == [("alpha", "2"), ("alpha", "3"), ("beta", "2")]
    assert all(p.endswith(f"/{m}/{v}") for m, v, p in lines)
    assert "3 safe to offload" in run.stderr

    doc = run_cli("safe-list", *lab.args(sc.BASIC, "--format", "json")).json()
    assert isinstance(doc, list)
    assert {"model", "version", "path", "size_bytes", "max_hourly_qps", "reason"} <= set(doc[0])
    assert all(isinstance(d["version"], str) for d in doc)

    csv_text = run_cli("safe-list", *lab.args(sc.BASIC, "--format", "csv")).stdout
    assert csv_text.splitlines()[0].startswith("model,version,path,size_bytes")
    assert len(csv_text.splitlines()) == 4


def test_safe_list_never_lists_unknown_and_exits_4(lab: Lab) -> None:
    run = run_cli("safe-list", *lab.args(sc.HOLE))
    assert run.exit_code == 4
    assert run.stdout == ""
    assert "unknown because" in run.stderr


def test_table_and_markdown_and_csv_reports(lab: Lab) -> None:
    table = run_cli("report", *lab.args(sc.BASIC))
    assert table.exit_code == 0
    assert "\x1b[" not in table.stdout  # not a terminal: plain text
    assert "alpha" in table.stdout and "no series in window" in table.stdout
    assert "3 safe to offload" in table.stdout
    md = run_cli("report", *lab.args(sc.BASIC, "--format", "markdown")).stdout
    assert "| MODEL | VERSION | STATUS" in md
    csv_text = run_cli("report", *lab.args(sc.BASIC, "--format", "csv")).stdout
    assert (
        csv_text.splitlines()[0]
        == "model,version,path,on_disk,size_bytes,max_hourly_qps,calls,series,status,reason,loaded,loaded_from"
    )  # issue 16 added loaded


def test_output_file_is_written_whole(lab: Lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report.json"
    run = run_cli("report", *lab.args(sc.BASIC, "--format", "json", "-o", str(out)))
    assert run.exit_code == 0 and run.stdout == ""
    assert out.read_text().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_model_base_path(lab: Lab) -> None:
    base = lab.models(sc.BASIC) / "beta"
    run = run_cli(
        "report",
        "--prometheus",
        lab.url,
        "--model-base-path",
        str(base),
        "--model-name",
        "beta",
        "--selector",
        'scenario="basic",model_name="beta"',
        "--at",
        str(lab.end),
        "--format",
        "json",
    )
    assert statuses(run.json()) == {("beta", "1"): "in-use", ("beta", "2"): "safe", ("beta", "3"): "in-use"}


def test_coverage_that_misses_the_metrics_targets_is_unknown(lab: Lab) -> None:
    # The pitfalls scenario is served by tfs-0 and tfs-1; this coverage selector names targets of
    # another scenario (tfs-0 only), so a gap on tfs-1 could never be seen: not safe.
    code, doc = report(lab, sc.PITFALLS, "--coverage", 'up{scenario="basic"}', coverage=False)
    assert code == 4
    assert statuses(doc)[("m", "8")] == "unknown"
    assert (
        'does not cover 1 target(s) that export the metric (instance="tfs-1")'
        in rows(doc)[("m", "8")]["reason"]
    )


def test_any_call_shows_in_the_sparkline(lab: Lab) -> None:
    """m/1 was called once (a series born in the window, which no rate sees) and w/1 once between
    two hourly rate windows: each sparkline shows a mark, never only `▁` (issue #16)."""
    from retire.formats.words import BLOCKS

    for scenario, key in ((sc.PITFALLS, "| m | 1 |"), (sc.BETWEEN, "| w | 1 |")):
        md = run_cli("report", *lab.args(scenario, "--format", "markdown")).stdout
        line = next(x for x in md.splitlines() if x.startswith(key))
        traffic = line.split("|")[5 if "LOADED" in md else 4]
        assert any(c in BLOCKS for c in traffic), line


def test_json_names_the_busiest_rate_for_any_step(lab: Lab) -> None:
    """`max_qps` is the busiest step's rate whatever --step is; `max_hourly_qps` stays, the same
    value, for scripts written when the step was always an hour (issue #16)."""
    _, doc = report(lab, sc.BASIC, "--step", "30m")
    busy = rows(doc)[("alpha", "1")]
    assert busy["max_qps"] == busy["max_hourly_qps"] == pytest.approx(1.0, rel=0.05)
    assert "busiest 30m" in busy["reason"]

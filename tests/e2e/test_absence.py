"""Disguises of absence (issue #12): data, options and answers where "no series" must not read as
"no calls". Each ends in `unknown` with a reason naming the cause, never `safe`; the controls show
that a truly idle version or model still comes out safe.

Against the real Prometheus lab (tests/scenarios.py); wrongly shaped answers from small real
servers (tests/fake_servers.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import fake_servers as fs
from tests import scenarios as sc
from tests.conftest import Lab, rows, run_cli, statuses

pytestmark = pytest.mark.prometheus


def report(
    lab: Lab, scenario: sc.Scenario, *extra: str, coverage: bool = True, replace: dict[str, str] | None = None
) -> tuple[int, dict]:
    """`retire report --format json` for a scenario; `replace` swaps the values of given options."""
    args = lab.args(scenario, "--format", "json", *extra, coverage=coverage)
    for option, value in (replace or {}).items():
        args[args.index(option) + 1] = value
    run = run_cli("report", *args)
    assert run.exit_code in (0, 4), run.stderr
    return run.exit_code, run.json()  # type: ignore[return-value]


def only_unknown_or_protected(doc: dict) -> None:
    got = statuses(doc)
    assert "safe" not in got.values(), got
    assert got[("alpha", "8")] == "protected" and got[("beta", "3")] == "protected"
    assert {k: v for k, v in got.items() if v != "protected"} == {
        k: "unknown" for k in got if k not in {("alpha", "8"), ("beta", "3")}
    }


# 1. A selector, metric or label name that matches nothing, with --coverage.


@pytest.mark.parametrize(
    ("replace", "extra", "cause"),
    [
        (
            {"--selector": 'scenario="basic",namespace="ml"'},
            (),
            "matched none of the series of :tensorflow:serving:model_call_count in the window: no series "
            "has the label namespace",
        ),
        (
            {"--selector": 'scenario="basik"'},
            (),
            'no value of scenario matches scenario="basik" (closest: basic',
        ),
        (
            {},
            ("--metric", "tensorflow:serving:model_call_count"),
            "--metric tensorflow:serving:model_call_count matched no series in the window: Prometheus has "
            "no metric of that name (closest: :tensorflow:serving:model_call_count",
        ),
        ({}, ("--metric", "typo_total"), "Prometheus has no metric of that name"),
        ({}, ("--version-label", "model_versoin"), "--version-label model_versoin matched no series"),
        ({}, ("--model-label", "model_nam"), "has that label (closest: model_name"),
    ],
    ids=["selector", "selector-value", "metric-colon", "metric", "version-label", "model-label"],
)
@pytest.mark.parametrize("command", ["report", "safe-list", "plan"])
def test_nothing_matched_is_one_line_naming_the_closest_names(
    lab: Lab, replace: dict[str, str], extra: tuple[str, ...], cause: str, command: str, tmp_path: Path
) -> None:
    """#26: a metric, selector or label that matches nothing in the whole window (even with
    --coverage) is one line at the top, exit 2, naming what Prometheus has that comes closest;
    no report, so nothing is safe (it was every row unknown, the cause repeated on each)."""
    args = lab.args(sc.BASIC, *extra)
    for option, value in replace.items():
        args[args.index(option) + 1] = value
    more = ["--archive-dir", str(tmp_path / "archive")] if command == "plan" else []
    run = run_cli(command, *args, *more)
    assert run.exit_code == 2, run.stderr
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("retire: error: "), run.stderr
    assert cause in lines[0], lines[0]


# 2. A window not longer than --max-gap can hold no hole, so no data at all would pass.


def test_short_window_with_a_wrong_metric_is_one_line(lab: Lab) -> None:
    args = lab.args(sc.BASIC, "--metric", "typo_total", "--window", "15m", "--step", "5m", coverage=False)
    run = run_cli("report", *args)
    assert run.exit_code == 2 and run.stdout == ""
    assert "--metric typo_total matched no series in the window" in run.stderr


def test_max_gap_as_long_as_the_window_is_unknown(lab: Lab) -> None:
    code, doc = report(lab, sc.BASIC, "--max-gap", "24h")
    assert code == 4
    got = statuses(doc)
    assert {k for k, v in got.items() if v == "unknown"} == {("alpha", "2"), ("alpha", "3"), ("beta", "2")}
    assert all(got[k] == v for k, v in sc.BASIC_EXPECTED.items() if v != "safe")  # in-use stays in-use
    assert "--window 1d is not longer than --max-gap 1d" in rows(doc)[("alpha", "2")]["reason"]


# 3. A selector that narrows the model label, or a label only some models carry.


def test_scope_control_everything_in_reach(lab: Lab) -> None:
    code, doc = report(lab, sc.SCOPE)
    assert statuses(doc) == sc.SCOPE_EXPECTED
    assert code == 0


def test_selector_on_the_model_label_puts_other_models_out_of_reach(lab: Lab) -> None:
    code, doc = report(lab, sc.SCOPE, replace={"--selector": 'scenario="scope",model_name="gpt"'})
    assert code == 4
    assert statuses(doc) == {**sc.SCOPE_EXPECTED, ("bert", "1"): "unknown", ("bert", "2"): "unknown"}
    assert "leaves out this version" in rows(doc)[("bert", "1")]["reason"]


def test_selector_on_a_label_only_some_models_carry(lab: Lab) -> None:
    code, doc = report(lab, sc.SCOPE, replace={"--selector": 'scenario="scope",instance="tfs-0"'})
    assert code == 4
    assert statuses(doc) == {
        **sc.SCOPE_EXPECTED,
        ("gpt", "2"): "unknown",  # flat on tfs-0, but called on tfs-1
        ("gpt", "3"): "unknown",  # served by tfs-1 only
        ("bert", "1"): "unknown",  # 300,000 calls, all on tfs-1
        ("bert", "2"): "unknown",
    }
    for key in (("gpt", "2"), ("gpt", "3"), ("bert", "1"), ("bert", "2")):
        assert "series outside --selector" in rows(doc)[key]["reason"], key
    assert "safe" not in statuses(doc).values()


# 4. Names on disk that are not the names served.


def test_names_on_disk_that_differ_from_names_served_are_unknown(lab: Lab) -> None:
    code, doc = report(lab, sc.NAMES)
    assert code == 4
    assert statuses(doc) == {
        ("delta", "1"): "unknown",
        ("delta", "2"): "unknown",
        ("delta", "3"): "protected",
        ("delta-prod", "1"): "not-on-disk",
        ("delta-prod", "2"): "not-on-disk",
        ("kappa", "1"): "safe",  # served under its own name: flat all window
        ("kappa", "2"): "protected",
        ("zeta", "1"): "unknown",  # idle, or served under another name: cannot tell
        ("zeta", "2"): "protected",
    }
    reason = rows(doc)[("delta", "1")]["reason"]
    assert "'delta-prod'" in reason and "--model-config" in reason


def test_the_model_config_maps_served_names_and_an_idle_model_is_safe(lab: Lab) -> None:
    root = lab.models(sc.NAMES)
    config = root / "names.config"
    config.write_text(sc.NAMES_CONFIG)
    args = lab.args(sc.NAMES, "--format", "json")
    i = args.index("--model-dir")
    del args[i : i + 2]
    run = run_cli("report", *args, "--model-config", str(config))
    assert run.exit_code == 0, run.stderr
    assert statuses(run.json()) == {
        ("delta-prod", "1"): "in-use",
        ("delta-prod", "2"): "in-use",
        ("delta-prod", "3"): "protected",
        ("kappa", "1"): "safe",
        ("kappa", "2"): "protected",
        ("zeta", "1"): "safe",  # a whole idle model, and no series names a model without a directory
        ("zeta", "2"): "protected",
    }


# 5 and 6. Series identity is the label set; non-finite counters.


def test_series_identity_and_infinite_counters(lab: Lab) -> None:
    code, doc = report(lab, sc.IDENTITY)
    assert statuses(doc) == sc.IDENTITY_EXPECTED
    assert code == 4
    r = rows(doc)
    assert r[("q", "1")]["calls"] == 1 and "1 series born in window" in r[("q", "1")]["reason"]
    assert "NaN/Inf" in r[("q", "2")]["reason"]
    assert "counter flat all window" in r[("q", "3")]["reason"]


def _duplicated(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
    """A proxy that merges two stores without deduplication: the same series twice, one flat, one
    busy (born in the window), so the verdict would depend on the order."""
    if path.endswith("/query") and form["query"].startswith("last_over_time"):
        series = [{"metric": fs.FLAT, "value": [float(form["time"]), v]} for v in ("7", "9")]
        body = {"status": "success", "data": {"resultType": "vector", "result": series}}
        return 200, "application/json", json.dumps(body).encode()
    return fs.full_answer(path, form)


def test_duplicate_series_in_one_answer_is_a_prometheus_error(tmp_path: Path) -> None:
    for v in ("1", "2"):
        (tmp_path / "m" / v).mkdir(parents=True)
    with fs.serve(_duplicated) as url:
        run = run_cli(
            "report",
            "--prometheus",
            url,
            "--model-dir",
            str(tmp_path),
            "--keep-latest",
            "0",
            "--min-age",
            "0",
        )
    assert run.exit_code == 3, run.stdout
    line = run.stderr.strip()
    assert line.startswith("retire: error:") and "the same series twice" in line and "\n" not in line


# 9. Each server's own rules for version directories, through every inventory option.


def test_triton_ignores_leading_zero_directories(lab: Lab) -> None:
    code, doc = report(lab, sc.TRITON0)
    assert statuses(doc) == sc.TRITON0_EXPECTED
    assert code == 0
    ignored = {Path(i["path"]).name: i["reason"] for i in doc["ignored"]}
    assert "not a version Triton loads" in ignored["03"]


def test_triton_model_base_path_honours_config_pbtxt(lab: Lab) -> None:
    root = lab.models(sc.TRITON0)
    for model, expected in (
        ("spec0", {("spec0", "1"): "protected", ("spec0", "2"): "protected"}),
        ("t0", {("t0", "1"): "safe", ("t0", "2"): "protected"}),
    ):
        run = run_cli(
            "report",
            "--prometheus",
            lab.url,
            "--preset",
            "triton",
            "--format",
            "json",
            "--at",
            str(lab.end),
            "--model-base-path",
            str(root / model),
            "--model-name",
            model,
            "--selector",
            f'scenario="triton0",model="{model}"',
        )
        assert run.exit_code == 0, run.stderr
        assert statuses(run.json()) == expected
        if model == "spec0":
            assert (
                "specific version policy in spec0/config.pbtxt" in rows(run.json())[("spec0", "1")]["reason"]
            )


@pytest.mark.parametrize("preset", ["triton", "torchserve"])
def test_model_config_file_is_refused_for_other_servers(lab: Lab, tmp_path: Path, preset: str) -> None:
    config = tmp_path / "models.config"
    config.write_text(sc.NAMES_CONFIG)
    run = run_cli("report", "--prometheus", lab.url, "--preset", preset, "--model-config", str(config))
    assert run.exit_code == 2
    assert "--model-config is TF Serving's --model_config_file" in run.stderr


# Issue #16: counter resets (a reload) are counted across, and only their blind moment is a doubt.


def test_reload_counts_calls_across_the_reset_and_tolerates_one_scrape(lab: Lab) -> None:
    code, doc = report(lab, sc.RELOAD, coverage=False)
    assert statuses(doc) == sc.RELOAD_EXPECTED
    assert code == 0
    r = rows(doc)
    assert r[("r", "2")]["calls"] == pytest.approx(0.5 * 24 * 3600, rel=0.01)
    assert "calls counted across it" in r[("r", "1")]["reason"]
    code, doc = report(lab, sc.RELOAD_BLIND, coverage=False)
    assert statuses(doc) == {("rb", "1"): "unknown", ("rb", "2"): "in-use", ("rb", "3"): "protected"}
    assert code == 4
    reason = rows(doc)[("rb", "1")]["reason"]
    assert "no sample for 1h" in reason and "longer than --max-gap 15m" in reason, reason
    assert 'target {instance="tfs-1",job="tfs",scenario="reloadblind"} was down (up = 0)' in reason, reason


# Found by attacking the change.


def test_metric_vanishing_while_targets_stay_up_is_a_hole_even_with_coverage(lab: Lab) -> None:
    for coverage in (True, False):
        code, doc = report(lab, sc.VANISH, coverage=coverage)
        assert statuses(doc) == {("v", "1"): "unknown", ("v", "2"): "in-use", ("v", "3"): "protected"}
        assert code == 4
        assert "no samples of" in rows(doc)[("v", "1")]["reason"]
        assert "its series ended before the window's end" in rows(doc)[("v", "2")]["reason"]  # issue 16


def test_version_labels_no_directory_can_have_are_a_naming_mismatch(lab: Lab) -> None:
    code, doc = report(lab, sc.LABELS)
    assert statuses(doc) == {("lam", "1"): "unknown", ("lam", "2"): "protected", ("lam", "v1"): "not-on-disk"}
    assert code == 4
    assert "version labels no version directory can have ('v1')" in rows(doc)[("lam", "1")]["reason"]


def test_a_version_label_that_every_series_has_is_not_a_version(lab: Lab) -> None:
    code, doc = report(lab, sc.BASIC, "--version-label", "instance")
    assert code == 4
    assert "safe" not in statuses(doc).values()
    assert "--version-label may name the wrong label" in rows(doc)[("alpha", "2")]["reason"]


def test_torchserve_versions_join_as_written(lab: Lab) -> None:
    code, doc = report(lab, sc.TORCHSERVE0)
    assert statuses(doc) == {("eps", "01"): "in-use", ("eps", "02"): "safe", ("eps", "03"): "protected"}
    assert code == 0


def test_busy_series_with_no_version_label_make_their_model_unknown(lab: Lab) -> None:
    """Issue #15: every other query asks for both labels, so u's busy series without a version
    label were invisible and u/1 (flat) came out safe; ok, without such series, stays safe."""
    code, doc = report(lab, sc.NO_VERSION)
    assert statuses(doc) == {
        ("u", "1"): "unknown",
        ("u", "2"): "protected",
        ("ok", "1"): "safe",
        ("ok", "2"): "protected",
    }
    assert code == 4
    reason = rows(doc)[("u", "1")]["reason"]
    assert "1 series of its model have no model_version label" in reason
    assert 'count by (model_name) (:tensorflow:serving:model_call_count{model_version="",scenario=' in reason


@pytest.mark.parametrize("split", [(), ("--split-by-model",)], ids=["whole", "split"])
def test_busy_series_with_no_model_label_make_every_model_unknown(lab: Lab, split: tuple[str, ...]) -> None:
    """Split by model, each model's queries carry a matcher on the model label, which hides the
    series without one: unlabelled_series runs once, unsplit."""
    code, doc = report(lab, sc.NO_MODEL, *split)
    assert statuses(doc) == {("n", "1"): "unknown", ("n", "2"): "protected"}
    assert code == 4
    assert "1 series of the metric have no model_name label" in rows(doc)[("n", "1")]["reason"]
    assert any("no model_name label" in c for c in doc["summary"]["unknown_causes"])


def _index_with_warnings(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
    """A Thanos-like querier whose index answer is partial: it must not prove anything absent."""
    if path.endswith("/series"):
        body = {"status": "success", "data": [], "warnings": ["store 10.0.0.7 unreachable"]}
        return 200, "application/json", json.dumps(body).encode()
    return fs.full_answer(path, form)


def _rate_without_series(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
    """The busiest-step query answers m/2, the per-series queries do not: the answers disagree."""
    if path.endswith("/query") and form["query"].startswith("max_over_time(sum"):
        result = [
            {"metric": {"model_name": m, "model_version": v}, "value": [float(form["time"]), "0"]}
            for m, v in (("m", "1"), ("m", "2"))
        ]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return 200, "application/json", json.dumps(body).encode()
    return fs.full_answer(path, form)


@pytest.mark.parametrize(
    ("handler", "extra", "words"),
    [
        (_index_with_warnings, ("--selector", 'job="tfs"'), "store 10.0.0.7 unreachable"),
        (_rate_without_series, (), "no per-series values: the answers disagree"),
    ],
    ids=["partial-index", "rate-without-series"],
)
def test_answers_that_prove_nothing_are_unknown(
    tmp_path: Path, handler: fs.Handler, extra: tuple[str, ...], words: str
) -> None:
    for v in ("1", "2"):
        (tmp_path / "m" / v).mkdir(parents=True)
    with fs.serve(handler) as url:
        run = run_cli(
            "report",
            "--prometheus",
            url,
            "--model-dir",
            str(tmp_path),
            "--keep-latest",
            "0",
            "--min-age",
            "0",
            "--format",
            "json",
            *extra,
        )
    assert run.exit_code == 4, run.stderr
    doc = run.json()
    assert statuses(doc)[("m", "2")] == "unknown"
    assert words in rows(doc)[("m", "2")]["reason"]


def test_calls_hidden_by_a_reset_back_to_the_starting_value_are_counted(lab: Lab) -> None:
    code, doc = report(lab, sc.CRON)
    assert statuses(doc) == {("c", "1"): "in-use", ("c", "2"): "safe", ("c", "3"): "protected"}
    assert code == 0
    assert rows(doc)[("c", "1")]["calls"] == 50


def _reread(warnings: list[str]) -> fs.Handler:
    """m/1's counter went from 7 to 0 (a reload, idle since); the re-read of its samples may come
    back with warnings (a partial answer)."""

    def handler(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
        at = float(form.get("time", 0))
        query = form.get("query", "")

        def vector(value: str) -> tuple[int, str, bytes]:
            body = {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": fs.FLAT, "value": [at, value]}]},
            }
            return 200, "application/json", json.dumps(body).encode()

        if path.endswith("/query") and query.startswith("resets("):
            return vector("1")
        if path.endswith("/query") and query.startswith("last_over_time("):
            return vector("0")
        if path.endswith("/query") and query.endswith("s]") and "{" in query and not query.startswith("up{"):
            points = [[at - 600, "7"], [at - 300, "0"], [at, "0"]]
            body = {
                "status": "success",
                "warnings": warnings,
                "data": {"resultType": "matrix", "result": [{"metric": fs.FLAT, "values": points}]},
            }
            return 200, "application/json", json.dumps(body).encode()
        return fs.full_answer(path, form)

    return handler


@pytest.mark.parametrize(
    ("warnings", "expected"), [([], "safe"), (["store 10.0.0.9 unreachable"], "unknown")]
)
def test_a_partial_re_read_of_a_reset_counter_counts_nothing(
    tmp_path: Path, warnings: list[str], expected: str
) -> None:
    for v in ("1", "2"):
        (tmp_path / "m" / v).mkdir(parents=True)
    with fs.serve(_reread(warnings)) as url:
        run = run_cli(
            "report",
            "--prometheus",
            url,
            "--model-dir",
            str(tmp_path),
            "--keep-latest",
            "0",
            "--min-age",
            "0",
            "--format",
            "json",
        )
    assert run.exit_code == (4 if warnings else 0), run.stderr
    doc = run.json()
    assert statuses(doc)[("m", "1")] == expected
    if warnings:
        assert "store 10.0.0.9 unreachable" in rows(doc)[("m", "1")]["reason"]
    else:
        assert "calls counted across it (5m without samples before it)" in rows(doc)[("m", "1")]["reason"]

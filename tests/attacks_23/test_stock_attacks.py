"""Attacks on the stock TF Serving preset (`--preset tfserving`, `--version-label ''`) and on
`retire doctor`, against a real Prometheus backfilled with worlds of their own and against small
real misbehaving HTTP servers. The claim attacked: no version of a model that had any call in the
window is ever `safe`, in any mode; doctor's every wait is bounded, its errors one line, its
secrets kept. Each strict xfail shows an attack that works; the plain tests are attacks that held.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from retire.lab.servers import Prometheus, backfill
from retire.lab.synth import HOUR, Scenario, Traffic, VersionDir, write_openmetrics
from tests import scenarios as sc
from tests.conftest import Lab, run_cli, statuses
from tests.hostile_servers import Answer, Request, echo_error, serve

MIN = 60.0
OK = (("status", "OK"),)
OLD = 10 * sc.DAY


def _world(name: str, traffic: tuple[Traffic, ...], models: dict[str, int], job: str = "tfs") -> Scenario:
    disk = tuple(VersionDir(m, str(v), age=OLD) for m, n in models.items() for v in range(1, n + 1))
    return Scenario(
        name=name, labels={"scenario": name}, metric=sc.STOCK_METRIC, traffic=traffic, disk=disk, job=job
    )


# Calls only with a status the --selector leaves out, and calls on series with no status label.
STATUS = _world(
    "a23status",
    (
        Traffic("oks", "", qps=0.2, labels=OK),
        Traffic("errs", "", qps=0.1, labels=(("status", "NOT_FOUND"),)),
        Traffic("nostat", "", qps=0.1),
        Traffic("idle", "", calls=(-40 * HOUR,), labels=OK),
    ),
    {"oks": 2, "errs": 2, "nostat": 2, "idle": 2},
)
# The same model's calls on series with and without a model_version label.
MIXVER = _world(
    "a23mixver",
    (
        Traffic("mix", "1", qps=0.1, labels=OK),  # only versioned series
        Traffic("mix2", "", calls=(-40 * HOUR,), labels=OK),  # flat, unversioned
        Traffic("mix2", "2", qps=0.05, labels=OK),  # called, versioned
        Traffic("idle", "", calls=(-40 * HOUR,), labels=OK),
    ),
    {"mix": 3, "mix2": 3, "idle": 2},
)
# Calls on series with no model_name label: they may be any model's.
NOMODEL = _world(
    "a23nomodel",
    (
        Traffic("", "", qps=0.1, labels=OK),
        Traffic("calm", "", calls=(-40 * HOUR,), labels=OK),
    ),
    {"calm": 2, "silent": 2},
)
# A counter created anew mid-window that climbs back to its old value (a restart, one call).
RESET = _world(
    "a23reset",
    (
        Traffic("rst", "", calls=(-40 * HOUR, -5 * HOUR), restarts=(-6 * HOUR,), labels=OK),
        Traffic("idle", "", calls=(-40 * HOUR,), labels=OK),
    ),
    {"rst": 2, "idle": 2},
)
# At a threshold: the model's traffic is over it only summed over its series (statuses, with and
# without a version label, a burst split over two pods between two scrapes).
THRESH = _world(
    "a23thresh",
    (
        Traffic("thr", "", qps=0.03, labels=OK),
        Traffic("thr", "", qps=0.03, labels=(("status", "UNAVAILABLE"),)),
        Traffic("thr2", "1", qps=0.03, labels=OK),
        Traffic("thr2", "", qps=0.03, labels=OK),
        Traffic("bur", "", calls=(-40 * HOUR, *(-3 * HOUR - 30.5,) * 100), labels=OK),
        Traffic("bur", "", "tfs-1", calls=(-40 * HOUR, *(-3 * HOUR - 30.5,) * 100), labels=OK),
        Traffic("tidle", "", calls=(-40 * HOUR,), labels=OK),
    ),
    {"thr": 2, "thr2": 2, "bur": 2, "tidle": 2},
)
# Directories whose served names differ only by case or punctuation.
CASE = _world(
    "a23case",
    (
        Traffic("kappa", "", qps=0.1, labels=OK),
        Traffic("delta_prod", "", qps=0.1, labels=OK),
        Traffic("idle", "", calls=(-40 * HOUR,), labels=OK),
    ),
    {"Kappa": 2, "delta-prod": 2, "idle": 2},
)
# Two jobs with the same scenario label: the model is called only on the job the selector leaves out.
TWOJOB = _world("a23twojob", (Traffic("jb", "", calls=(-40 * HOUR,), labels=OK),), {"jb": 2})
TWOJOB_B = _world("a23twojob", (Traffic("jb", "", "tfs-b0", qps=0.1, labels=OK),), {}, job="tfs-b")
# Model names with markup and control characters, idle (merged rows), beside a called model.
MARKUP_NAMES = ("<i>x|y&amp;", "e\x1b[31mvil", "tab\tbed")
MARKUP = _world(
    "a23markup",
    (
        Traffic("anchor", "", calls=(-40 * HOUR,), labels=OK),
        Traffic("busy", "", qps=0.1, labels=OK),
    ),
    {**dict.fromkeys(MARKUP_NAMES, 3), "anchor": 3, "busy": 3},
)
WORLDS = (STATUS, MIXVER, NOMODEL, RESET, THRESH, CASE, TWOJOB, TWOJOB_B, MARKUP)


@pytest.fixture(scope="module")
def lab23(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("attacks23")
    om = root / "history.om"
    write_openmetrics(om, WORLDS, end=sc.END, history=sc.HISTORY, interval=60)
    backfill(om, root / "tsdb")
    with Prometheus(root / "tsdb", root / "prometheus") as server:
        yield Lab(server.url, sc.END, root)


def _args(lab: Lab, world: Scenario, selector: str | None = None, coverage: bool = True) -> list[str]:
    out = [
        "--prometheus", lab.url, "--model-dir", str(lab.models(world)), "--at", str(lab.end),
        "--preset", "tfserving", "--selector", selector or f'scenario="{world.name}"',
    ]  # fmt: skip
    if coverage:
        out += ["--coverage", f'up{{scenario="{world.name}"}}']
    return out


def _statuses(
    lab: Lab, world: Scenario, *extra: str, selector: str | None = None
) -> dict[tuple[str, str], str]:
    run = run_cli("report", "--format", "json", *_args(lab, world, selector), *extra)
    assert run.exit_code in (0, 4), run.stderr
    assert "Traceback" not in run.stderr
    return statuses(run.json())


def _not_safe(got: dict[tuple[str, str], str], *models: str) -> None:
    bad = {k: s for k, s in got.items() if k[0] in models and s == "safe"}
    assert not bad, (bad, got)


MODES = pytest.mark.parametrize(
    "extra",
    [(), ("--threshold", "0.0002"), ("--split-by-model",), ("--step", "30m"), ("--window", "6h")],
    ids=lambda e: " ".join(e) or "default",
)


@pytest.mark.prometheus
@MODES
@pytest.mark.parametrize(
    "selector",
    ['status="OK"', 'status=~"OK|"', 'model_name=~"oks|errs|nostat|idle"'],
)
def test_a_status_selector_hides_no_call(lab23: Lab, extra: tuple[str, ...], selector: str) -> None:
    """Calls with a status the selector leaves out, and on series that have no status label."""
    got = _statuses(lab23, STATUS, *extra, selector=f'scenario="a23status",{selector}')
    _not_safe(got, "oks", "errs", "nostat")
    assert got[("idle", "1")] in ("safe", "unknown")


@pytest.mark.prometheus
@MODES
@pytest.mark.parametrize("selector", ["", ',model_version="1"', ',model_version!="1"', ',model_version=""'])
def test_series_with_and_without_a_version_label(lab23: Lab, extra: tuple[str, ...], selector: str) -> None:
    got = _statuses(lab23, MIXVER, *extra, selector=f'scenario="a23mixver"{selector}')
    _not_safe(got, "mix", "mix2")


@pytest.mark.prometheus
@MODES
@pytest.mark.parametrize("selector", ["", ',model_name="calm"', ',model_name=~"calm|silent"'])
def test_calls_with_no_model_label_may_be_any_models(
    lab23: Lab, extra: tuple[str, ...], selector: str
) -> None:
    got = _statuses(lab23, NOMODEL, *extra, selector=f'scenario="a23nomodel"{selector}')
    _not_safe(got, "calm", "silent")


@pytest.mark.prometheus
@MODES
def test_a_counter_created_anew_back_at_its_old_value(lab23: Lab, extra: tuple[str, ...]) -> None:
    _not_safe(_statuses(lab23, RESET, *extra), "rst")


@pytest.mark.prometheus
@pytest.mark.parametrize("threshold", ["0.05", "0.04"])
def test_a_threshold_compares_the_whole_models_traffic(lab23: Lab, threshold: str) -> None:
    got = _statuses(lab23, THRESH, "--threshold", threshold)
    _not_safe(got, "thr", "thr2", "bur")
    assert got[("tidle", "1")] == "safe"


@pytest.mark.prometheus
@pytest.mark.parametrize("extra", [(), ("--split-by-model",), ("--threshold", "0.05")], ids=str)
@pytest.mark.parametrize(
    "selector", ["", ',model_name="Kappa"', ',model_name=~"Kappa|delta-prod"', ',model_name!="kappa"']
)
def test_names_that_differ_by_case_or_punctuation(lab23: Lab, extra: tuple[str, ...], selector: str) -> None:
    got = _statuses(lab23, CASE, *extra, selector=f'scenario="a23case"{selector}')
    _not_safe(got, "Kappa", "delta-prod")


@pytest.mark.prometheus
@pytest.mark.parametrize("extra", [(), ("--split-by-model",), ("--threshold", "0.05")], ids=str)
def test_a_model_called_only_on_a_job_the_selector_leaves_out(lab23: Lab, extra: tuple[str, ...]) -> None:
    args = _args(lab23, TWOJOB, 'scenario="a23twojob",job="tfs"', coverage=False)
    run = run_cli(
        "report", "--format", "json", *args, "--coverage", 'up{scenario="a23twojob",job="tfs"}', *extra
    )
    assert run.exit_code in (0, 4), run.stderr
    _not_safe(statuses(run.json()), "jb")


@pytest.mark.prometheus
def test_the_version_label_emptied_on_a_per_version_counter(lab: Lab) -> None:
    """The patched counter read per model (`--version-label ''`): every version of a called model."""
    run = run_cli("report", "--format", "json", *lab.args(sc.BASIC), "--version-label", "")
    assert run.exit_code in (0, 4), run.stderr
    got = statuses(run.json())
    _not_safe(got, "alpha", "beta")
    assert all("whole model: " in r["reason"] for r in run.json()["rows"])  # type: ignore[index]


@pytest.mark.prometheus
def test_a_window_not_longer_than_max_gap_is_no_evidence(lab23: Lab) -> None:
    got = _statuses(lab23, STATUS, "--window", "10m", "--step", "5m")
    assert "safe" not in got.values(), got


# --- Merged rows: markup and control characters in model names, one row per version for machines.


@pytest.mark.prometheus
def test_merged_rows_with_markup_and_control_characters(lab23: Lab) -> None:
    args = _args(lab23, MARKUP)
    table = run_cli("report", *args)
    assert table.exit_code in (0, 4), table.stderr
    assert "\x1b" not in table.stdout and "\t" not in table.stdout
    busy = [line for line in table.stdout.splitlines() if line.startswith("busy ")]
    assert len(busy) == 1 and "1, 2, 3" in busy[0] and "in-use" in busy[0], table.stdout
    md = run_cli("report", "--format", "markdown", *args).stdout
    assert "\x1b" not in md and "<i>" not in md
    table_lines = [line for line in md.splitlines() if line.startswith("|")]
    pipes = {len(re.findall(r"(?<!\\)\|", line)) for line in table_lines}
    assert len(pipes) == 1, table_lines
    html = run_cli("report", "--format", "html", *args).stdout
    assert "<i>x" not in html and "\x1b" not in html
    doc = run_cli("report", "--format", "json", *args).json()
    assert len(doc["rows"]) == 5 * 3  # type: ignore[index]
    csv = run_cli("report", "--format", "csv", *args).stdout.splitlines()
    assert sum(",busy," in f",{line}" for line in csv) == 3
    safe = run_cli("safe-list", *args).stdout.splitlines()
    assert all(len(line.split("\t")) >= 2 for line in safe) and len(safe) == 2 * 2, (
        safe
    )  # the control-character names are never moved


@pytest.mark.prometheus
def test_merged_rows_keep_statuses_apart(lab23: Lab) -> None:
    """A pinned version between two safe ones, and the newest kept: never one row with them."""
    args = [*_args(lab23, MARKUP), "--pin", "anchor:2"]
    lines = [line.split() for line in run_cli("report", *args).stdout.splitlines()]
    anchor = [w[:3] for w in lines if w and w[0] == "anchor"]
    assert anchor == [["anchor", "1", "safe"], ["anchor", "2", "protected"], ["anchor", "3", "protected"]]


# --- retire doctor against misbehaving servers.


def _label_values(values: list[str]) -> bytes:
    return json.dumps({"status": "success", "data": values}).encode()


def _slow_everything(delay: float) -> object:
    """A Prometheus that holds every preset's metric with its labels, answering each call after
    `delay` seconds: each answer within --timeout, all of them together far past --deadline."""

    def handler(request: Request) -> Answer:
        time.sleep(delay)
        if request.path.endswith("/__name__/values"):
            return Answer(body=_label_values([sc.STOCK_METRIC, ":tensorflow:serving:model_call_count",
                                              "nv_inference_request_success", "ts_inference_requests_total"]))  # fmt: skip
        return Answer(body=_label_values(["a", "b"]))

    return handler


def test_doctor_honours_the_deadline() -> None:
    with serve(_slow_everything(0.8)) as url:  # type: ignore[arg-type]
        began = time.monotonic()
        run = run_cli("doctor", "--prometheus", url, "--timeout", "5", "--deadline", "2")
        took = time.monotonic() - began
    assert took < 4, (took, run.exit_code, run.stdout, run.stderr)
    assert run.exit_code == 3 and "--deadline" in run.stderr


def test_doctor_against_a_silent_server_is_bounded_by_the_timeout() -> None:
    from tests.trickle_servers import http, json_answer

    with http("silent", json_answer({})) as url:
        began = time.monotonic()
        run = run_cli("doctor", "--prometheus", url, "--timeout", "2")
        took = time.monotonic() - began
    assert took < 6 and run.exit_code == 3, (took, run.stderr)
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


@pytest.mark.parametrize("way", ["status", "headers", "body", "chunked"])
def test_doctor_against_a_trickling_server_is_bounded(way: str) -> None:
    from tests.trickle_servers import http, json_answer

    with http(way, json_answer({"status": "success", "data": [sc.STOCK_METRIC]})) as url:
        began = time.monotonic()
        run = run_cli("doctor", "--prometheus", url, "--timeout", "2")
        took = time.monotonic() - began
    assert took < 6 and run.exit_code == 3, (took, run.stderr)
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_doctor_never_repeats_credentials(tmp_path: Path) -> None:
    """A server whose error text echoes every request header; the URL carries user info."""
    token = tmp_path / "token"
    token.write_text("t0ken-s3cret\n")
    with serve(echo_error) as url:
        for extra in (
            ["--prometheus", url.replace("http://", "http://alice:pa55-s3cret@")],
            ["--prometheus", url, "--bearer-token-file", str(token)],
            ["--prometheus", url, "--header", "X-Api-Key: k3y-s3cret"],
        ):
            run = run_cli("doctor", *extra, "--timeout", "5")
            assert run.exit_code == 3, (extra, run.stdout, run.stderr)
            out = run.stdout + run.stderr
            assert "s3cret" not in out and "pa55" not in out and "cGE1" not in out, out
            assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "data",
    [[1, None], {"a": "b"}, ["\x1b[2J" + sc.STOCK_METRIC], None, "x" * 10],
    ids=["not-strings", "object", "escape", "null", "string"],
)
def test_doctor_against_odd_label_values(data: object) -> None:
    def handler(request: Request) -> Answer:
        return Answer(body=json.dumps({"status": "success", "data": data}).encode())

    with serve(handler) as url:
        run = run_cli("doctor", "--prometheus", url, "--timeout", "5")
    assert run.exit_code in (3, 4), (run.exit_code, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and "\x1b" not in run.stdout + run.stderr


def test_doctor_says_when_the_answer_was_partial() -> None:
    def handler(request: Request) -> Answer:
        doc = {"status": "success", "data": [], "warnings": ["store 10.0.0.7:10901 unavailable"]}
        return Answer(body=json.dumps(doc).encode())

    with serve(handler) as url:
        run = run_cli("doctor", "--prometheus", url, "--timeout", "5")
    assert "unavailable" in run.stdout + run.stderr or "partial" in run.stdout + run.stderr, run.stderr
    assert run.exit_code == 3 and run.stderr.count("\n") == 1

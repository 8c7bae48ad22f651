"""What a person at a terminal sees: `retire report` run under real pseudo-terminals of 80, 120 and
200 columns against the real Prometheus lab. No line is wider than the terminal, every version is
one line, no word in MODEL, VERSION or STATUS is split, the header comes first, and a progress bar
shows only for per-model queries, on stderr, never when piped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

from retire.formats.cells import COLUMNS
from retire.formats.fitting import fit, shorten, shrink
from retire.lab.synth import make_model_tree
from retire.lab.terminal import run_in_terminal
from tests import scenarios
from tests.conftest import Lab, run_cli

ROOT = Path(__file__).resolve().parents[2]
LONG = "recommendation_ranker_multilingual_v2"  # 37 characters, with underscores to break at


def _report(args: list[str], columns: int, *extra: str) -> tuple[str, str, int]:
    run = run_in_terminal([sys.executable, "-m", "retire", "report", *args, *extra], columns, cwd=str(ROOT))
    assert "\x1b[" in run.raw, "not treated as a terminal"
    return run.text, run.stderr, run.exit_code


def _expected(args: list[str]) -> list[tuple[str, str, str]]:
    doc = run_cli("report", *args, "--format", "json").json()
    assert isinstance(doc, dict)
    return [(r["model"], r["version"], r["status"]) for r in doc["rows"]]


def _check(text: str, columns: int, expected: list[tuple[str, str, str]]) -> list[str]:
    """The layout rules; returns the table's row lines."""
    lines = text.rstrip("\n").split("\n")
    too_wide = [line for line in lines if cell_len(line) > columns]
    assert not too_wide, f"wider than {columns}: {too_wide}"
    assert lines[0].startswith("retire report: window"), "the header line comes first"
    head = next(i for i, line in enumerate(lines) if line.startswith("MODEL "))
    body = lines[head + 1 : head + 1 + len(expected)]
    assert [tuple(line.split()[:3]) for line in body] == expected, "one line per version, words whole"
    after = lines[head + 1 + len(expected)]
    assert after == "" or after.startswith("(to fit"), f"a version spilled onto another line: {after!r}"
    return body


def _tree_with_long_names(tmp_path: Path, lab: Lab) -> list[str]:
    models = tmp_path / "models"
    make_model_tree(models, scenarios.BASIC, lab.end)
    for version in ("1", "2", "10"):
        (models / LONG / version).mkdir(parents=True)
        (models / LONG / version / "saved_model.pb").write_bytes(b"\0" * 1000)
    args = lab.args(scenarios.BASIC)
    args[args.index("--model-dir") + 1] = str(models)
    return args


@pytest.mark.prometheus
@pytest.mark.parametrize("columns", [80, 90, 120, 200])
def test_report_fits_the_terminal(lab: Lab, columns: int) -> None:
    args = lab.args(scenarios.BASIC)
    text, stderr, code = _report(args, columns)
    assert code == 0
    body = _check(text, columns, _expected(args))
    assert "querying" not in stderr  # nothing was split per model: no progress bar
    if columns >= 120:
        assert "TRAFFIC" in text and any("▁" in line or "█" in line for line in body)
    if columns == 200:
        assert "BUSIEST QPS" in text and "CALLS" in text
    if columns == 90:  # room for a sparkline, not a whole one: shortened, and said so
        assert "TRAFFIC" in text and "characters, each the busiest" in " ".join(text.split())
    if columns == 80:
        assert len(text.splitlines()) <= 24, "one screen"
        assert "-v for full reasons" in text


@pytest.mark.prometheus
@pytest.mark.parametrize("columns", [80, 120, 200])
def test_long_model_names_stay_whole(lab: Lab, tmp_path: Path, columns: int) -> None:
    args = _tree_with_long_names(tmp_path, lab)
    text, _, _ = _report(args, columns)
    body = _check(text, columns, _expected(args))
    assert any(line.startswith(LONG + " ") for line in body)


@pytest.mark.prometheus
def test_verbose_lists_the_full_reasons_below_the_table(lab: Lab) -> None:
    args = lab.args(scenarios.BASIC)
    text, _, _ = _report(args, 80, "--verbose")
    _check(text, 80, _expected(args))
    doc = run_cli("report", *args, "--format", "json").json()
    assert isinstance(doc, dict)
    flat = " ".join(text.split())
    for row in doc["rows"]:
        assert " ".join(row["reason"].split()) in flat, row["reason"]
    assert "-v for full reasons" not in text


@pytest.mark.prometheus
def test_narrow_terminal_keeps_model_version_status(lab: Lab) -> None:
    args = lab.args(scenarios.BASIC)
    text, _, _ = _report(args, 40)
    _check(text, 40, _expected(args))
    assert "left out" in " ".join(text.split())


@pytest.mark.prometheus
def test_no_color_on_a_terminal_still_fits(lab: Lab) -> None:
    import os

    env = {**os.environ, "TERM": "xterm-256color"}
    args = lab.args(scenarios.BASIC)
    cmd = ["env", "NO_COLOR=1", sys.executable, "-m", "retire", "report", *args]
    run = run_in_terminal(cmd, 80, cwd=str(ROOT), env=env)
    assert "\x1b[" not in run.raw.replace("\x1b[?25l", "").replace("\x1b[?25h", "")
    _check(run.text, 80, _expected(args))


@pytest.mark.prometheus
def test_progress_bar_only_for_per_model_queries_and_only_on_stderr(lab: Lab) -> None:
    args = lab.args(scenarios.BASIC)
    run = run_in_terminal(
        [sys.executable, "-m", "retire", "report", *args, "--split-by-model"], 80, cwd=str(ROOT)
    )
    assert "querying model by model" in run.stderr
    assert "querying" not in run.text
    _check(run.text, 80, _expected(args))


@pytest.mark.prometheus
def test_no_progress_bar_when_piped(lab: Lab) -> None:
    import subprocess

    args = lab.args(scenarios.BASIC)
    run = subprocess.run(
        [sys.executable, "-m", "retire", "report", *args, "--split-by-model"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "querying" not in run.stderr + run.stdout
    assert "\x1b[" not in run.stdout + run.stderr
    assert "counter flat all window" in run.stdout  # piped: reasons in full


# --- the layout rules themselves, for any widths


@given(
    st.dictionaries(st.sampled_from(COLUMNS), st.integers(1, 300), min_size=len(COLUMNS)),
    st.integers(20, 400),
)
def test_fit_is_never_wider_than_the_terminal(natural: dict[str, int], width: int) -> None:
    layout = fit(natural, width)
    assert layout.total <= width
    if natural["MODEL"] + natural["VERSION"] + natural["STATUS"] + 4 <= width:
        assert not layout.fold
        for name in ("MODEL", "VERSION", "STATUS"):
            assert layout.widths[name] == natural[name]
    for name, w in layout.widths.items():
        assert 1 <= w <= natural[name]


def test_shrunk_sparkline_never_hides_a_call() -> None:
    points = (0.0,) * 11 + (5.0,) + (None,) * 12
    assert shrink(points, 6) == (0.0, 0.0, 5.0, None, None, None)
    assert shrink((float("nan"), 0.0, float("inf"), None), 2) == (0.0, float("inf"))
    assert shrink(points, 24) == points


@given(st.text(min_size=0, max_size=120), st.integers(1, 100))
def test_shorten_fits(text: str, width: int) -> None:
    out = shorten(text, width)
    assert cell_len(out) <= width
    assert out == text or out.endswith("…")


def test_json_is_unaffected_by_the_terminal(lab: Lab) -> None:
    doc = run_cli("report", *lab.args(scenarios.BASIC), "--format", "json").json()
    assert isinstance(doc, dict)
    json.dumps(doc)


@pytest.mark.prometheus
@pytest.mark.parametrize("columns", [12, 80])
def test_names_longer_than_the_terminal_fold_only_themselves(lab: Lab, tmp_path: Path, columns: int) -> None:
    """A hostile tree: a 120-character model name and a wide-character one. Lines still fit; at
    80 columns the names are capped so SIZE and REASON stay, only names longer than the cap
    fold, and every other version stays one whole line."""
    args = _tree_with_long_names(tmp_path, lab)
    models = Path(args[args.index("--model-dir") + 1])
    (models / ("x" * 120) / "1").mkdir(parents=True)
    (models / "模型_中文名字" / "3").mkdir(parents=True)
    text, _, _ = _report(args, columns)
    lines = text.rstrip("\n").split("\n")
    assert max(cell_len(line) for line in lines) <= columns
    if columns == 80:
        rows = [tuple(line.split()[:3]) for line in lines]
        for model, version, status in _expected(args):
            if len(model) <= 14:
                assert (model, version, status) in rows
        assert any(line.startswith("模型_中文名字 ") and "protected" in line for line in lines)
        assert "REASON" in text and "SIZE" in text


def test_fit_shows_a_column_it_does_not_know_when_it_fits() -> None:
    natural = {"MODEL": 5, "VERSION": 7, "STATUS": 11, "LOADED": 6, "SIZE": 9, "REASON": 40}
    layout = fit(natural, 200)
    assert list(layout.widths) == list(natural)
    assert "LOADED" in fit(natural, 80).widths and "LOADED" in fit(natural, 70).left_out


# The deciding fact each status's reason starts with (README "How verdicts are made").
DECIDING = {
    "in-use": r"([\d,.]+ calls? in window|≥ [\d,.]+ |busiest \S+ [\d.e+-]+ req/s > threshold)",
    "safe": r"(no series in window|counter flat all window|0 calls since|busiest \S+ [\d.e+-]+ req/s ≤ threshold)",
    "protected": r"(newest|among the newest|pinned|younger|listed under)",
    "not-on-disk": r"no version directory on disk",
}


@pytest.mark.prometheus
@pytest.mark.parametrize("columns", [80, 120])
def test_each_row_shows_what_decided_its_status_without_verbose(lab: Lab, columns: int) -> None:
    """#26: at 80 and 120 columns the visible start of each reason is the deciding fact (the
    calls for in-use, the proof for safe, the rule, the missing directory), not a rate that
    reads like the condition for safe."""
    import re

    args = lab.args(scenarios.BASIC)
    text, _, _ = _report(args, columns)
    body = _check(text, columns, _expected(args))
    doc = run_cli("report", *args, "--format", "json").json()
    assert isinstance(doc, dict)
    reasons = {(r["model"], r["version"]): r["reason"] for r in doc["rows"]}
    statuses = {(r["model"], r["version"]): r["status"] for r in doc["rows"]}
    assert set(statuses.values()) >= set(DECIDING)
    for line in body:
        model, version, *_ = line.split()
        full = reasons[(model, version)]
        assert re.match(DECIDING[statuses[(model, version)]], full), full
        shown = line[line.index(full[:12]) :].rstrip().rstrip("…")  # the reason column's text
        assert full.startswith(shown) and len(shown) >= min(20, len(full)), (line, full)

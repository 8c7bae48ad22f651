"""Small surprises fixed: help that lists only a command's own exit codes, no undo hint when
nothing moved, the model config note only with a model config, and usage hints for a
--model-dir that is one model's directory or a --model-base-path beside other models."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests import scenarios as sc
from tests.conftest import Lab, run_cli


def _codes(command: str) -> set[str]:
    out = run_cli(command, "--help").stdout
    tail = out[out.index("Exit codes:") :]
    return set(re.findall(r"^\s+(\d)\s{2}", tail, re.M))


def test_each_help_lists_only_its_own_exit_codes() -> None:
    assert _codes("restore") == {"0", "2", "6"}
    assert _codes("offload") == {"0", "2", "3", "6"}
    assert _codes("plan") == {"0", "2", "3", "6"}
    assert _codes("safe-list") == {"0", "2", "3", "4"}
    assert _codes("report") == {"0", "2", "3", "4", "5"}


def _tree(lab: Lab, tmp_path: Path, scenario: sc.Scenario = sc.BASIC) -> tuple[Path, list[str]]:
    tree = tmp_path / "models"
    shutil.copytree(lab.models(scenario), tree, symlinks=True)
    args = lab.args(scenario)
    args[args.index("--model-dir") + 1] = str(tree)
    return tree, args


@pytest.mark.prometheus
def test_offload_that_moves_nothing_offers_no_undo(lab: Lab, tmp_path: Path) -> None:
    _, args = _tree(lab, tmp_path)
    pins = ["--pin", "alpha:2", "--pin", "alpha:3", "--pin", "beta:2"]  # every safe version
    for extra in ([], ["--apply"]):
        run = run_cli("offload", *args, *pins, "--archive-dir", str(tmp_path / "archive"), *extra)
        assert run.exit_code == 0, run.stderr
        assert "nothing to move" in run.stdout
        assert "restore" not in run.stdout + run.stderr
        assert "add --apply" not in run.stderr
    plan = run_cli("plan", *args, *pins, "--archive-dir", str(tmp_path / "archive"))
    # Why, in counts (#26): the pinned versions are the ones that could have moved.
    assert plan.stdout.startswith("plan: nothing to move (no version is safe to offload; of ")
    assert "pinned" in plan.stdout and plan.stdout.count("\n") == 1


@pytest.mark.prometheus
def test_config_note_only_with_a_model_config(lab: Lab, tmp_path: Path) -> None:
    _, args = _tree(lab, tmp_path)
    run = run_cli("plan", *args, "--archive-dir", str(tmp_path / "archive"))
    assert run.exit_code == 0 and "mv " in run.stdout and "config:" not in run.stdout
    tree, args = _tree(lab, tmp_path / "c", sc.CONFIG)
    (tree / "models.config").write_text(sc.CONFIG_FILE)
    i = args.index("--model-dir")
    del args[i : i + 2]
    run = run_cli(
        "plan",
        *args,
        "--model-config",
        str(tree / "models.config"),
        "--archive-dir",
        str(tmp_path / "archive"),
    )
    assert run.exit_code == 0, run.stderr
    assert "config: no change" in run.stdout


@pytest.mark.prometheus
def test_model_dir_pointing_at_one_model_is_a_usage_error(lab: Lab, tmp_path: Path) -> None:
    tree, args = _tree(lab, tmp_path)
    args[args.index("--model-dir") + 1] = str(tree / "alpha")  # its entries: 1, 2, 3, 0007, tmp-upload, ...
    for command in ("report", "safe-list"):
        run = run_cli(command, *args)
        assert run.exit_code == 2, run.stdout
        assert "looks like one model's directory" in run.stderr
        assert f"--model-dir {tree}" in run.stderr and f"--model-base-path {tree / 'alpha'}" in run.stderr
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


@pytest.mark.prometheus
def test_a_root_whose_models_have_numeric_names_is_still_a_root(lab: Lab, tmp_path: Path) -> None:
    tree, args = _tree(lab, tmp_path)
    (tree / "42" / "1").mkdir(parents=True)  # a model named 42 with version 1: a real root
    run = run_cli("report", *args, "--format", "json")
    assert run.exit_code in (0, 4), run.stderr


@pytest.mark.prometheus
def test_empty_model_root_is_not_mistaken_for_a_model(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    args = lab.args(sc.BASIC)
    args[args.index("--model-dir") + 1] = str(empty)
    run = run_cli("report", *args, "--format", "json")
    assert "looks like one model" not in run.stderr


@pytest.mark.prometheus
def test_base_path_beside_other_models_says_why_they_are_listed(lab: Lab, tmp_path: Path) -> None:
    tree, args = _tree(lab, tmp_path)
    i = args.index("--model-dir")
    del args[i : i + 2]
    base = [*args, "--model-base-path", str(tree / "alpha"), "--model-name", "alpha"]
    run = run_cli("report", *base, "--format", "json")
    doc = json.loads(run.stdout)
    note = [n for n in doc["header"]["notes"] if "--model-base-path covers only alpha" in n]
    assert note and "(beta)" in note[0] and "--selector 'model_name=\"alpha\"'" in note[0]
    table = run_cli("report", *base)
    assert "--model-base-path covers only alpha" in table.stdout
    # following the hint leaves them out, and the note goes away
    narrowed = [*base, "--selector", 'scenario="basic",model_name="alpha"']
    doc = json.loads(run_cli("report", *narrowed, "--format", "json").stdout)
    assert {r["model"] for r in doc["rows"]} == {"alpha"}
    assert not [n for n in doc["header"]["notes"] if "covers only" in n]


def test_query_lists_the_sparkline_query_too() -> None:
    listing = run_cli("query").stdout
    assert "# hourly_qps (range)" in listing
    bare = run_cli("query", "hourly_qps")
    assert bare.exit_code == 0 and ":tensorflow:serving:model_call_count" in bare.stdout
    assert "sparkline" in run_cli("query", "--help").stdout


@pytest.mark.prometheus
def test_offload_whose_every_move_is_skipped_offers_no_undo(lab: Lab, tmp_path: Path) -> None:
    """alpha/5 was idle six hours ago (its callers came 5 h ago): a plan made then moves it; by
    the time of the offload it is in use, so nothing moves, and nothing is offered to undo."""
    tree, args = _tree(lab, tmp_path)
    archive = tmp_path / "archive"
    earlier = [*args, "--at", str(lab.end - 6 * 3600)]  # the last --at wins
    plan = run_cli("plan", *earlier, "--only", "alpha:5", "--archive-dir", str(archive), "--format", "json")
    assert plan.exit_code == 0, plan.stderr
    (tmp_path / "plan.json").write_text(plan.stdout)
    run = run_cli(
        "offload", *args, "--archive-dir", str(archive), "--plan", str(tmp_path / "plan.json"), "--apply"
    )
    assert run.exit_code == 0, run.stderr
    assert "skipped alpha 5: now in-use" in run.stderr
    assert "nothing was moved" in run.stderr and "restore" not in run.stderr
    assert (tree / "alpha" / "5").exists()


@pytest.mark.prometheus
def test_plan_on_a_fresh_copy_says_everything_is_younger_than_min_age(lab: Lab, tmp_path: Path) -> None:
    """A fresh copy of a model directory: every directory is minutes old (#26)."""
    tree, args = _tree(lab, tmp_path)
    import os

    for d in tree.rglob("*"):  # as `cp -r` leaves them: modified now
        os.utime(d)
    plan = run_cli("plan", *args, "--archive-dir", str(tmp_path / "archive"))
    assert plan.exit_code == 0, plan.stderr
    assert "plan: nothing to move (no version is safe to offload; of " in plan.stdout
    assert "younger than --min-age" in plan.stdout, plan.stdout

"""config became a package (parsers, options, settings, build.py): precedence of flag > env >
config file > default, and which error a user sees first, compared with feeefdc through
`retire query` and `retire rules` (no server needed). All behaved the same before and after."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "retire.toml"
    path.write_text('selector = \'job="fromfile"\'\nwindow = "12h"\n')
    monkeypatch.chdir(tmp_path)  # ./retire.toml is read when present
    return path


def test_the_config_file_beats_the_default(config: Path) -> None:
    run = run_cli("query", "max_hourly_qps")
    assert run.exit_code == 0, run.stderr
    assert 'job="fromfile"' in run.stdout and "[43200s:" in run.stdout


def test_the_environment_beats_the_config_file(config: Path) -> None:
    run = run_cli("query", "max_hourly_qps", env={"RETIRE_SELECTOR": 'job="env"'})
    assert run.exit_code == 0, run.stderr
    assert 'job="env"' in run.stdout and "fromfile" not in run.stdout


def test_a_flag_beats_the_environment(config: Path) -> None:
    run = run_cli("query", "max_hourly_qps", "--selector", 'job="flag"', env={"RETIRE_SELECTOR": 'job="env"'})
    assert run.exit_code == 0, run.stderr
    assert 'job="flag"' in run.stdout and "env" not in run.stdout


def test_a_flag_hides_a_bad_environment_value(config: Path) -> None:
    run = run_cli("query", "max_hourly_qps", "--window", "2h", env={"RETIRE_WINDOW": "bad"})
    assert run.exit_code == 0, run.stderr
    assert "[7200s:" in run.stdout


def test_a_bad_environment_value_names_its_variable(config: Path) -> None:
    run = run_cli("query", env={"RETIRE_WINDOW": "bad"})
    assert run.exit_code == 2
    assert (
        run.stderr.strip()
        == "retire: error: RETIRE_WINDOW: 'bad' is not a duration; use e.g. 24h, 90m, 1h30m or seconds"
    )


def test_a_config_file_value_is_checked_against_the_others(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("window = 5\n")
    run = run_cli("rules", "--config", str(path))
    assert run.exit_code == 2
    assert run.stderr.strip() == "retire: error: --window (5s) must be at least --step (1h)"


def test_an_unknown_config_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("bogus = 1\n")
    run = run_cli("rules", "--config", str(path))
    assert run.exit_code == 2
    assert run.stderr.strip() == f"retire: error: config file {path}: unknown key 'bogus'"


def test_the_first_bad_of_two_is_the_one_named(config: Path) -> None:
    run = run_cli("query", "--coverage", 'up{job="x"', "--selector", 'a=~"("')
    assert run.exit_code == 2
    assert run.stderr.strip() == (
        'retire: error: --coverage: \'up{job="x"\' is not a series selector such as up{job="tfs"}'
    )

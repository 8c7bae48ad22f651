"""Hostile command lines (issue #15's attacks): what a flag says must be what the run does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize("flag", ["--model-dir", "--model-base-path"])
def test_an_empty_path_flag_is_refused_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # a model root by accident: `--model-dir "$UNSET"` must not read it
    extra = ["--model-name", "m"] if flag == "--model-base-path" else []
    run = run_cli("report", "--prometheus", "http://127.0.0.1:1", flag, "", *extra)
    assert run.exit_code == 2 and "the path is empty" in run.stderr, run.stderr

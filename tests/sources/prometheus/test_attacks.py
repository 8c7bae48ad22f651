"""Hostile options for the Prometheus connection (issue #15's attacks): one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import hostile_servers as hs
from tests.conftest import run_cli

TOO_LONG = "9" * 300  # longer than NAME_MAX: the OS refuses to look it up (ENAMETOOLONG)


@pytest.mark.parametrize(
    "args",
    [
        ["--ca-file", f"/tmp/{TOO_LONG}"],
        ["--client-cert", f"/tmp/{TOO_LONG}", "--client-key", f"/tmp/{TOO_LONG}"],
    ],
)
def test_tls_file_whose_name_is_too_long_is_one_line_exit_2(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    with hs.serve(hs.normal) as url:
        run = run_cli("report", "--prometheus", url, "--model-dir", str(tmp_path), *args)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.exit_code == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith(f"retire: error: {args[0]} ") and "name too long" in lines[0].lower()

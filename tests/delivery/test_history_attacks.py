"""Hostile --since-last files (issue #15's attacks on history.since/save)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import hostile_servers as hs

ROOT = Path(__file__).resolve().parents[2]


def test_since_last_on_a_fifo_neither_hangs_nor_writes_into_it(tmp_path: Path) -> None:
    """A FIFO as the state file: reading it waited for a writer forever (a cron job that never
    ends). It is started afresh and refused as the place to save, in one line, exit 2."""
    (tmp_path / "models" / "m" / "1").mkdir(parents=True)
    fifo = tmp_path / "last.json"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with hs.serve(hs.normal) as url:
        models = str(tmp_path / "models")
        command = ["report", "--prometheus", url, "--model-dir", models, "--format", "json"]
        run = subprocess.run(
            [sys.executable, "-m", "retire", *command, "--since-last", str(fifo)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("retire: error:")]
    assert run.returncode == 2 and len(errors) == 1 and "Traceback" not in run.stderr, run.stderr
    assert "it is a FIFO; name a file" in errors[0] and str(fifo) in errors[0]
    assert "is a FIFO, not a file; starting afresh" in run.stdout  # the JSON report says why

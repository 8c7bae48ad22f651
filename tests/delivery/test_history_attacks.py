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


def _report(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    models = tmp_path / "models"
    (models / "m" / "1").mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "retire", "report", "--prometheus", url, "--model-dir", str(models), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
    )


def test_since_last_never_replaces_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    """Found by the differential attack: run as root, `--since-last /etc/passwd` replaced the
    password file with a report ("unreadable; starting afresh"). A file that holds anything but a
    retire report is refused before any query, unchanged, in one line, exit 2 (here a copy)."""
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    state = tmp_path / "nested.json"
    state.write_text("[" * 100_000)
    asked: list[str] = []

    def normal(request: hs.Request) -> hs.Answer:
        asked.append(request.path)
        return hs.normal(request)

    with hs.serve(normal) as url:
        for target, why in ((passwd, "JSONDecodeError"), (state, "RecursionError")):
            before = target.read_bytes()
            run = _report(tmp_path, url, "--format", "json", "--since-last", str(target))
            errors = [ln for ln in run.stderr.splitlines() if ln.startswith("retire: error:")]
            assert run.returncode == 2 and len(errors) == 1 and "Traceback" not in run.stderr, run.stderr
            assert f"--since-last {target} is not a retire report ({why})" in errors[0]
            assert target.read_bytes() == before and run.stdout == ""
        assert asked == []  # refused before any query
        # An empty file, a missing one and a report are retire's own: written as before.
        empty = tmp_path / "empty.json"
        empty.touch()
        for target in (empty, tmp_path / "new.json", empty):
            run = _report(tmp_path, url, "--format", "json", "--since-last", str(target))
            assert run.returncode == 0, run.stderr
            assert '"rows"' in target.read_text()

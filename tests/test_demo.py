"""The README's first command runs the main job end to end and its report is right."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.prometheus


def test_demo_report_is_right(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "retire.lab.demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = {tuple(line.split()[:3]) for line in run.stdout.splitlines() if line[:1].isalpha()}
    expected = {
        ("bert", "5", "safe"),
        ("bert", "6", "not-on-disk"),
        ("bert", "7", "in-use"),
        ("half_plus_two", "1", "safe"),
        ("half_plus_two", "2", "safe"),
        ("half_plus_two", "3", "in-use"),
        ("half_plus_two", "4", "in-use"),
        ("resnet50", "1", "in-use"),
        ("resnet50", "2", "in-use"),
        ("resnet50", "3", "protected"),
    }
    assert expected <= lines
    assert "3 safe to offload (753.4 MiB), 5 in-use, 1 protected, 1 not-on-disk" in run.stdout
    assert "\x1b[" not in run.stdout


def test_demo_keep_prints_commands_that_work_and_how_to_stop(tmp_path: Path) -> None:
    import os
    import shlex

    workdir = tmp_path / "demo"
    demo = [sys.executable, "-m", "retire.lab.demo", "--workdir", str(workdir)]
    run = subprocess.run([*demo, "--keep"], capture_output=True, text=True, timeout=300)
    pid = int((workdir / "prometheus.pid").read_text())
    try:
        assert run.returncode == 0, run.stderr
        lines = run.stderr.splitlines()
        export = next(line for line in lines if line.strip().startswith("export "))
        env = dict(os.environ)
        for pair in shlex.split(export)[1:]:
            key, value = pair.split("=", 1)
            env[key] = value
        commands = [
            shlex.split(line, comments=True)
            for line in lines
            if line.startswith("  ") and not line.strip().startswith(("export", "http"))
        ]
        assert len(commands) >= 5
        for argv in commands:
            assert os.access(argv[0], os.X_OK) or argv[0] == "retire", argv[0]
            done = subprocess.run(
                [sys.executable, "-m", "retire", *argv[1:]],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, (argv, done.stderr)
        assert f"kill {pid}" in run.stderr and "--stop" in run.stderr
        assert Path(f"/proc/{pid}").exists()
    finally:
        stopped = subprocess.run([*demo, "--stop"], capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()

"""The README's first command runs the main job end to end and its report is right."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.prometheus


def test_demo_report_is_right(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "retire.lab.demo", "--workdir", str(tmp_path / "demo")],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = {tuple(line.split()[:3]) for line in run.stdout.splitlines() if line[:1].isalpha()}
    expected = {
        ("bert", "5", "safe"), ("bert", "6", "not-on-disk"), ("bert", "7", "in-use"),
        ("half_plus_two", "1", "safe"), ("half_plus_two", "2", "safe"), ("half_plus_two", "3", "in-use"),
        ("half_plus_two", "4", "in-use"), ("resnet50", "1", "in-use"), ("resnet50", "2", "in-use"),
        ("resnet50", "3", "protected"),
    }  # fmt: skip
    assert expected <= lines
    assert "3 safe to offload (753.4 MiB), 5 in-use, 1 protected, 1 not-on-disk" in run.stdout
    assert "\x1b[" not in run.stdout

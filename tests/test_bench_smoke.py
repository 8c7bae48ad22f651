"""The benchmark's smoke tier runs (small fleet), so bench/ cannot rot. No timing is asserted:
targets are ratios reported by the benchmark itself (bench/RESULTS.md), never test assertions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.prometheus


def test_bench_smoke_tier_prints_every_figure(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--tier", "smoke", "--runs", "1", "--markdown"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode in (0, 1), run.stderr  # 1: some target missed, which is data, not an error
    table = run.stdout
    for figure in (
        "start-up: retire --version",
        "end to end, 100 versions",
        "server eval time, all queries",
        "inventory scan",
        "join and verdicts",
        "scaling of join and verdicts",
    ):
        assert figure in table, table

"""The README shows real outputs, in the order a new user needs them. Its shown outputs are run
again against the demo's data (scripts/readme.py) and must match, times, ports and paths aside."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from retire.lab.readme import blocks, demo_lab, normalise, refresh

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

ORDER = [
    "Install and try it",
    "Quick start against your own Prometheus",
    "Configuration and credentials",
    "Exit codes",
    "Scheduled report",
    "Offloading",
    "Deployments and presets",
    "How verdicts are made",
    "Recording rules for large fleets",
    "Benchmarks",
    "Layout",
]


def test_sections_in_the_order_people_need_them() -> None:
    assert re.findall(r"(?m)^## (.+)$", README) == ORDER


def test_install_says_where_retire_is_and_how_to_install_it() -> None:
    install = README[README.index("## Install and try it") : README.index("## Quick start")]
    for needle in (
        "bash scripts/demo.sh",
        "bash scripts/test.sh",
        "./.venv/bin/retire",
        "pipx install .",
        "pip install .",
        "examples/Dockerfile",
        "--keep",
        "--stop",
    ):
        assert needle in install, needle


def test_shown_commands_are_marked() -> None:
    shown = blocks(README.split("\n"))
    commands = [c for b in shown for c in b.commands]
    assert len(shown) >= 7
    assert any("--at" in c for c in commands)
    assert any(c.startswith("retire query") for c in commands)
    assert any(b.columns == 80 for b in shown)


@pytest.mark.prometheus
def test_shown_outputs_are_what_the_commands_print(tmp_path: Path) -> None:
    with demo_lab(tmp_path) as lab:
        fresh = refresh(README, lab)
    want, got = normalise(README), normalise(fresh)
    diff = "\n".join(
        difflib.unified_diff(want.split("\n"), got.split("\n"), "README.md", "fresh", lineterm="")
    )
    assert want == got, f"README.md is stale; run `python scripts/readme.py`:\n{diff}"
    # the --at example falls inside the demo's data: versions come out safe, not unknown
    at_block = fresh[fresh.index('--at "$(date') :]
    assert "half_plus_two\t1\t" in at_block.split("```")[0]


def test_normalise_keeps_what_matters() -> None:
    a = "window 2026-11-24T12:30:17Z source http://127.0.0.1:41234 (pid 77) 5 safe"
    b = "window 2026-11-25T01:00:00Z source http://127.0.0.1:9090 (pid 1) 5 safe"
    assert normalise(a) == normalise(b)
    assert normalise(a) != normalise(b.replace("5 safe", "6 safe"))

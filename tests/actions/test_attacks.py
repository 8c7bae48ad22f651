"""Hostile selections for offload (issue #15's attacks on actions.plan.plan_for)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retire.actions.offload import recheck
from retire.actions.plan import make_plan
from retire.advisor import Status
from retire.cli.steps import only_pins as _only
from retire.errors import OffloadError
from tests import builders as b


def test_only_names_the_torchserve_version_written_with_leading_zeros(tmp_path: Path) -> None:
    for v in ("1", "01"):
        (tmp_path / "models" / "m" / v).mkdir(parents=True)
    rows = [b.row("m", v, Status.SAFE, path=f"{tmp_path}/models/m/{v}") for v in ("1", "01")]
    report = b.report(*rows, model_roots=(f"{tmp_path}/models",))
    plan = make_plan(report, tmp_path / "archive", _only(["m:01"]))
    assert [m.version for m in plan.moves] == ["01"]


def test_recheck_refuses_a_fresh_report_whose_roots_it_did_not_lock(tmp_path: Path) -> None:
    """A library caller passes the roots to lock and the report to re-check separately: moving a
    version out of a root that was not locked lets two runs move in it at once."""
    version = tmp_path / "models" / "m" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"x")
    (tmp_path / "archive").mkdir()
    report = b.report(
        b.row("m", "1", Status.SAFE, path=str(version)), model_roots=(str(tmp_path / "models"),)
    )
    plan = make_plan(report, tmp_path / "archive")
    said: list[str] = []
    with pytest.raises(OffloadError, match="not locked"):
        recheck(plan, lambda: report, tmp_path / "archive", (), "the plan", said.append)
    assert (version / "saved_model.pb").read_bytes() == b"x"  # nothing was moved

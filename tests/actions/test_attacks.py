"""Hostile selections for offload (issue #15's attacks on offload.plan_for)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retire.actions.offload import make_plan
from retire.advisor import Status
from retire.cli import _only
from tests import builders as b


@pytest.mark.xfail(
    strict=True,
    reason="--only is read by TF Serving's number rule whatever the preset (as --pin is), but it "
    "must name exactly one version: TorchServe's versions `1` and `01` are two, and `--only m:01` "
    "plans the move of `1`; the fix reads --only by the preset's rule, in the CLI",
)
def test_only_names_the_torchserve_version_written_with_leading_zeros(tmp_path: Path) -> None:
    for v in ("1", "01"):
        (tmp_path / "models" / "m" / v).mkdir(parents=True)
    rows = [b.row("m", v, Status.SAFE, path=f"{tmp_path}/models/m/{v}") for v in ("1", "01")]
    report = b.report(*rows, model_roots=(f"{tmp_path}/models",))
    plan = make_plan(report, tmp_path / "archive", _only(["m:01"]))
    assert [m.version for m in plan.moves] == ["01"]

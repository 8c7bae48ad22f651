"""Every mode proves its reach (issue #21): options that narrow or reshape the queries must never
hide a call. Each test here was a false "safe" before the change it names; the controls show a
truly idle version still comes out safe.

Against the real Prometheus lab (tests/scenarios.py).
"""

from __future__ import annotations

import pytest

from tests import scenarios as sc
from tests.conftest import Lab, rows, run_cli, statuses

pytestmark = pytest.mark.prometheus

SPLIT = pytest.mark.parametrize("split", [(), ("--split-by-model",)], ids=["whole", "split"])


def report(lab: Lab, scenario: sc.Scenario, selector: str, *extra: str) -> tuple[int, dict]:
    """`retire report --format json` for a scenario, with more matchers after its own selector."""
    args = lab.args(scenario, "--format", "json", *extra)
    i = args.index("--selector") + 1
    args[i] = f"{args[i]},{selector}"
    run = run_cli("report", *args)
    assert run.exit_code in (0, 4), run.stderr
    return run.exit_code, run.json()  # type: ignore[return-value]


# 4. Scope checks run outside the reach of the selector's matchers on the model and version labels.


@SPLIT
def test_a_selector_listing_the_models_on_disk_does_not_hide_a_served_name(
    lab: Lab, split: tuple[str, ...]
) -> None:
    """delta/ is served as delta-prod: a selector that names the directories (delta, kappa, zeta)
    left delta-prod out, and with it the only sign of the naming mismatch: delta/1 was safe."""
    code, doc = report(lab, sc.NAMES, 'model_name=~"delta|kappa|zeta"', *split)
    got = statuses(doc)
    assert got[("delta", "1")] == "unknown" and got[("delta", "2")] == "unknown"
    assert code == 4
    assert "'delta-prod'" in rows(doc)[("delta", "1")]["reason"]


@SPLIT
def test_a_selector_on_version_numbers_does_not_hide_labels_no_directory_can_have(
    lab: Lab, split: tuple[str, ...]
) -> None:
    """lam is served under the label v1: `model_version=~"[0-9]+"` left it out, and lam/1 was safe."""
    code, doc = report(lab, sc.LABELS, 'model_version=~"[0-9]+"', *split)
    assert statuses(doc) == {("lam", "1"): "unknown", ("lam", "2"): "protected"}
    assert code == 4
    assert "version labels no version directory can have ('v1')" in rows(doc)[("lam", "1")]["reason"]


@SPLIT
def test_a_selector_on_the_model_label_does_not_hide_series_without_one(
    lab: Lab, split: tuple[str, ...]
) -> None:
    """`model_name="n"` made the unlabelled-series query ask for model_name="" and model_name="n"
    at once, which nothing matches: the busy series without a model label vanished, n/1 was safe."""
    code, doc = report(lab, sc.NO_MODEL, 'model_name="n"', *split)
    assert statuses(doc) == {("n", "1"): "unknown", ("n", "2"): "protected"}
    assert code == 4
    assert "1 series of the metric have no model_name label" in rows(doc)[("n", "1")]["reason"]


def test_a_selector_on_version_numbers_does_not_hide_torchserve_default(lab: Lab) -> None:
    """resnet's calls named no version (TorchServe labels them "default"): a selector on numbered
    versions left them out, and resnet/1.0 was safe."""
    code, doc = report(lab, sc.TORCHSERVE, 'model_version=~"[0-9.]+"')
    assert statuses(doc)[("resnet", "1.0")] == "unknown"
    assert code == 4
    assert "'default'" in rows(doc)[("resnet", "1.0")]["reason"]


def test_a_selector_on_other_labels_still_names_the_servers(lab: Lab) -> None:
    """Control: matchers on other labels (here `scenario`) say which servers the report is about;
    the scope checks keep them, so another scenario's served names and unlabelled series do not
    make this one's idle versions unknown."""
    _, doc = report(lab, sc.NO_VERSION, 'model_name=~"u|ok"')
    assert statuses(doc)[("ok", "1")] == "safe"
    assert statuses(doc)[("u", "1")] == "unknown"

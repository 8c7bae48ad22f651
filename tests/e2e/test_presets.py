"""Model config files, Triton and TorchServe, end to end against real Prometheus."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import scenarios as sc
from tests.conftest import Lab, rows, run_cli, statuses

pytestmark = pytest.mark.prometheus


def _json(lab: Lab, *args: str) -> tuple[int, dict]:
    run = run_cli("report", "--format", "json", *args)
    assert run.exit_code in (0, 4), run.stderr
    return run.exit_code, run.json()  # type: ignore[return-value]


def test_tfserving_model_config_file(lab: Lab) -> None:
    root = lab.models(sc.CONFIG)
    config = root / "models.config"
    config.write_text(sc.CONFIG_FILE)
    args = lab.args(sc.CONFIG)
    i = args.index("--model-dir")
    del args[i : i + 2]
    code, doc = _json(lab, *args, "--model-config", str(config))
    assert statuses(doc) == sc.CONFIG_EXPECTED
    r = rows(doc)
    assert "specific version policy in models.config" in r[("cfg_a", "2")]["reason"]
    assert "version label 'canary'" in r[("cfg_a", "4")]["reason"]
    assert "the server config keeps 3" in r[("cfg_b", "2")]["reason"]
    assert code == 0


def test_several_model_roots_and_duplicates(lab: Lab, tmp_path: Path) -> None:
    basic, config = lab.models(sc.BASIC), lab.models(sc.CONFIG)
    selector = 'scenario=~"basic|config"'
    base = ["--prometheus", lab.url, "--selector", selector, "--at", str(lab.end)]
    _, doc = _json(lab, *base, "--model-dir", str(basic), "--model-dir", str(config))
    got = statuses(doc)
    assert got[("alpha", "2")] == "safe" and got[("cfg_a", "5")] == "in-use"
    run = run_cli("report", *base, "--model-dir", str(basic), "--model-dir", str(basic))
    assert run.exit_code == 2 and "more than one model root" in run.stderr


def test_triton_repository(lab: Lab) -> None:
    code, doc = _json(lab, *lab.args(sc.TRITON))
    assert statuses(doc) == sc.TRITON_EXPECTED
    assert 'nv_inference_request_success{model!="",version!=""' in doc["header"]["promql"]
    r = rows(doc)
    assert "counter flat all window" in r[("detector", "1")]["reason"]
    assert "among the newest 2 on disk (the server config keeps 2)" in r[("detector", "3")]["reason"]
    assert "specific version policy in ranker/config.pbtxt" in r[("ranker", "5")]["reason"]
    assert not any(i["path"].endswith("config.pbtxt") for i in doc["ignored"])
    assert code == 0


def test_torchserve_model_store(lab: Lab) -> None:
    code, doc = _json(lab, *lab.args(sc.TORCHSERVE))
    assert statuses(doc) == sc.TORCHSERVE_EXPECTED
    r = rows(doc)
    assert r[("bert", "1.0")]["path"].endswith("bert_v1.mar")
    assert "calls labelled version 'default'" in r[("resnet", "1.0")]["reason"]
    assert list(r) == [
        ("bert", "1.0"),
        ("bert", "2.0"),
        ("bert", "10.0"),
        ("resnet", "1.0"),
        ("resnet", "2.0"),
        ("resnet", "default"),
    ]
    assert any(
        "resnet may have had calls labelled with no version" in c for c in doc["summary"]["unknown_causes"]
    )
    assert code == 4


def test_latest_n_advice_in_the_report_and_the_plan(lab: Lab, tmp_path: Path) -> None:
    """cfg_b is served with latest 3 and idle: its newest 3 are loaded and protected, so moving
    one only loads an older one; the report and the plan say what frees them (num_versions 1)."""
    root = lab.models(sc.CONFIG)
    config = root / "models.config"
    config.write_text(sc.CONFIG_FILE)
    args = lab.args(sc.CONFIG)
    i = args.index("--model-dir")
    del args[i : i + 2]
    _, doc = _json(lab, *args, "--model-config", str(config))
    r = rows(doc)
    assert r[("cfg_b", "2")]["loaded"] is True and r[("cfg_b", "2")]["loaded_from"] == "policy"
    assert r[("cfg_b", "1")]["loaded"] is False  # beyond latest 3: disk only
    assert "lower num_versions to 1 in models.config" in r[("cfg_b", "3")]["reason"]
    assert "lower num_versions" not in r[("cfg_b", "4")]["reason"]  # the newest stays loaded
    assert doc["summary"]["advice"] == [
        "cfg_b: lower num_versions from 3 to 1 in models.config to unload its idle version(s) 3, 2 (about 2.0 KiB of memory)"
    ]
    plan = run_cli("plan", *args, "--model-config", str(config), "--archive-dir", str(tmp_path / "archive"))
    assert "to free memory, change the server config" in plan.stdout, plan.stderr
    assert "cfg_b: lower num_versions from 3 to 1" in plan.stdout

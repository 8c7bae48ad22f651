from __future__ import annotations

from pathlib import Path

import pytest

from retire.errors import InventoryError
from retire.sources.disk.server_configs import (
    VersionPolicy,
    parse_text_proto,
    read_tfserving_config,
    read_triton_policy,
)

DATA = Path(__file__).resolve().parents[2] / "data"


def test_real_world_tfserving_config() -> None:
    entries = {e.name: e for e in read_tfserving_config(DATA / "models.config")}
    assert list(entries) == ["half_plus_two", "resnet", "bert", "tiny"]
    h = entries["half_plus_two"]
    assert h.base_path == Path("/models/half_plus_two") and h.platform == "tensorflow"
    assert h.policy == VersionPolicy("specific", versions=(42, 43))
    assert h.labels == {"stable": 42, "canary": 43}
    assert entries["resnet"].policy == VersionPolicy("latest", num_versions=3)
    assert entries["resnet"].base_path == DATA / "resnet"
    assert entries["bert"].policy == VersionPolicy("all")
    assert entries["tiny"].policy == VersionPolicy("latest", num_versions=1)
    assert entries["tiny"].base_path == Path("/models/tiny")


def test_triton_version_policies(tmp_path: Path) -> None:
    cases = {
        'name: "m"\nplatform: "onnxruntime_onnx"\nversion_policy: { specific: { versions: [1, 3] } }': VersionPolicy(
            "specific", versions=(1, 3)
        ),
        'version_policy: { latest: { num_versions: 2 } }\ninput [ { name: "x" dims: [ -1, 3 ] } ]': VersionPolicy(
            "latest", num_versions=2
        ),
        "version_policy { all { } }": VersionPolicy("all"),
        'name: "m"\nmax_batch_size: 8': VersionPolicy(),
    }
    for text, policy in cases.items():
        path = tmp_path / "config.pbtxt"
        path.write_text(text)
        assert read_triton_policy(path) == policy


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("model_config_list { config { name: 'x' ", "expected '}'"),
        ("model_config_list { config { name: 'x' base_path: 's3://bucket/x' } }", "local directories only"),
        ("model_config_list { }", "no model_config_list"),
        ("model_config_list { config { name: 'x' } }", "needs a name and a base_path"),
        ("model_config_list { config { name: @ } }", "cannot parse"),
    ],
)
def test_bad_configs(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(InventoryError, match=needle):
        read_tfserving_config(path)


def test_escapes_and_adjacent_strings() -> None:
    assert parse_text_proto(r'a: "x\"y" "z" b: 1.5 c: true') == {"a": ['x"yz'], "b": [1.5], "c": [True]}

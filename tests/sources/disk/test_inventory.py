from __future__ import annotations

import os
from pathlib import Path

import pytest

from retire.errors import InventoryError
from retire.servers import DEFAULT_PRESET, server
from retire.servers.tfserving import version_of as parse_version
from retire.sources.disk.inventory import scan_model_dir, tree_size


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("1", 1),
        ("00123", 123),
        (" 7 ", 7),
        ("9223372036854775807", 2**63 - 1),
        ("9223372036854775808", None),
        ("-1", None),
        ("1.0", None),
        ("v2", None),
        ("", None),
        ("١٢", None),
    ],
)
def test_parse_version_like_tf_serving(name: str, number: int | None) -> None:
    assert parse_version(name) == number


def test_scan(tmp_path: Path) -> None:
    for rel, size in (
        ("a/1/saved_model.pb", 10),
        ("a/1/variables/v.data", 5),
        ("a/007/x", 3),
        ("a/7/x", 4),
        ("b/2/x", 1),
    ):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * size)
    (tmp_path / "a" / "notes").mkdir()
    (tmp_path / "a" / "5").write_text("a file named like a version")
    os.symlink(tmp_path / "a" / "1" / "saved_model.pb", tmp_path / "a" / "1" / "link")  # not counted
    inv = scan_model_dir(tmp_path, server(DEFAULT_PRESET))
    got = {(v.model, v.version): (v.size_bytes, Path(v.path).name) for v in inv.versions}
    assert got == {("a", "1"): (15, "1"), ("a", "7"): (4, "7"), ("b", "2"): (1, "2")}
    reasons = {p.name: r for p, r in ((i.path, i.reason) for i in inv.ignored)}
    assert set(reasons) == {"007", "notes", "5"}
    assert "duplicate of version 7" in reasons["007"]


def test_tree_size_matches_du(tmp_path: Path) -> None:
    import subprocess

    for i in range(20):
        (tmp_path / f"d{i % 3}").mkdir(exist_ok=True)
        (tmp_path / f"d{i % 3}" / f"f{i}").write_bytes(b"y" * (i * 37))
    du = int(
        subprocess.run(
            ["du", "-sb", "--apparent-size", str(tmp_path)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    dirs = sum(os.stat(p).st_size for p in [tmp_path, *[tmp_path / f"d{i}" for i in range(3)]])
    assert tree_size(tmp_path) == du - dirs  # du also counts the directories themselves


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="does not exist"):
        scan_model_dir(tmp_path / "nope", server(DEFAULT_PRESET))

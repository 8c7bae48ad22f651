"""The MLServer repository reader (retire.sources.disk.model_settings) on real directories: every
model-settings.json MLServer loads is a version, what it would not load is kept as ignored data
with a reason, and what must never be moved is protected."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from retire.errors import InventoryError
from retire.lab.mlserver import write_model
from retire.servers import server
from retire.sources.disk.inventory import Inventory, scan_base_path, scan_model_config, scan_model_dir

MLSERVER = server("mlserver")


def scan(root: Path) -> Inventory:
    return scan_model_dir(root, MLSERVER)  # the --model-dir entry point


def versions(inv: Inventory) -> list[tuple[str, str, int, str]]:
    return [(v.model, v.version, v.number, Path(v.path).name) for v in inv.versions]


def ignored(inv: Inventory, root: Path) -> dict[str, str]:
    return {str(i.path.relative_to(root)): i.reason for i in inv.ignored}


def settings(folder: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model-settings.json").write_text(text)


def test_versions_as_mlserver_reads_them(tmp_path: Path) -> None:
    write_model(tmp_path, "r1", "ranker", "1")
    write_model(tmp_path, "r10", "ranker", "10")
    write_model(tmp_path, "deep/er/r2", "ranker", "2")  # found at any depth
    write_model(tmp_path, "s", "scorer", "v1")
    write_model(tmp_path, "s7", "scorer", "007")  # as written: not 7
    write_model(tmp_path, "iris", None, None)  # name: the folder's; no version: "None"
    write_model(tmp_path, "blank", "", "")  # empty name and version: as missing
    inv = scan(tmp_path)
    assert versions(inv) == [
        ("blank", "None", 0, "blank"),
        ("iris", "None", 0, "iris"),
        ("ranker", "1", 0, "r1"),
        ("ranker", "2", 1, "r2"),
        ("ranker", "10", 2, "r10"),  # integers compare as numbers, as MLServer picks its newest
        ("scorer", "007", 0, "s7"),
        ("scorer", "v1", 1, "s"),  # else as text
    ]
    assert inv.ignored == () and inv.pins == {}
    assert all(v.size_bytes > 0 for v in inv.versions)


SKIPPED = [
    ("{nope", "not valid JSON"),
    ("[1]", "a list, not a JSON object"),
    ('{"name": "m"}', "no implementation"),
    ('{"implementation": 3}', "implementation is a number, not a string"),
    ('{"implementation": "a.B", "name": ["m"]}', "name is a list, not a string"),
    ('{"implementation": "a.B", "parameters": "x"}', "parameters is a string, not an object"),
    (
        '{"implementation": "a.B", "parameters": {"version": 7}}',
        "parameters.version is a number, not a string",
    ),
]


@pytest.mark.parametrize(("text", "says"), SKIPPED, ids=[s for _, s in SKIPPED])
def test_what_mlserver_skips_is_ignored_with_the_reason(tmp_path: Path, text: str, says: str) -> None:
    write_model(tmp_path, "good", "good", "1")
    settings(tmp_path / "bad", text)
    inv = scan(tmp_path)
    assert versions(inv) == [("good", "1", 0, "good")]
    reasons = ignored(inv, tmp_path)
    assert list(reasons) == ["bad/model-settings.json"]
    assert (
        says in reasons["bad/model-settings.json"]
        and "MLServer skips it" in reasons["bad/model-settings.json"]
    )


def test_null_parameters_and_version_are_no_version(tmp_path: Path) -> None:
    settings(tmp_path / "a", json.dumps({"implementation": "x.Y", "parameters": None}))
    settings(tmp_path / "b", json.dumps({"implementation": "x.Y", "parameters": {"version": None}}))
    assert versions(scan(tmp_path)) == [("a", "None", 0, "a"), ("b", "None", 0, "b")]


def test_hidden_directories_are_not_entered(tmp_path: Path) -> None:
    write_model(tmp_path, ".staging/m", "m", "1")
    (tmp_path / ".git" / "objects").mkdir(parents=True)  # nothing to say about it
    inv = scan(tmp_path)
    assert versions(inv) == [] and ignored(inv, tmp_path) == {
        ".staging": "hidden directory: MLServer does not look inside"
    }


def test_duplicates_listed_once_and_protected(tmp_path: Path) -> None:
    write_model(tmp_path, "a", "m", "1")
    write_model(tmp_path, "b", "m", "1")
    inv = scan(tmp_path)
    assert versions(inv) == [("m", "1", 0, "a")]
    assert "declares model 'm' version '1' again" in ignored(inv, tmp_path)["b"]
    assert "MLServer serves whichever it loads last" in inv.pins[("m", "1")]


def test_unversioned_beside_versioned_is_ignored(tmp_path: Path) -> None:
    """Its calls (version="None") may have reached the others: kept out of the inventory, they are
    doubt for every version of the model instead of being taken as its own."""
    write_model(tmp_path, "mixed", None, None)
    write_model(tmp_path, "mixed-1", "mixed", "1")
    settings(
        tmp_path / "lit",
        json.dumps({"implementation": "x.Y", "name": "mixed", "parameters": {"version": "None"}}),
    )
    inv = scan(tmp_path)
    assert versions(inv) == [("mixed", "1", 0, "mixed-1")]
    reasons = ignored(inv, tmp_path)
    assert set(reasons) == {"mixed", "lit"}
    assert all("without a version beside versioned ones" in r for r in reasons.values())


def test_symlinks_followed_as_mlserver_does_and_protected(tmp_path: Path) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    write_model(repo, "r1", "ranker", "1")
    write_model(outside, "ext", "ext", "1")
    os.symlink(outside, repo / "linked")  # MLServer's glob follows it, out of the root too
    os.symlink(repo / "r1", repo / "alias")  # the same files twice
    os.symlink(repo, repo / "loop")
    inv = scan(repo)
    assert versions(inv) == [("ext", "1", 0, "ext"), ("ranker", "1", 0, "r1")]  # r1 by its own path
    assert "reached through a symlink" in inv.pins[("ext", "1")]
    assert "declared more than once" in inv.pins[("ranker", "1")]
    reasons = ignored(inv, repo)
    assert "declares model 'ranker' version '1' again" in reasons["alias"]
    assert reasons["loop"].startswith("symlink loop")


def test_a_folder_holding_another_is_protected(tmp_path: Path) -> None:
    write_model(tmp_path, "outer", "outer", "1")
    write_model(tmp_path, "outer/inner", "inner", "1")
    settings(tmp_path, json.dumps({"implementation": "x.Y", "name": "top", "parameters": {"version": "1"}}))
    inv = scan(tmp_path)
    assert "moving it would move that one too" in inv.pins[("outer", "1")]
    assert "moving it would move the repository" in inv.pins[("top", "1")]
    assert ("inner", "1") not in inv.pins


def test_other_entry_points(tmp_path: Path) -> None:
    write_model(tmp_path, "m", "m", "1")
    with pytest.raises(
        InventoryError, match=r"--model-base-path .* pass the model store or repository with --model-dir"
    ):
        scan_base_path(tmp_path / "m", "m", MLSERVER)
    with pytest.raises(InventoryError, match="--model-config is TF Serving's"):
        scan_model_config(tmp_path / "models.config", MLSERVER)
    with pytest.raises(InventoryError, match=r"model repository .* does not exist"):
        scan(tmp_path / "missing")

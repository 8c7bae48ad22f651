"""`run.unloaded`: what a report learns from the unload journal in --archive-dir, read as
untrusted input (tests/actions/test_unload.py writes real journals; here they are edited)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from retire import run
from retire.config import resolve
from retire.errors import ConfigError


def _record(step: int, op: str, phase: str, versions: list[str], **more: object) -> dict[str, object]:
    record: dict[str, object] = {
        "step": step,
        "op": op,
        "phase": phase,
        "server": "http://triton:8000",
        "kind": "triton",
        "model": "ranker",
        "loaded": ["1", "2", "3"],
        "keep": ["2"],
        "versions": versions,
        "had": {},
        "time": 1_800_000_000.0 + step,
    }
    if op == "reload":
        record["whole"] = True
    return record | more


def _write(archive: Path, *records: dict[str, object]) -> None:
    archive.mkdir(exist_ok=True)
    (archive / "unload.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _unloaded(archive: Path) -> dict[tuple[str, str], object]:
    settings = resolve({"archive_dir": str(archive), "preset": "triton"}, env={})
    return dict(run.unloaded(settings))


def test_unloaded_and_not_loaded_back_versions_with_the_command_that_loads_them_back(tmp_path: Path) -> None:
    a = tmp_path / "archive"
    _write(
        a,
        _record(1, "unload", "begin", ["1", "3"]),
        _record(1, "unload", "done", ["1", "3"]),
        _record(2, "reload", "begin", ["3"]),
        _record(2, "reload", "done", ["3"]),
    )
    found = _unloaded(a)
    assert list(found) == [("ranker", "1")]
    u = found[("ranker", "1")]
    assert u.when == 1_800_000_001.0 and u.server == "http://triton:8000"  # type: ignore[attr-defined]
    assert u.undo == (  # type: ignore[attr-defined]
        f"retire unload --undo --only ranker:1 --archive-dir {a} --server http://triton:8000 --preset triton"
    )


def test_a_failed_unload_unloaded_nothing_and_a_begun_one_may_have(tmp_path: Path) -> None:
    a = tmp_path / "archive"
    _write(a, _record(1, "unload", "begin", ["1"]), _record(1, "unload", "failed", ["1"], reason="x"))
    assert _unloaded(a) == {}
    _write(a, _record(1, "unload", "begin", ["1"]))  # a crash after asking: it may have landed
    assert list(_unloaded(a)) == [("ranker", "1")]


def test_no_archive_or_no_journal_means_nothing_was_unloaded(tmp_path: Path) -> None:
    assert _unloaded(tmp_path / "not-yet") == {}
    (tmp_path / "empty").mkdir()
    assert _unloaded(tmp_path / "empty") == {}
    assert run.unloaded(resolve({}, env={})) == {}


@pytest.mark.parametrize(
    "edit",
    [
        {"time": "yesterday"},
        {"time": float("nan")},
        {"time": True},
        {"model": "../etc"},
        {"versions": ["1/../../x"]},
        {"phase": "undone"},
    ],
    ids=["time-text", "time-nan", "time-bool", "model-dotdot", "version-path", "phase"],
)
def test_an_edited_journal_is_one_line_exit_2_not_a_guess(tmp_path: Path, edit: dict[str, object]) -> None:
    a = tmp_path / "archive"
    _write(a, _record(1, "unload", "done", ["1"]) | edit)
    with pytest.raises(ConfigError) as e:
        _unloaded(a)
    assert "a report cannot tell which versions retire unloaded" in e.value.message
    assert "\n" not in e.value.message


def test_a_journal_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    a = tmp_path / "archive"
    a.mkdir()
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text(json.dumps(_record(1, "unload", "done", ["1"])) + "\n")
    os.symlink(elsewhere, a / "unload.jsonl")
    with pytest.raises(ConfigError):
        _unloaded(a)


@pytest.mark.parametrize(
    "server", ["http://t:8000 --apply", "http://t:8000\n; rm -rf ~", "file:///etc", "http://t:8000\x1b[2J"]
)
def test_a_journal_server_that_is_no_plain_url_is_refused(tmp_path: Path, server: str) -> None:
    a = tmp_path / "archive"
    _write(a, _record(1, "unload", "done", ["1"], server=server))
    with pytest.raises(ConfigError):
        _unloaded(a)


def test_the_command_to_copy_quotes_what_a_shell_would_read(tmp_path: Path) -> None:
    a = tmp_path / "my archive"
    _write(a, _record(1, "unload", "done", ["1"], model="a;b", server="http://t:8000/x;touch${IFS}y"))
    (u,) = _unloaded(a).values()
    assert u.undo == (  # type: ignore[attr-defined]
        f"retire unload --undo --only 'a;b:1' --archive-dir '{a}' --server 'http://t:8000/x;touch${{IFS}}y' "
        "--preset triton"
    )

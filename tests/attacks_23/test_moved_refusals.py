"""The archive lock is now taken by `resume` and `restore` themselves (actions/offload.py), no
longer by the CLI around them; the journal reader moved to actions/journal.py. Attacks: a lock
held by another process, a damaged or hand-written journal, an archive that is a file. Each must
stay a one-line refusal with exit code 6 and move nothing, as at feeefdc."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.offload_lab import cli, one_line_error


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """An archive whose lock another open file description holds (another run, as flock sees it)."""
    archive = tmp_path / "archive"
    archive.mkdir()
    with open(archive / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield archive


@pytest.mark.parametrize("argv", [["restore"], ["offload", "--resume"]], ids=["restore", "resume"])
def test_a_held_archive_lock_is_a_refusal_for_resume_and_restore(held: Path, argv: list[str]) -> None:
    run = cli(*argv, "--archive-dir", str(held))
    one_line_error(run, 6, "another retire offload or restore is running", ".lock")


def _begun(tmp_path: Path) -> tuple[Path, Path]:
    """A hand-written `begin` record without size_bytes for a version that exists on disk."""
    root = tmp_path / "models"
    (root / "a" / "1").mkdir(parents=True)
    (root / "a" / "1" / "saved_model.pb").write_bytes(b"x")
    archive = tmp_path / "archive"
    archive.mkdir()
    record = {
        "step": 1,
        "phase": "begin",
        "op": "offload",
        "model": "a",
        "version": "1",
        "src": str(root / "a" / "1"),
        "dst": str(archive / "models" / "a" / "1"),
        "root": str(root),
    }
    (archive / "journal.jsonl").write_text(json.dumps(record) + "\n")
    return root, archive


@pytest.mark.parametrize("argv", [["restore"], ["offload", "--resume"]], ids=["restore", "resume"])
def test_an_edited_journal_moves_nothing(tmp_path: Path, argv: list[str]) -> None:
    root, archive = _begun(tmp_path)
    run = cli(*argv, "--archive-dir", str(archive))
    one_line_error(run, 6, "journal")
    assert (root / "a" / "1" / "saved_model.pb").read_bytes() == b"x"
    assert not (archive / "models").exists()


@pytest.mark.parametrize("argv", [["restore"], ["offload", "--resume"]], ids=["restore", "resume"])
def test_a_journal_that_is_not_json_is_a_refusal(tmp_path: Path, argv: list[str]) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "journal.jsonl").write_text("garbage\n")
    run = cli(*argv, "--archive-dir", str(archive))
    one_line_error(run, 6, "not valid JSON", "damaged")


@pytest.mark.parametrize("argv", [["restore"], ["offload", "--resume"]], ids=["restore", "resume"])
def test_an_archive_that_is_a_file_is_a_refusal(tmp_path: Path, argv: list[str]) -> None:
    archive = tmp_path / "archive"
    archive.write_text("not a directory")
    run = cli(*argv, "--archive-dir", str(archive))
    one_line_error(run, 6, "--archive-dir")
    assert archive.read_text() == "not a directory"

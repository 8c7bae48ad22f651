"""Attacks on `retire unload --preset mlserver` (issue #24): the repositories, Prometheus and the
local server standing in for MLServer of tests/actions/test_unload_mlserver.py (FakeMLServer in
tests/model_servers.py). Each attack below worked against a first version or is one the brief
named; all hold now (the ones that worked are said in their docstrings).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from retire.actions.unload import journal_records
from retire.actions.unload_folders import FOLDERS_JOURNAL
from tests.actions.test_unload import one_line_error
from tests.actions.test_unload_mlserver import (
    AFTER,
    ON_DISK,
    args,
    folders,
    loaded,
    mlserver,
    repo,
    settings,
    undo_args,
)
from tests.conftest import Lab, run_cli
from tests.model_servers import FakeMLServer
from tests.offload_lab import snapshot, tmpfs

pytestmark = pytest.mark.prometheus
__all__ = ["mlserver", "repo"]  # fixtures


def edit_folders_journal(archive: Path, change: Any) -> None:
    """Edit every record of the folder moves' journal in place (someone with write access)."""
    path = archive / FOLDERS_JOURNAL
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(change(r)) + "\n" for r in records))


def applied(lab: Lab, repo: Path, url: str, archive: Path, *extra: str) -> None:
    run = run_cli("unload", *args(lab, repo, url, archive, "--apply", *extra))
    assert run.exit_code == 0, run.stderr


# --- the journals, edited ---


def test_a_journal_that_puts_a_folder_outside_the_root(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    archive = tmp_path / "archive"
    applied(present_lab, repo, url, archive)
    outside = tmp_path / "outside"
    (outside / "alpha").mkdir(parents=True)
    real = os.path.realpath(repo)

    def elsewhere(r: dict[str, Any]) -> dict[str, Any]:
        return {**r, "src": r["src"].replace(real, str(outside)), "root": str(outside)}

    edit_folders_journal(archive, elsewhere)
    run = run_cli(*undo_args(url, repo, archive))
    one_line_error(run, 6, "which is no --model-dir root")
    assert list(outside.rglob("*")) == [outside / "alpha"] and loaded(fake) == AFTER
    assert sorted(p.name for p in (archive / "models" / "alpha").iterdir()) == ["2", "3"]


def test_a_journal_with_dotdot_or_a_root_that_is_not_above(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    archive = tmp_path / "archive"
    applied(present_lab, repo, url, archive)
    original = (archive / FOLDERS_JOURNAL).read_text()
    for change in (
        lambda r: {**r, "src": r["src"].replace("/alpha/", "/alpha/../../")},
        lambda r: {**r, "root": r["root"] + "/alpha"} if r["model"] == "beta" else r,
        lambda r: {**r, "src": r["root"] + "/" + r["model"] + "\n/" + r["version"]},
    ):
        (archive / FOLDERS_JOURNAL).write_text(original)
        edit_folders_journal(archive, change)
        run = run_cli(*undo_args(url, repo, archive))
        one_line_error(run, 6)
        assert "\n" not in run.stderr.strip().splitlines()[-1][1:]
        assert loaded(fake) == AFTER and folders(repo) == AFTER


def test_a_symlink_in_the_way_back(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    """repo/alpha replaced by a symlink to a directory outside: nothing goes through it."""
    fake, url = mlserver
    archive = tmp_path / "archive"
    applied(present_lab, repo, url, archive)
    outside = tmp_path / "outside"
    shutil.move(repo / "alpha", outside)
    (repo / "alpha").symlink_to(outside)
    run = run_cli(*undo_args(url, repo, archive))
    one_line_error(run, 6, "is a symlink")
    assert sorted(p.name for p in (archive / "models" / "alpha").iterdir()) == ["2", "3"]
    assert not (outside / "2").exists() and loaded(fake) == AFTER


def test_an_archived_folder_swapped_for_another_model(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    """What goes back must still declare the model and version the journal says it is."""
    fake, url = mlserver
    archive = tmp_path / "archive"
    applied(present_lab, repo, url, archive)
    settings(archive / "models" / "alpha" / "2", "payroll", "7")
    run = run_cli(*undo_args(url, repo, archive))
    one_line_error(run, 6, "declares payroll 7, not alpha 2", "nothing was moved back")
    assert folders(repo) == AFTER and loaded(fake) == AFTER


def test_the_unload_journal_names_no_path_that_is_used(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    """The unload journal's record of the folders is what was done, for people; the way back is
    read only from the folder moves' journal, and checked."""
    fake, url = mlserver
    archive = tmp_path / "archive"
    before = snapshot(repo)
    applied(present_lab, repo, url, archive)
    path = archive / "unload.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for r in lines:
        for f in r["had"]["folders"].values():
            f["src"] = str(tmp_path / "elsewhere")
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    run = run_cli(*undo_args(url, repo, archive))
    assert run.exit_code == 0, run.stderr
    assert snapshot(repo) == before and loaded(fake) == ON_DISK
    assert not (tmp_path / "elsewhere").exists()


def test_a_folder_put_back_by_hand(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    """Someone moved alpha 2 back by hand (a first version refused every later --undo: "exists
    again"): it is found where it was, declaring alpha 2, and loaded."""
    fake, url = mlserver
    archive = tmp_path / "archive"
    before = snapshot(repo)
    applied(present_lab, repo, url, archive)
    shutil.move(archive / "models" / "alpha" / "2", repo / "alpha" / "2")
    run = run_cli(*undo_args(url, repo, archive))
    assert run.exit_code == 0, run.stderr
    assert snapshot(repo) == before and loaded(fake) == ON_DISK
    again = run_cli(*undo_args(url, repo, archive))
    one_line_error(again, 6, "nothing unloaded")


def test_a_begun_move_edited_to_take_a_folder_from_outside(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    """A begun move (as a crash leaves one) edited to name a directory outside the repository, or
    a folder inside it that is not that version: a first version finished it, moving that
    directory into the archive. Now nothing moves."""
    fake, url = mlserver
    archive = tmp_path / "archive"
    archive.mkdir()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data").write_text("keep me")
    real = os.path.realpath(repo)
    for src, root, said in (
        (str(precious), str(tmp_path), "which is no --model-dir root"),
        (f"{real}/beta/1", real, "does not declare that model and version"),
    ):
        record = {"step": 1, "phase": "begin", "op": "offload", "model": "alpha", "version": "2"}
        record.update({"src": src, "root": root, "size_bytes": 0})
        record["dst"] = f"{os.path.realpath(archive)}/models/alpha/{os.path.basename(src)}"
        (archive / FOLDERS_JOURNAL).write_text(json.dumps(record) + "\n")
        run = run_cli("unload", *args(present_lab, repo, url, archive, "--apply"))
        one_line_error(run, 6, said, "nothing was moved")
        assert (precious / "data").read_text() == "keep me" and (repo / "beta" / "1").is_dir()
        assert fake.loads == [] and not (archive / "models").exists()


# --- what must never move ---


def test_a_folder_another_version_reads_is_never_moved(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    """alpha 1 (kept) loads its files from alpha 2's folder (parameters.uri): alpha 2 is
    protected, so it is not chosen, and naming it is refused."""
    fake, url = mlserver
    settings(repo / "alpha" / "1", "alpha", "1", parameters={"uri": "../2"})
    archive = tmp_path / "archive"
    before = snapshot(repo)
    only = run_cli("unload", *args(present_lab, repo, url, archive, "--only", "alpha:2", "--apply"))
    one_line_error(only, 6, "alpha:2 is protected, not safe")
    run = run_cli("unload", *args(present_lab, repo, url, archive, "--apply"))
    assert run.exit_code == 0, run.stderr
    assert loaded(fake)["alpha"] == {"1", "2", "5", "8"} and (repo / "alpha" / "2").is_dir()
    assert snapshot(repo) != before and folders(repo)["alpha"] == {"1", "2", "5", "8"}


def test_a_folder_reached_through_a_symlink_is_never_moved(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    outside = tmp_path / "outside-2"
    shutil.move(repo / "beta" / "2", outside)
    (repo / "beta" / "2").symlink_to(outside)
    archive = tmp_path / "archive"
    only = run_cli("unload", *args(present_lab, repo, url, archive, "--only", "beta:2", "--apply"))
    one_line_error(only, 6, "beta:2 is protected, not safe")
    assert (outside / "model-settings.json").exists() and fake.loads == []


def test_a_folder_name_with_control_characters(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    """alpha 3's folder is named `3\\x1b[31m`: never chosen (the scan protects a folder whose
    name is no plain path component), refused before any change, in one line without it."""
    fake, url = mlserver
    os.rename(repo / "alpha" / "3", repo / "alpha" / "3\x1b[31m")
    archive = tmp_path / "archive"
    before = snapshot(repo)
    run = run_cli("unload", *args(present_lab, repo, url, archive, "--only", "alpha:3", "--apply"))
    one_line_error(run, 6, "alpha:3 is protected, not safe")
    assert "\x1b" not in run.stderr and fake.loads == [] and snapshot(repo) == before


# --- filesystems ---


def test_an_archive_on_another_filesystem(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    before = snapshot(repo)
    with tmpfs(tmp_path, "64m") as other:
        archive = other / "archive"
        applied(present_lab, repo, url, archive)
        assert loaded(fake) == AFTER and folders(repo) == AFTER
        assert (archive / "models" / "alpha" / "2" / "model-settings.json").exists()
        back = run_cli(*undo_args(url, repo, archive))
        assert back.exit_code == 0, back.stderr
        assert snapshot(repo) == before and loaded(fake) == ON_DISK


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another owner")
def test_owners_and_modes_survive_a_move_across_filesystems(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    """alpha 2's folder belongs to `nobody` (the server's user), its files private (0600): a
    first version, run as root with the archive on another filesystem, brought it back owned by
    root, unreadable by the server. Owner, group and modes now come back as they were."""
    fake, url = mlserver
    folder = repo / "alpha" / "2"
    for p in (folder, *folder.rglob("*")):
        os.lchown(p, 65534, 65534)
        if p.is_file():
            p.chmod(0o600)
    os.utime(folder, (1, 1))

    def owners() -> dict[str, tuple[int, int, int]]:
        return {
            str(p.relative_to(folder)): (p.lstat().st_uid, p.lstat().st_gid, p.lstat().st_mode)
            for p in (folder, *folder.rglob("*"))
        }

    before = owners()
    with tmpfs(tmp_path, "64m") as other:
        archive = other / "archive"
        applied(present_lab, repo, url, archive, "--only", "alpha:2")
        assert (archive / "models" / "alpha" / "2").lstat().st_uid == 65534
        back = run_cli(*undo_args(url, repo, archive))
        assert back.exit_code == 0, back.stderr
    assert owners() == before and loaded(fake) == ON_DISK


def test_a_full_archive_filesystem(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    """The archive's filesystem has no room for alpha 2: the move is undone, nothing is loaded
    again, the run stops (exit 6) and the repository is as it was."""
    fake, url = mlserver
    (repo / "alpha" / "2" / "weights.bin").write_bytes(os.urandom(3 << 20))
    os.utime(repo / "alpha" / "2", (1, 1))
    before = snapshot(repo)
    with tmpfs(tmp_path, "2m") as small:
        archive = small / "archive"
        run = run_cli("unload", *args(present_lab, repo, url, archive, "--only", "alpha:2", "--apply"))
        one_line_error(run, 6, "unloading alpha failed and was undone", "No space left")
        assert snapshot(repo) == before and loaded(fake) == ON_DISK
        assert not list((archive / "models" / "alpha").iterdir())
        phases = [r["phase"] for r in journal_records(archive)]
        assert phases == ["begin", "failed"]


# --- servers that lie, hang or trickle ---


def test_a_404_that_is_not_mlservers_is_no_proof_of_absence(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    fake.faults.add("proxy-404")
    archive = tmp_path / "archive"
    before = snapshot(repo)
    run = run_cli("unload", *args(present_lab, repo, url, archive, "--only", "alpha:2", "--apply"))
    one_line_error(run, 6, "unloading alpha failed", "no route to upstream")
    assert snapshot(repo) == before


def test_a_load_answer_trickled_past_the_timeout(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    fake.trickle = 0.1  # 62 bytes: about 6 s, past --timeout 1s
    archive = tmp_path / "archive"
    before = snapshot(repo)
    run = run_cli(
        "unload", *args(present_lab, repo, url, archive, "--only", "alpha:2", "--apply", "--timeout", "1s")
    )
    one_line_error(run, 6, "unloading alpha failed and was undone", "did not answer within 1s")
    assert snapshot(repo) == before and loaded(fake) == ON_DISK


def test_secrets_never_reach_a_message_or_a_journal(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    token = tmp_path / "token"
    token.write_text("prom-token-4242\n")
    secret_url = url.replace("http://", "http://ops:srv-pass-777@")
    archive = tmp_path / "archive"
    extra = ("--header", "X-Prom-Key: prom-header-999", "--bearer-token-file", str(token), "--apply")
    run = run_cli("unload", *args(present_lab, repo, secret_url, archive, "--only", "alpha:2", *extra))
    assert run.exit_code == 0, run.stderr
    fake.faults.add("refuse-always")
    refused = run_cli("unload", *args(present_lab, repo, secret_url, archive, "--only", "beta:2", *extra))
    assert refused.exit_code == 6
    fake.faults.discard("refuse-always")
    back = run_cli(*undo_args(secret_url, repo, archive))
    assert back.exit_code == 0, back.stderr
    sent = json.dumps([s.headers for s in fake.log])
    assert "prom-header-999" not in sent and "prom-token-4242" not in sent
    seen = "".join(r.stdout + r.stderr for r in (run, refused, back))
    seen += "".join(p.read_text() for p in archive.glob("*.jsonl"))
    for secret in ("srv-pass-777", "prom-header-999", "prom-token-4242"):
        assert secret not in seen

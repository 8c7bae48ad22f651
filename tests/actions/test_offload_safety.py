"""Offload and restore never touch the wrong directory and never get stuck (issue 13).

Each test runs the real CLI against a real Prometheus and real directories: symlinks of each kind,
names that are not path components, edited plans and journals, a full tmpfs, a second filesystem,
SIGKILL at every journal write, two runs at once. Each asserts the bytes of the model tree and the
archive afterwards, not only the exit code.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest

from tests import scenarios as sc
from tests.conftest import Lab, run_cli
from tests.offload_lab import (
    SAFE_BASIC,
    args,
    cli,
    evidence,
    journal,
    one_line_error,
    snapshot,
    tmpfs,
    unfinished,
)

pytestmark = pytest.mark.prometheus


@pytest.fixture
def tree(present_lab: Lab, tmp_path: Path) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(present_lab.models(sc.BASIC), dst, symlinks=True)
    return dst


def archived(archive: Path) -> set[tuple[str, str]]:
    return {(p.parent.name, p.name) for p in (archive / "models").glob("*/*")}


def below(snap: dict[str, object], prefix: str) -> dict[str, object]:
    return {k: v for k, v in snap.items() if k.startswith(prefix)}


def report_rows(lab: Lab, tree: Path) -> dict[tuple[str, str], dict[str, Any]]:
    run = run_cli("report", *evidence(lab, "--model-dir", str(tree), "--format", "json"))
    doc = json.loads(run.stdout)
    return {(r["model"], r["version"]): r for r in doc["rows"]}


# --- 1 and 10: symlinked model and version directories -------------------------------------


def test_symlinked_model_directory_is_one_row_and_never_moved(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    (tree / "alpha-alias").symlink_to("alpha")  # the same model synced under a second name
    archive = tmp_path / "archive"
    before = snapshot(tree)
    rows = report_rows(present_lab, tree)
    assert not any(model == "alpha-alias" for model, _ in rows)  # one physical version, one row
    assert rows[("alpha", "2")]["status"] == "protected" and "alpha-alias 2" in rows[("alpha", "2")]["reason"]
    run = cli("offload", *args(present_lab, tree, archive, "--apply"))
    assert run.returncode == 0, run.stderr
    assert archived(archive) == {("beta", "2")}  # nothing of alpha, through either name
    assert below(snapshot(tree), "alpha") == below(before, "alpha")
    assert cli("restore", "--archive-dir", str(archive)).returncode == 0
    assert snapshot(tree) == before


@pytest.mark.parametrize("archive_on", ["same filesystem", "another filesystem"])
def test_symlinked_version_directories_are_never_moved(
    present_lab: Lab, tree: Path, tmp_path: Path, archive_on: str
) -> None:
    (tree / "beta" / "0").symlink_to("2")  # version 0 served from version 2's files
    outside = tmp_path / "outside" / "4"
    outside.mkdir(parents=True)
    (outside / "saved_model.pb").write_bytes(b"outside the root")
    old = os.stat(tree / "alpha" / "2").st_mtime
    os.utime(outside, (old, old))
    (tree / "alpha" / "4").symlink_to(outside)  # a version reached only through a link
    before, outside_before = snapshot(tree), snapshot(outside.parent)
    rows = report_rows(present_lab, tree)
    assert ("beta", "0") not in rows and "beta 0" in rows[("beta", "2")]["reason"]
    assert rows[("beta", "2")]["status"] == rows[("alpha", "4")]["status"] == "protected"
    assert "symlink" in rows[("alpha", "4")]["reason"]
    with tmpfs(tmp_path, "64m") if archive_on != "same filesystem" else nullcontext(tmp_path) as where:
        archive = where / "archive"
        run = cli("offload", *args(present_lab, tree, archive, "--apply"))
        assert run.returncode == 0, run.stderr
        assert archived(archive) == {("alpha", "2"), ("alpha", "3")}
        assert (
            below(snapshot(tree), "beta") == below(before, "beta")
            and snapshot(outside.parent) == outside_before
        )
        assert cli("restore", "--archive-dir", str(archive)).returncode == 0
    assert snapshot(tree) == before


# --- 2: names that are not path components ------------------------------------------------


@pytest.mark.parametrize("name", ["../../escape_target", "a/b", ".."])
def test_unsafe_model_names_are_protected_and_refused(
    present_lab: Lab, tree: Path, tmp_path: Path, name: str
) -> None:
    archive = tmp_path / "deep" / "archive"
    source = evidence(present_lab, "--model-base-path", str(tree / "beta"), "--model-name", name)
    before = snapshot(tmp_path)
    report = run_cli("report", *source, "--format", "json")
    rows = {(r["model"], r["version"]): r for r in json.loads(report.stdout)["rows"]}
    assert (
        rows[(name, "1")]["status"] == "protected"
        and "not a safe path component" in rows[(name, "1")]["reason"]
    )
    planned = run_cli("plan", *source, "--archive-dir", str(archive), "--format", "json")
    assert planned.exit_code == 0 and json.loads(planned.stdout)["moves"] == []
    forced = cli("offload", *source, "--archive-dir", str(archive), "--only", f"{name}:1", "--apply")
    one_line_error(forced, 6, "protected")
    after = snapshot(tmp_path)
    assert below(after, "models") == below(before, "models")
    assert not (tmp_path / "escape_target").exists() and not (tmp_path / "deep" / "escape_target").exists()
    assert not archived(archive) and not (archive / "models").exists()


# --- 3: a symlink inside the archive --------------------------------------------------------


def test_symlink_inside_the_archive_is_refused(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    (tree / "gamma").mkdir()  # a served model, no versions yet
    archive = tmp_path / "archive"
    (archive / "models").mkdir(parents=True)
    (archive / "models" / "alpha").symlink_to(tree / "gamma")
    before = snapshot(tree)
    run = cli("offload", *args(present_lab, tree, archive, "--only", "alpha:2", "--apply"))
    one_line_error(run, 6, "symlink")
    assert snapshot(tree) == before and not unfinished(archive)


@pytest.mark.parametrize("name", ["journal.jsonl", ".lock"])
def test_a_journal_or_lock_that_is_a_symlink_is_not_written_through(
    present_lab: Lab, tree: Path, tmp_path: Path, name: str
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("someone else's file\n")
    (archive / name).symlink_to(victim)
    if name != ".lock":
        (archive / ".lock").touch()  # every run makes it: not what is compared
    before = snapshot(tmp_path)
    for command in (
        ["offload", *args(present_lab, tree, archive, "--apply")],
        ["restore", "--archive-dir", str(archive)],
        ["offload", "--archive-dir", str(archive), "--resume"],
    ):
        one_line_error(cli(*command), 6)
        assert snapshot(tmp_path) == before


# --- 4: an edited plan ------------------------------------------------------------------------


def _src_elsewhere(plan: dict[str, Any], tmp: Path) -> None:
    plan["moves"][0]["src"] = str(tmp / "unrelated" / "2")


def _dst_into_tree(plan: dict[str, Any], tmp: Path) -> None:
    plan["moves"][0]["dst"] = str(tmp / "models" / "gamma" / "2")


def _dst_traversal(plan: dict[str, Any], tmp: Path) -> None:
    plan["moves"][0]["dst"] = plan["archive"] + "/models/alpha/../../../outside/2"


def _other_archive(plan: dict[str, Any], tmp: Path) -> None:
    plan["archive"] = str(tmp / "another-archive")


def _version_not_text(plan: dict[str, Any], tmp: Path) -> None:
    plan["moves"][0]["version"] = 2


def _moves_not_a_list(plan: dict[str, Any], tmp: Path) -> None:
    plan["moves"] = {"alpha": 2}


def _move_missing_dst(plan: dict[str, Any], tmp: Path) -> None:
    del plan["moves"][0]["dst"]


def _size_not_a_number(plan: dict[str, Any], tmp: Path) -> None:
    plan["moves"][0]["size_bytes"] = "big"


@pytest.mark.parametrize(
    "edit",
    [
        _src_elsewhere,
        _dst_into_tree,
        _dst_traversal,
        _other_archive,
        _version_not_text,
        _moves_not_a_list,
        _move_missing_dst,
        _size_not_a_number,
    ],
)
def test_an_edited_plan_moves_nothing(
    present_lab: Lab, tree: Path, tmp_path: Path, edit: Callable[[dict[str, Any], Path], None]
) -> None:
    (tree / "gamma").mkdir()
    unrelated = tmp_path / "unrelated" / "2"
    unrelated.mkdir(parents=True)
    (unrelated / "precious").write_bytes(b"not a model")
    archive = tmp_path / "archive"
    plan_file = tmp_path / "plan.json"
    made = run_cli("plan", *args(present_lab, tree, archive, "--only", "alpha:2", "--format", "json"))
    assert made.exit_code == 0, made.stderr
    plan = json.loads(made.stdout)
    edit(plan, tmp_path)
    plan_file.write_text(json.dumps(plan))
    before = snapshot(tmp_path)
    run = cli("offload", *args(present_lab, tree, archive, "--plan", str(plan_file), "--apply"))
    one_line_error(run, 6)
    after = snapshot(tmp_path)
    assert below(after, "models") == below(before, "models") and below(after, "unrelated") == below(
        before, "unrelated"
    )
    assert not archived(archive) and not (tmp_path / "outside").exists() and not unfinished(archive)


def test_a_plan_nested_too_deep_is_refused_in_one_line(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text("[" * 100_000)
    before = snapshot(tree)
    run = cli("offload", *args(present_lab, tree, tmp_path / "archive", "--plan", str(plan_file), "--apply"))
    one_line_error(run, 6, "not a plan")
    assert snapshot(tree) == before


# --- 5: an edited journal -------------------------------------------------------------------


def _offloaded_beta_2(lab: Lab, tree: Path, archive: Path) -> None:
    run = run_cli("offload", *args(lab, tree, archive, "--only", "beta:2", "--apply"))
    assert run.exit_code == 0, run.stderr


def _edit_records(archive: Path, change: Callable[[dict[str, Any]], None]) -> None:
    records = journal(archive)
    for r in records:
        change(r)
    (archive / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.mark.parametrize(
    "damage",
    [
        "dst traversal",
        "relative src",
        "src is /",
        "not an object",
        "no step",
        "unknown op",
        "step is text",
        "dst in another archive",
    ],
)
def test_an_edited_journal_moves_nothing(present_lab: Lab, tree: Path, tmp_path: Path, damage: str) -> None:
    archive = tmp_path / "archive"
    _offloaded_beta_2(present_lab, tree, archive)
    outside = tmp_path / "outside" / "2"
    outside.mkdir(parents=True)
    (outside / "precious").write_bytes(b"not in the archive")
    traversal = str(archive / "models" / "beta" / ".." / ".." / ".." / "outside" / "2")
    if damage == "dst traversal":
        _edit_records(archive, lambda r: r.update(dst=traversal))
    elif damage == "relative src":
        _edit_records(archive, lambda r: r.update(src="models/beta/2"))
    elif damage == "src is /":
        _edit_records(archive, lambda r: r.update(src="/"))
    elif damage == "dst in another archive":
        _edit_records(archive, lambda r: r.update(dst=str(tmp_path / "outside" / "2")))
    elif damage == "not an object":
        with (archive / "journal.jsonl").open("a") as f:
            f.write("[1, 2]\n")
    elif damage == "no step":
        _edit_records(archive, lambda r: r.pop("step"))
    elif damage == "unknown op":
        _edit_records(archive, lambda r: r.update(op="delete"))
    elif damage == "step is text":
        _edit_records(archive, lambda r: r.update(step="1"))
    before = snapshot(tmp_path)
    for command in (
        ["restore", "--archive-dir", str(archive)],
        ["offload", "--archive-dir", str(archive), "--resume"],
    ):
        run = cli(*command)
        one_line_error(run, 6, "journal")
        assert snapshot(tmp_path) == before  # tree, archive, and what lies outside: untouched


def test_a_torn_last_record_is_cut_off_not_buried(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    before = snapshot(tree)
    archive = tmp_path / "archive"
    _offloaded_beta_2(present_lab, tree, archive)
    with (archive / "journal.jsonl").open("a") as f:
        f.write('{"step": 3, "phase": "beg')  # a power cut during a write, before its fsync returned
    run = cli("restore", "--archive-dir", str(archive))
    assert run.returncode == 0, run.stderr
    assert snapshot(tree) == before
    assert [r["phase"] for r in journal(archive)] == ["begin", "done", "begin", "done"]  # every line whole
    one_line_error(cli("restore", "--archive-dir", str(archive)), 6, "nothing archived")


@pytest.mark.parametrize("swap", ["model directory", "version directory"])
def test_archive_contents_replaced_by_symlinks_are_not_followed(
    present_lab: Lab, tree: Path, tmp_path: Path, swap: str
) -> None:
    archive = tmp_path / "archive"
    _offloaded_beta_2(present_lab, tree, archive)
    decoy = tmp_path / "decoy" / "2"
    decoy.mkdir(parents=True)
    (decoy / "saved_model.pb").write_bytes(b"not what was archived")
    real = archive / "models" / "beta" if swap == "model directory" else archive / "models" / "beta" / "2"
    real.rename(tmp_path / "moved-away")
    real.symlink_to(decoy.parent if swap == "model directory" else decoy)
    before = snapshot(tmp_path)
    for command in (
        ["restore", "--archive-dir", str(archive)],
        ["offload", "--archive-dir", str(archive), "--resume"],
    ):
        run = cli(*command)
        if command[0] == "restore":
            one_line_error(run, 6, "symlink" if swap == "model directory" else "not a directory")
        assert snapshot(tmp_path) == before  # the decoy never enters the model tree
    assert not (tree / "beta" / "2").exists()


# --- 6: a relative model directory ------------------------------------------------------------


def test_relative_model_dir_is_restored_from_another_directory(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    before = snapshot(tree)
    run = cli("offload", *args(present_lab, "models", "archive", "--apply"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    records = journal(tmp_path / "archive")
    assert records and all(os.path.isabs(r["src"]) and os.path.isabs(r["dst"]) for r in records)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    back = cli("restore", "--archive-dir", str(tmp_path / "archive"), cwd=elsewhere)
    assert back.returncode == 0, back.stderr
    assert snapshot(tree) == before and list(elsewhere.iterdir()) == []


# --- 7: one offload at a time per model root -----------------------------------------------------


def test_a_second_archive_on_a_locked_model_root_is_refused(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    before = snapshot(tree)
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another run, with another archive, is moving versions here
        run = cli("offload", *args(present_lab, tree, tmp_path / "second", "--apply"))
    finally:
        os.close(fd)
    one_line_error(run, 6, "model root")
    assert snapshot(tree) == before and not journal(tmp_path / "second")


def test_two_offloads_with_different_archives_at_once(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    before = snapshot(tree)
    archives = [tmp_path / "a", tmp_path / "b"]
    path = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "retire", "offload", *args(present_lab, tree, a, "--apply")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        for a in archives
    ]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in runs]
    for (code, err), archive in zip(results, archives, strict=True):
        # 6: refused at the model root's lock; 0: ran after the other (its versions were gone);
        # 2: its first scan met a directory the other was moving (a clear read error, nothing done)
        assert code in (0, 2, 6) and "Traceback" not in err, err
        assert not unfinished(archive)  # the loser leaves nothing half-done
    moved = [archived(a) for a in archives]
    assert not moved[0] & moved[1] and moved[0] | moved[1] == SAFE_BASIC
    for archive, got in zip(archives, moved, strict=True):
        if got:
            assert cli("restore", "--archive-dir", str(archive)).returncode == 0
    assert snapshot(tree) == before


# --- 8: no space left in the archive -----------------------------------------------------------


@pytest.mark.parametrize(("size", "fits"), [("1m", set()), ("4m", {("alpha", "2")})])
def test_disk_full_in_the_archive_undoes_the_step(
    present_lab: Lab, tree: Path, tmp_path: Path, size: str, fits: set[tuple[str, str]]
) -> None:
    before = snapshot(tree)
    with tmpfs(tmp_path, size) as small:
        archive = small / "archive"
        run = cli(
            "offload", *args(present_lab, tree, archive, "--only", "alpha:2", "--only", "alpha:3", "--apply")
        )
        one_line_error(run, 6, "No space left on device")
        assert archived(archive) == fits and not list(archive.rglob("*.partial")) and not unfinished(archive)
        assert below(snapshot(tree), "alpha/3") == below(before, "alpha/3")
        resumed = cli("offload", "--archive-dir", str(archive), "--resume")
        assert resumed.returncode == 0 and "nothing to resume" in resumed.stderr
        back = cli("restore", "--archive-dir", str(archive))
        if fits:
            assert back.returncode == 0, back.stderr
        else:
            one_line_error(back, 6, "nothing archived")
        assert not archived(archive)
    assert snapshot(tree) == before


# --- 9: SIGKILL at every journal write, across filesystems ------------------------------------------


@pytest.mark.parametrize("crash_after", [1, 2, 3, 4, 5, 6])
def test_crash_at_each_journal_write_across_filesystems(
    present_lab: Lab, tree: Path, tmp_path: Path, crash_after: int
) -> None:
    before = snapshot(tree)
    with tmpfs(tmp_path, "64m") as other:
        archive = other / "archive"
        crashed = cli(
            "offload",
            *args(present_lab, tree, archive, "--only", "alpha:2", "--only", "beta:2", "--apply"),
            crash_after=crash_after,
        )
        assert crashed.returncode == -9  # writes: begin, verified, done; begin, verified, done
        last = journal(archive)[-1]
        if crash_after in (2, 5):  # between renaming the verified copy into place and removing the source
            assert last["phase"] == "verified" and Path(last["src"]).exists() and Path(last["dst"]).exists()
            # as if the kill had come half-way through removing the source
            next(p for p in sorted(Path(last["src"]).rglob("*")) if p.is_file()).unlink()
        resumed = cli("offload", "--archive-dir", str(archive), "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert not unfinished(archive) and not list(archive.rglob("*.partial"))
        expected = {("alpha", "2")} if crash_after <= 3 else {("alpha", "2"), ("beta", "2")}
        assert archived(archive) == expected
        for model, version in expected:
            assert snapshot(archive / "models" / model / version) == _strip(
                below(before, f"{model}/{version}/")
            )
            assert not (tree / model / version).exists()
        assert cli("restore", "--archive-dir", str(archive)).returncode == 0
    assert snapshot(tree) == before


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_crash_at_each_journal_write_of_a_restore_across_filesystems(
    present_lab: Lab, tree: Path, tmp_path: Path, crash_after: int
) -> None:
    before = snapshot(tree)
    with tmpfs(tmp_path, "64m") as other:
        archive = other / "archive"
        run = cli("offload", *args(present_lab, tree, archive, "--only", "alpha:2", "--apply"))
        assert run.returncode == 0, run.stderr
        crashed = cli(
            "restore",
            "--archive-dir",
            str(archive),
            crash_after=crash_after,
        )
        assert crashed.returncode == -9  # writes: begin, verified, done
        resumed = cli("offload", "--archive-dir", str(archive), "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert not unfinished(archive) and not list(tree.rglob("*.partial")) and not archived(archive)
    assert snapshot(tree) == before


def test_disk_full_in_the_model_tree_during_restore(present_lab: Lab, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    with tmpfs(tmp_path, "24m") as small:
        tree = small / "models"
        shutil.copytree(present_lab.models(sc.BASIC), tree, symlinks=True)
        before = snapshot(tree)
        run = cli("offload", *args(present_lab, tree, archive, "--only", "alpha:3", "--apply"))
        assert run.returncode == 0, run.stderr
        free = shutil.disk_usage(small).free
        (small / "filler").write_bytes(b"\0" * (free - 1_000_000))  # less room than alpha 3 needs
        archive_before = snapshot(archive / "models")
        back = cli("restore", "--archive-dir", str(archive))
        one_line_error(back, 6, "No space left on device")
        assert (
            not (tree / "alpha" / "3").exists()
            and not list(tree.rglob("*.partial"))
            and not unfinished(archive)
        )
        assert snapshot(archive / "models") == archive_before  # still archived, byte for byte
        (small / "filler").unlink()
        back = cli("restore", "--archive-dir", str(archive))
        assert back.returncode == 0, back.stderr
        assert snapshot(tree) == before


def _strip(snap: dict[str, object]) -> dict[str, object]:
    """`model/version/x` -> `x`: a version's entries as seen from inside it."""
    return {k.split("/", 2)[2]: v for k, v in snap.items() if k.split("/", 2)[2]}


@pytest.mark.parametrize("partial", ["torn", "complete"])
def test_resume_removes_or_reuses_a_partial_copy(
    present_lab: Lab, tree: Path, tmp_path: Path, partial: str
) -> None:
    before = snapshot(tree)
    with tmpfs(tmp_path, "64m") as other:
        archive = other / "archive"
        crashed = cli(
            "offload",
            *args(present_lab, tree, archive, "--only", "alpha:2", "--apply"),
            crash_after=1,
        )
        assert crashed.returncode == -9
        copy = archive / "models" / "alpha" / "2.partial"  # what a kill during the copy leaves
        shutil.copytree(tree / "alpha" / "2", copy, symlinks=True)
        if partial == "torn":
            (copy / "saved_model.pb").write_bytes(b"\0" * 1000)
        resumed = cli("offload", "--archive-dir", str(archive), "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert not copy.exists() and not (tree / "alpha" / "2").exists()
        assert snapshot(archive / "models" / "alpha" / "2") == _strip(below(before, "alpha/2/"))
        assert cli("restore", "--archive-dir", str(archive)).returncode == 0
    assert snapshot(tree) == before


# --- 11 and 12: a tree deeper than the recursion limit, a TorchServe archive, across filesystems ----------


def test_deep_version_tree_across_filesystems(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    version = tree / "alpha" / "2"
    try:
        _deep_tree_round_trip(present_lab, tree, tmp_path, version)
    finally:  # pytest removes old temp dirs recursively: it cannot remove this tree, so `rm` does
        subprocess.run(["rm", "-rf", "--one-file-system", str(version)], check=False)


def _deep_tree_round_trip(lab: Lab, tree: Path, tmp_path: Path, version: Path) -> None:
    st = os.stat(version)
    fd = os.open(version, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(sys.getrecursionlimit() + 100):
        os.mkdir("d", dir_fd=fd)
        deeper = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(leaf, b"at the bottom")
    os.close(leaf)
    os.close(fd)
    os.utime(version, (st.st_atime, st.st_mtime))  # as old as it was: still safe
    before = snapshot(tree)
    with tmpfs(tmp_path, "64m") as other:
        archive = other / "archive"
        run = cli("offload", *args(lab, tree, archive, "--only", "alpha:2", "--apply"))
        assert run.returncode == 0, run.stderr
        assert snapshot(archive / "models" / "alpha" / "2") == _strip(below(before, "alpha/2/"))
        assert not version.exists()
        back = cli("restore", "--archive-dir", str(archive))
        assert back.returncode == 0, back.stderr
    assert snapshot(tree) == before


def test_torchserve_archive_file_across_filesystems(present_lab: Lab, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(present_lab.models(sc.TORCHSERVE), store)
    before = snapshot(store)
    with tmpfs(tmp_path, "16m") as other:
        archive = other / "archive"
        run = cli(
            "offload",
            *args(present_lab, store, archive, "--only", "bert:1.0", "--apply", scenario="torchserve"),
        )
        assert run.returncode == 0, run.stderr
        moved = archive / "models" / "bert" / "bert_v1.mar"
        assert moved.is_file() and not (store / "bert_v1.mar").exists()
        assert snapshot(archive / "models" / "bert") == {"bert_v1.mar": before["bert_v1.mar"]}
        back = cli("restore", "--archive-dir", str(archive))
        assert back.returncode == 0, back.stderr
    assert snapshot(store) == before


# --- 13: restore onto a dangling symlink; restore --version without --model -------------------------


def test_restore_onto_a_dangling_symlink_is_refused(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    before = snapshot(tree)
    archive = tmp_path / "archive"
    _offloaded_beta_2(present_lab, tree, archive)
    (tree / "beta" / "2").symlink_to(tmp_path / "nowhere")
    archive_before = snapshot(archive)
    run = cli("restore", "--archive-dir", str(archive))
    one_line_error(run, 6, "symlink")
    assert snapshot(archive) == archive_before and not unfinished(archive)
    (tree / "beta" / "2").unlink()
    assert cli("restore", "--archive-dir", str(archive)).returncode == 0
    assert snapshot(tree) == before


def test_restore_version_without_model_is_refused(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    run = run_cli(
        "offload", *args(present_lab, tree, archive, "--only", "alpha:2", "--only", "beta:2", "--apply")
    )
    assert run.exit_code == 0, run.stderr
    after_offload = snapshot(tmp_path)
    refused = cli("restore", "--archive-dir", str(archive), "--version", "2")
    one_line_error(refused, 2, "--model")
    assert snapshot(tmp_path) == after_offload


# --- issue 12 point 8: --apply re-checks at the present, whatever --at says --------------------------


def test_apply_rechecks_at_the_present_whatever_at_says(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    at = str(present_lab.end - 6 * 3600)  # alpha 5's callers came 5 h ago: idle then, busy now
    plan = run_cli("plan", *args(present_lab, tree, archive, "--at", at, "--only", "alpha:5"))
    assert plan.exit_code == 0, plan.stderr
    before = snapshot(tree)
    run = cli("offload", *args(present_lab, tree, archive, "--at", at, "--only", "alpha:5", "--apply"))
    assert run.returncode == 0, run.stderr
    assert "re-check before moving is made at the present" in run.stderr
    assert "skipped alpha 5: now in-use" in run.stderr
    assert snapshot(tree) == before and not archived(archive)

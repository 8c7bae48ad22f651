"""`retire unload --preset mlserver` against a local server that stands in for Seldon MLServer
(tests/model_servers.py FakeMLServer: it reads the repository from disk as MLServer does, and
plays the faults), a real Prometheus whose history ends now (the basic scenario, read with its
own metric and labels), and real repositories. The real MLServer is tested in
tests/e2e/test_unload_mlserver.py.

The repository is the basic scenario's tree with a model-settings.json in each version folder
(`<root>/alpha/2/model-settings.json`: model alpha, version "2"), its times kept: alpha 2, alpha 3
and beta 2 are safe; every version is loaded, so unload keeps alpha 1, 5, 8 and beta 1, 3.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retire.actions.unload import journal_records
from retire.actions.unload_folders import FOLDERS_JOURNAL
from tests import scenarios as sc
from tests.actions.test_unload import one_line_error
from tests.conftest import Lab, run_cli
from tests.model_servers import FakeMLServer
from tests.offload_lab import cli, evidence, snapshot

pytestmark = pytest.mark.prometheus

FLAGS = (
    "--preset",
    "mlserver",
    "--metric",
    ":tensorflow:serving:model_call_count",
    "--model-label",
    "model_name",
    "--version-label",
    "model_version",
)
ON_DISK = {"alpha": {"1", "2", "3", "5", "8"}, "beta": {"1", "2", "3"}}
AFTER = {"alpha": {"1", "5", "8"}, "beta": {"1", "3"}}


def settings(folder: Path, name: str, version: str | None, **extra: Any) -> None:
    """A model-settings.json in `folder`, the folder's times kept (its age is evidence)."""
    st = folder.stat()
    doc: dict[str, Any] = {"name": name, "implementation": "echo.Echo", **extra}
    if version is not None:
        doc["parameters"] = {"version": version, **doc.get("parameters", {})}
    (folder / "model-settings.json").write_text(json.dumps(doc) + "\n")
    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture
def repo(present_lab: Lab, tmp_path: Path) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(present_lab.models(sc.BASIC), dst, symlinks=True)
    for model, versions in ON_DISK.items():
        for v in versions:
            settings(dst / model / v, model, v)
    return dst


@pytest.fixture
def mlserver(repo: Path) -> Iterator[tuple[FakeMLServer, str]]:
    fake = FakeMLServer(repo)
    with fake.running() as url:
        yield fake, url


def args(lab: Lab, repo: Path, url: str, archive: Path, *extra: str) -> list[str]:
    return [
        *evidence(lab, "--model-dir", str(repo), *FLAGS),
        "--server",
        url,
        "--archive-dir",
        str(archive),
        *extra,
    ]


def undo_args(url: str, repo: Path, archive: Path, *extra: str) -> list[str]:
    return [
        "unload",
        "--undo",
        "--preset",
        "mlserver",
        "--server",
        url,
        "--model-dir",
        str(repo),
        "--archive-dir",
        str(archive),
        *extra,
    ]


def loaded(fake: FakeMLServer) -> dict[str, set[str]]:
    return {m: fake.versions(m) for m in ON_DISK}


def folders(repo: Path) -> dict[str, set[str]]:
    """The version folders in the repository (those holding a model-settings.json)."""
    return {m: {p.parent.name for p in (repo / m).glob("*/model-settings.json")} for m in ON_DISK}


def test_dry_run_moves_nothing_and_asks_nothing(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    before = snapshot(repo)
    run = run_cli("unload", *args(present_lab, repo, url, tmp_path / "archive"))
    assert run.exit_code == 0, run.stderr
    assert "  alpha: keep 1, 5, 8; unload 2, 3\n" in run.stdout
    assert "  beta: keep 1, 3; unload 2\n" in run.stdout
    assert "folders" in run.stdout.splitlines()[0], run.stdout
    assert fake.loads == [] and snapshot(repo) == before and loaded(fake) == ON_DISK


def test_apply_moves_the_folders_out_loads_and_undo_brings_them_back(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    archive = tmp_path / "archive"
    before = snapshot(repo)
    run = run_cli("unload", *args(present_lab, repo, url, archive, "--apply"))
    assert run.exit_code == 0, run.stderr
    assert loaded(fake) == AFTER and folders(repo) == AFTER
    assert fake.loads == ["alpha", "beta"]
    assert sorted(p.name for p in (archive / "models" / "alpha").iterdir()) == ["2", "3"]
    assert "unloaded alpha 2, 3 (kept 1, 5, 8 loaded)" in run.stderr
    records = list(journal_records(archive))
    assert [(r["op"], r["phase"], r["model"]) for r in records] == [
        ("unload", "begin", "alpha"),
        ("unload", "done", "alpha"),
        ("unload", "begin", "beta"),
        ("unload", "done", "beta"),
    ]
    real = os.path.realpath(repo)
    assert records[0]["had"]["folders"]["2"] == {
        "src": f"{real}/alpha/2",
        "dst": f"{os.path.realpath(archive)}/models/alpha/2",
        "root": real,
        "size_bytes": records[0]["had"]["folders"]["2"]["size_bytes"],
    }
    again = run_cli("unload", *args(present_lab, repo, url, archive, "--apply"))
    assert again.exit_code == 0 and "nothing to unload" in again.stderr, again.stderr

    blind = run_cli(
        "unload", "--undo", "--preset", "mlserver", "--server", url, "--archive-dir", str(archive)
    )
    one_line_error(blind, 2, "needs --model-dir")
    back = run_cli(*undo_args(url, repo, archive))
    assert back.exit_code == 0, back.stderr
    assert loaded(fake) == ON_DISK and snapshot(repo) == before
    assert "loaded back 3 version(s)" in back.stderr
    nothing = run_cli(*undo_args(url, repo, archive))
    one_line_error(nothing, 6, "nothing unloaded")
    # The folder moves are not offload's: `retire restore` does not see them.
    assert not (archive / "journal.jsonl").exists() and (archive / FOLDERS_JOURNAL).exists()


def test_undo_only_one_version(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    archive = tmp_path / "archive"
    assert run_cli("unload", *args(present_lab, repo, url, archive, "--apply")).exit_code == 0
    run = run_cli(*undo_args(url, repo, archive, "--only", "alpha:3"))
    assert run.exit_code == 0, run.stderr
    assert loaded(fake) == {"alpha": {"1", "3", "5", "8"}, "beta": {"1", "3"}}
    assert folders(repo) == loaded(fake)
    rest = run_cli(*undo_args(url, repo, archive))
    assert rest.exit_code == 0, rest.stderr
    assert loaded(fake) == ON_DISK and folders(repo) == ON_DISK


def test_only_and_the_last_loaded_version(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    """--only picks; beta with only its safe version 2 loaded is never left without one."""
    fake, url = mlserver
    archive = tmp_path / "archive"
    busy = run_cli("unload", *args(present_lab, repo, url, archive, "--only", "alpha:1", "--apply"))
    one_line_error(busy, 6, "alpha:1 is in-use, not safe")
    fake.loaded["beta"] = {"2"}
    last = run_cli("unload", *args(present_lab, repo, url, archive, "--only", "beta:2", "--apply"))
    one_line_error(last, 6, "every loaded version of beta")
    run = run_cli("unload", *args(present_lab, repo, url, archive, "--only", "alpha:2", "--apply"))
    assert run.exit_code == 0, run.stderr
    assert loaded(fake)["alpha"] == {"1", "3", "5", "8"} and folders(repo)["alpha"] == {"1", "3", "5", "8"}
    assert fake.loads == ["alpha"]


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("refuse", "the server refused: model server"),
        ("kept-down", "1 is not loaded"),
        ("ignore", "2 is still loaded"),
        ("lie", "2 is still loaded"),
    ],
)
def test_a_misbehaving_server_gets_the_folders_and_the_model_back(
    present_lab: Lab,
    repo: Path,
    mlserver: tuple[FakeMLServer, str],
    tmp_path: Path,
    fault: str,
    said: str,
) -> None:
    fake, url = mlserver
    fake.faults.add(fault)
    archive = tmp_path / "archive"
    before = snapshot(repo)
    run = run_cli("unload", *args(present_lab, repo, url, archive, "--apply", "--timeout", "2s"))
    one_line_error(run, 6, "unloading alpha failed and was undone", said)
    fake.faults.discard("lie")
    assert snapshot(repo) == before
    assert loaded(fake) == ON_DISK and fake.loads == ["alpha", "alpha"]
    records = list(journal_records(archive))
    assert [(r["op"], r["phase"]) for r in records] == [("unload", "begin"), ("unload", "failed")]
    assert said in records[1]["reason"]
    if fault == "refuse":
        assert records[1]["asked"][0]["status"] == 500
        assert "out of memory" in json.dumps(records[1]["asked"][0]["answer"])


def test_a_server_that_keeps_refusing_gets_the_folders_back_and_leaves_the_step_for_undo(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    fake.faults.add("refuse-always")
    archive = tmp_path / "archive"
    before = snapshot(repo)
    run = run_cli("unload", *args(present_lab, repo, url, archive, "--apply", "--timeout", "2s"))
    one_line_error(run, 6, "loading it back failed too", "out of memory", "retire unload --undo")
    assert snapshot(repo) == before  # the folders are back in the repository
    assert [r["phase"] for r in journal_records(archive)] == ["begin"]
    fake.faults.discard("refuse-always")
    back = run_cli(*undo_args(url, repo, archive, "--timeout", "5s"))
    assert back.exit_code == 0, back.stderr
    assert loaded(fake) == ON_DISK and snapshot(repo) == before


def test_a_server_too_slow_to_answer(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    """The load answers after 1.5 s, --timeout 1s: bounded, exit 6, folders back, loaded again."""
    fake, url = mlserver
    fake.faults.add("slow")
    fake.delay = 1.5
    archive = tmp_path / "archive"
    before = snapshot(repo)
    run = run_cli("unload", *args(present_lab, repo, url, archive, "--apply", "--timeout", "1s"))
    one_line_error(run, 6, "unloading alpha failed and was undone", "did not answer within 1s")
    assert loaded(fake) == ON_DISK and snapshot(repo) == before


def test_a_server_that_never_answers_leaves_a_step_for_undo(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path
) -> None:
    fake, url = mlserver
    fake.faults.add("slow")
    fake.delay = 4.0
    archive = tmp_path / "archive"
    before = snapshot(repo)
    run = run_cli("unload", *args(present_lab, repo, url, archive, "--apply", "--timeout", "1s"))
    one_line_error(run, 6, "loading it back failed too", "retire unload --undo")
    fake.faults.discard("slow")
    back = run_cli(*undo_args(url, repo, archive, "--timeout", "10s"))
    assert back.exit_code == 0, back.stderr
    assert loaded(fake) == ON_DISK and snapshot(repo) == before


# --- crashes (a subprocess killed after each journal write, tests/crash.py) ---

# Per model: unload begin, each folder's move begin and done, unload done.
WRITES = (1 + 2 * 2 + 1) + (1 + 2 + 1)


@pytest.mark.parametrize("after", range(1, WRITES + 1))
def test_a_crash_after_any_journal_write(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path, after: int
) -> None:
    """Killed after any write of either journal: a re-run finishes the unload (every begun step
    settled), and --undo then brings every version and folder back."""
    fake, url = mlserver
    archive = tmp_path / "archive"
    before = snapshot(repo)
    crashed = cli(
        "unload", *args(present_lab, repo, url, archive, "--apply", "--timeout", "2s"), crash_after=after
    )
    assert crashed.returncode == -9, crashed.stderr
    rerun = cli("unload", *args(present_lab, repo, url, archive, "--apply", "--timeout", "2s"))
    assert rerun.returncode == 0, rerun.stderr
    assert loaded(fake) == AFTER and folders(repo) == AFTER, rerun.stderr
    back = cli(*undo_args(url, repo, archive, "--timeout", "2s"))
    assert back.returncode == 0, back.stderr
    assert loaded(fake) == ON_DISK and snapshot(repo) == before


@pytest.mark.parametrize("after", range(1, WRITES + 1))
def test_a_crash_then_undo(
    present_lab: Lab, repo: Path, mlserver: tuple[FakeMLServer, str], tmp_path: Path, after: int
) -> None:
    fake, url = mlserver
    archive = tmp_path / "archive"
    before = snapshot(repo)
    crashed = cli(
        "unload", *args(present_lab, repo, url, archive, "--apply", "--timeout", "2s"), crash_after=after
    )
    assert crashed.returncode == -9, crashed.stderr
    back = cli(*undo_args(url, repo, archive, "--timeout", "2s"))
    assert back.returncode == 0, back.stderr
    assert loaded(fake) == ON_DISK and snapshot(repo) == before

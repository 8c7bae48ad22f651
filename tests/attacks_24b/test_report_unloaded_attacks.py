"""Attacks on the reports' reading of the unload journal (#24, commit 9e31bcb): a real Prometheus
whose history ends now (the basic scenario of tests/offload_lab.py), real model trees, real
journals written by `retire unload --apply` against small real HTTP servers that speak Triton's
repository API (tests/model_servers.py), edited afterwards where an attack needs it.

Under `--preset triton` the basic scenario makes alpha 2, alpha 3 and beta 2 safe; every version
on disk is loaded on a fresh FakeTriton. Each test here is an attack that worked (a strict xfail
when found, fixed since: only the server an unload was made on clears it, a step is one change
and a reload loads back only on its own server, an --undo --only leaves the rest of an
interrupted step unloaded, the archive and each record's time and URL are checked, the command to
load back names the journal's server kind); the attacks that held are listed in
tests/attacks_24b/__init__.py.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests import conftest
from tests import scenarios as sc
from tests import trickle_servers as trickle
from tests.actions.test_unload import ON_DISK, TRITON_FLAGS, one_line_error, triton_args, undo_args
from tests.conftest import Lab, Run, run_cli
from tests.model_servers import FakeTriton
from tests.offload_lab import evidence

pytestmark = pytest.mark.prometheus


@pytest.fixture
def tree(present_lab: Lab) -> Path:
    return present_lab.models(sc.BASIC)  # read only: reports and unload never touch it


def report_args(lab: Lab, tree: Path, archive: Path, *extra: str) -> list[str]:
    """A report's flags without --server (the journal alone decides what is unloaded)."""
    return [*evidence(lab, "--model-dir", str(tree), *TRITON_FLAGS), "--archive-dir", str(archive), *extra]


def unload(lab: Lab, tree: Path, url: str, archive: Path, *only: str) -> None:
    pins = [w for pin in only for w in ("--only", pin)]
    run = run_cli("unload", *triton_args(lab, tree, url, archive, *pins, "--apply"))
    assert run.exit_code == 0, run.stderr


def statuses(run: Run) -> dict[tuple[str, str], str]:
    assert run.exit_code in (0, 3, 4, 5), run.stderr
    return conftest.statuses(run.json())


def edit_journal(archive: Path, change: Any = None, *extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Rewrite the unload journal (as someone with write access could): each record through
    `change`, then `extra` records appended. Returns the records as they were."""
    path = archive / "unload.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    new = [change(dict(r)) if change else r for r in records] + list(extra)
    path.write_text("".join(json.dumps(r) + "\n" for r in new))
    return records


# =============================================================================================
# False "safe": a version retire unloaded, shown safe, listed, planned


def test_another_replica_listing_it_loaded_does_not_clear_an_unload_made_elsewhere(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """Two replicas of one fleet, one Prometheus: retire unloaded beta 2 from replica A (its
    journal says so). Replica B still has beta 2 loaded. A report with --server B: calls to A's
    beta 2 fail uncounted, so the flat counter proves nothing about A's clients, yet the row is
    judged on its counter alone, and comes out safe; safe-list lists it; offload would move it
    off the disk both replicas serve from."""
    a, b = FakeTriton(ON_DISK), FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with a.running() as url_a, b.running() as url_b:
        unload(present_lab, tree, url_a, archive, "beta:2")
        assert a.loaded("beta") == {"1", "3"} and b.loaded("beta") == {"1", "2", "3"}
        on_a = run_cli("report", *triton_args(present_lab, tree, url_a, archive), "--format", "json")
        assert statuses(on_a)[("beta", "2")] == "unloaded"  # held: the server the journal names

        on_b = triton_args(present_lab, tree, url_b, archive)
        report = run_cli("report", *on_b, "--format", "json")
        listed = run_cli("safe-list", *on_b)
        plan = run_cli("offload", *on_b)
        assert statuses(report)[("beta", "2")] != "safe"
        assert "beta\t2\t" not in listed.stdout, listed.stdout
        assert "/beta/2 " not in plan.stdout, plan.stdout


def test_two_replicas_in_one_journal_each_report_keeps_the_other_replicas_unload(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """One archive for two replicas: beta 2 unloaded from A, alpha 2 from B (each with --only,
    as README's unload section shows). A report with --server A sees alpha 2 loaded on A and
    calls it safe, though B's alpha 2 is unloaded and its clients' calls fail uncounted."""
    a, b = FakeTriton(ON_DISK), FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with a.running() as url_a, b.running() as url_b:
        unload(present_lab, tree, url_a, archive, "beta:2")
        unload(present_lab, tree, url_b, archive, "alpha:2")
        assert b.loaded("alpha") == {"1", "3", "5", "8"}
        report = run_cli("report", *triton_args(present_lab, tree, url_a, archive), "--format", "json")
        assert statuses(report)[("alpha", "2")] != "safe"


def test_undo_only_one_version_of_an_interrupted_unload_keeps_the_other_unloaded(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """retire unloads alpha 2 and 3; the server did it, the process died before it journaled
    `done` (the journal holds the begun step only: what a crash there leaves). The report rightly
    shows both `unloaded`. `retire unload --undo --only alpha:2` loads 2 back, then records the
    interrupted step as failed ("loaded back by --undo"): alpha 3, still unloaded on the server,
    is forgotten; the report calls it safe (even with --server, which says it is not loaded),
    safe-list lists it, and no `--undo` can load it back any more."""
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        unload(present_lab, tree, url, archive, "alpha:2", "alpha:3")
        path = archive / "unload.jsonl"
        begun, done = path.read_text().splitlines(keepends=True)
        assert '"begin"' in begun and '"done"' in done
        path.write_text(begun)  # the crash: after the server's answer, before `done`
        args = triton_args(present_lab, tree, url, archive)
        before = statuses(run_cli("report", *args, "--format", "json"))
        assert before[("alpha", "2")] == before[("alpha", "3")] == "unloaded"  # held

        back = run_cli(*undo_args(url, archive, "--only", "alpha:2"))
        assert back.exit_code == 0, back.stderr
        assert fake.loaded("alpha") == {"1", "2", "5", "8"}  # 3 is still unloaded on the server
        after = statuses(run_cli("report", *args, "--format", "json"))
        listed = run_cli("safe-list", *args)
        assert after[("alpha", "3")] == "unloaded", after[("alpha", "3")]
        assert "alpha\t3\t" not in listed.stdout, listed.stdout


def test_a_duplicated_step_number_never_erases_an_unload(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """An edited (or merged) journal: after beta 2's unload (step 1, done), a record with the same
    step number about alpha, phase `failed`. Each record passes the shape check; the last one
    with step 1 wins, beta 2's unload is gone and beta 2 is safe. A journal where one step is
    about two models is damaged: exit 2 (or beta 2 still `unloaded`), never safe."""
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        unload(present_lab, tree, url, archive, "beta:2")
    records = edit_journal(archive)
    other = {**records[-1], "model": "alpha", "versions": ["3"], "phase": "failed", "reason": "x"}
    edit_journal(archive, None, other)
    run = run_cli("report", *report_args(present_lab, tree, archive), "--format", "json")
    assert run.exit_code == 2 or statuses(run)[("beta", "2")] == "unloaded", run.stderr


def test_a_reload_on_another_server_does_not_load_back_an_unload_made_here(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """beta 2 unloaded from server A (step 1); a later record says a reload of beta 2 was done on
    another server (step 2). `retire unload --undo` itself never writes that (it refuses steps of
    another server), so the journal is edited or merged; either way A's beta 2 was never loaded
    back, and the report must not call it safe."""
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        unload(present_lab, tree, url, archive, "beta:2")
        records = edit_journal(archive)
        reload = {**records[-1], "step": 2, "op": "reload", "whole": True, "server": "http://replica-b:8000"}
        edit_journal(archive, None, reload)
        run = run_cli("report", *report_args(present_lab, tree, archive), "--format", "json")
    assert run.exit_code == 2 or statuses(run)[("beta", "2")] == "unloaded", run.stderr


@pytest.mark.parametrize("kind", ["regular-file", "dangling-symlink"])
def test_an_archive_dir_that_cannot_be_the_archive_is_not_read_as_nothing_unloaded(
    present_lab: Lab, tree: Path, tmp_path: Path, kind: str
) -> None:
    """beta 2 is unloaded (its journal is in `archive`). The report is pointed at a path that
    is no directory: a regular file (a typo for the journal itself), or a symlink whose target is
    missing (the archive's filesystem not mounted). Neither is "no archive yet": the report must
    refuse (exit 2, one line), not call beta 2 safe."""
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        unload(present_lab, tree, url, tmp_path / "archive", "beta:2")
    named = tmp_path / "named"
    if kind == "regular-file":
        shutil.copy(tmp_path / "archive" / "unload.jsonl", named)
    else:
        os.symlink(tmp_path / "unmounted" / "archive", named)
    run = run_cli("report", *report_args(present_lab, tree, named), "--format", "json")
    one_line_error(run, 2, str(named))


# =============================================================================================
# Tracebacks, wrong exit codes, secrets, misleading commands


@pytest.mark.parametrize("when", [1e20, -1e15], ids=["far-future", "far-past"])
def test_a_time_out_of_range_is_one_line_exit_2(
    present_lab: Lab, tree: Path, tmp_path: Path, when: float
) -> None:
    """Records need "a finite time"; 1e20 is finite. The report reaches `iso(1e20)` while wording
    the unloaded row: OverflowError (or ValueError for a date before year 1), a traceback."""
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        unload(present_lab, tree, url, archive, "beta:2")
    edit_journal(archive, lambda r: {**r, "time": when})
    run = run_cli("report", *report_args(present_lab, tree, archive))  # raises on a traceback
    one_line_error(run, 2, "unload.jsonl")


def test_credentials_in_the_journals_server_are_never_printed(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """retire never writes credentials there (it keeps the URL without them), so a server field
    with `user:password@` or `?token=` is an edited journal, or one written by a tool that did not
    scrub it. The report shows it in the reason and in the command to copy (the table, and the
    mail, which goes to many people). It must not: refuse the record (exit 2, the secret not
    shown), or show the URL without them."""
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        unload(present_lab, tree, url, archive, "beta:2")
    secret = url.replace("http://", "http://admin:hunter2-pw@") + "/?token=tok-77#frag-55"
    edit_journal(archive, lambda r: {**r, "server": secret})
    for fmt in ("table", "json", "csv"):
        run = run_cli("report", *report_args(present_lab, tree, archive), "--format", fmt)
        shown = run.stdout + run.stderr
        for word in ("hunter2-pw", "tok-77", "frag-55"):
            assert word not in shown, (fmt, word)


def test_an_archive_the_user_cannot_reach_is_one_line_exit_2(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """The journal's own mode 000 and the archive's mode 000 give one line, exit 2 (held); a
    parent directory without search permission does not. Run as root without the DAC
    capabilities (setpriv), so the permissions bind as they would for another user."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop the DAC override capabilities")
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        unload(present_lab, tree, url, tmp_path / "locked" / "archive", "beta:2")
    os.chmod(tmp_path / "locked", 0o000)
    try:
        path = os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p
        )
        run = subprocess.run(
            [
                "setpriv",
                "--bounding-set=-dac_override,-dac_read_search",
                sys.executable,
                "-m",
                "retire",
                "report",
                *report_args(present_lab, tree, tmp_path / "locked" / "archive"),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
            timeout=120,
        )
    finally:
        os.chmod(tmp_path / "locked", 0o755)
    assert "Traceback" not in run.stderr, run.stderr[-800:]
    assert run.returncode == 2, run.stderr[-800:]


def test_the_command_to_load_it_back_names_the_server_kind_retire_unloaded_from(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """beta 2 was unloaded from a Triton (journal kind `triton`). A report made with the default
    preset and the same metric flags still shows it `unloaded` (held), but its reason ends with
    `retire unload --undo ... --preset tfserving-patched`; run as printed, that is refused
    ("retire unload cannot unload versions from --preset tfserving-patched yet"), exit 2."""
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        unload(present_lab, tree, url, archive, "beta:2")
        flags = report_args(present_lab, tree, archive, "--format", "json")
        at = flags.index("--preset")
        del flags[at : at + 2]
        run = run_cli("report", *flags)
        row = conftest.rows(run.json())[("beta", "2")]
        reason = str(row["reason"])
        assert row["status"] == "unloaded"
        assert "--preset triton`" in reason, reason
        # The command as printed loads it back.
        command = reason.rsplit("`retire ", 1)[1].rstrip("`")
        back = run_cli(*shlex.split(command))
        assert back.exit_code == 0, back.stderr
        assert fake.loaded("beta") == {"1", "2", "3"}


# =============================================================================================
# Attacks that held (plain tests; the rest are listed in tests/attacks_24b/__init__.py)


@pytest.mark.parametrize("way", ["silent", "body"])
def test_a_server_that_hangs_or_trickles_never_clears_an_unload(
    present_lab: Lab, tree: Path, tmp_path: Path, way: str
) -> None:
    """A --server that never answers, or trickles its answer, cannot say the version is loaded
    again: the run ends within --timeout, and nothing retire unloaded comes out safe."""
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        unload(present_lab, tree, url, archive, "beta:2")
    index = [{"name": m, "version": v, "state": "READY"} for m, vs in ON_DISK.items() for v in vs]
    with trickle.http(way, trickle.json_answer(index)) as slow:
        started = time.monotonic()
        flags = report_args(
            present_lab, tree, archive, "--server", slow, "--timeout", "2", "--format", "json"
        )
        run = run_cli("report", *flags)
        assert time.monotonic() - started < 60
    if run.exit_code in (0, 3, 4, 5) and run.stdout:
        assert statuses(run)[("beta", "2")] == "unloaded"
    else:
        one_line_error(run, 3)

"""Attacks on `retire unload` through TF Serving's --model-config (issue #24): a real Prometheus
whose history ends now (the basic scenario), real model trees and config files, real small
filesystems, and `FakeTFServing` (tests/model_servers.py: it stands in for TF Serving, polling
the file with the ModelServerConfig schema), extended below where an attack needs a server that
behaves otherwise.

Every attack here worked against the first version of the TF Serving path and is kept as a test
of its fix, or held from the start (said in its docstring).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from retire.actions.unload import journal_records
from tests import scenarios as sc
from tests.actions.test_unload import one_line_error
from tests.actions.test_unload_file import args, config_text, phases, undo_args
from tests.conftest import Lab, run_cli
from tests.model_servers import FakeTFServing
from tests.offload_lab import cli, tmpfs

pytestmark = pytest.mark.prometheus

ALL = {"1", "2", "3", "5", "8"}


@pytest.fixture
def tree(present_lab: Lab, tmp_path: Path) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(present_lab.models(sc.BASIC), dst, symlinks=True)
    return dst


@pytest.fixture
def config(tree: Path, tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "models.config"
    path.parent.mkdir()
    path.write_text(config_text(tree))
    return path


# =============================================================================================
# Attacks that worked (fixed)


def test_a_server_that_stops_answering_after_the_change_gets_the_file_back(
    present_lab: Lab, config: Path, tmp_path: Path
) -> None:
    """The status API answers until the new file is applied, then hangs: the confirmation's
    ServerError escaped the put-back (exit 3, the file left rewritten, the step begun). Now the
    file is put back and the run stops with exit 6, within its bounds."""
    fake = FakeTFServing(config)
    fake.faults.add("hang-after")
    fake.delay = 3.0
    original = config.read_text()
    archive = tmp_path / "archive"
    with fake.running() as url:
        started = time.monotonic()
        run = run_cli(
            "unload", *args(present_lab, config, archive, "--server", url, "--apply", "--timeout", "1s")
        )
        one_line_error(run, 6, "unloading alpha failed", "put back as it was", "did not answer within 1s")
        assert time.monotonic() - started < 30
        assert config.read_text() == original
        assert phases(archive) == [("unload", "begin", "alpha"), ("unload", "failed", "alpha")]


# =============================================================================================
# Attacks that held


class LyingTFServing(FakeTFServing):
    """Says alpha 2 is AVAILABLE whatever the file asks: the server does not run this file."""

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        status, payload = super().answer(method, path, query, body)
        if path.endswith("/alpha") and status == 200:
            entries = [e for e in payload["model_version_status"] if e["version"] != "2"]
            payload["model_version_status"] = [{"version": "2", "state": "AVAILABLE"}, *entries]
        return status, payload


def test_a_server_that_loads_what_the_file_does_not_list_is_not_the_files_server(
    present_lab: Lab, tree: Path, config: Path, tmp_path: Path
) -> None:
    config.write_text(config_text(tree, alpha="specific { versions: [1, 3, 5, 8] }"))
    before = config.read_text()
    fake = LyingTFServing(config)
    with fake.running() as url:
        base = args(present_lab, config, tmp_path / "archive", "--server", url)
        named = run_cli("unload", *base, "--only", "alpha:2", "--apply")
        one_line_error(named, 6, "cannot unload alpha", "not in its specific list")
        run = run_cli("unload", *base, "--apply")
        assert run.exit_code == 0, run.stderr
        assert "not in its specific list" in run.stdout
        assert config.read_text() == before


def test_two_models_changed_are_undone_byte_for_byte(
    present_lab: Lab, tree: Path, config: Path, tmp_path: Path
) -> None:
    """alpha and beta each get a step (two rewrites of one file); --undo goes newest first, so
    each kept original goes back over the very text retire wrote: the file as it was, comments
    and spelling included."""
    config.write_text(config_text(tree, beta="latest { num_versions: 2 }"))
    original = config.read_text()
    fake = FakeTFServing(config)
    archive = tmp_path / "archive"
    with fake.running() as url:
        run = run_cli("unload", *args(present_lab, config, archive, "--server", url, "--apply"))
        assert run.exit_code == 0, run.stderr
        assert fake.available("alpha") == {"1", "5", "8"} and fake.available("beta") == {"3"}
        back = run_cli(*undo_args(config, archive, "--server", url))
        assert back.exit_code == 0, back.stderr
        assert config.read_text() == original
        assert fake.available("alpha") == ALL and fake.available("beta") == {"2", "3"}


@pytest.mark.parametrize("after", [1, 2, 3, 4])
def test_a_crash_after_any_journal_write_is_settled_and_undone(
    present_lab: Lab, tree: Path, config: Path, tmp_path: Path, after: int
) -> None:
    """SIGKILL after each journal write (begin and done of alpha, then of beta): a re-run
    finishes the unload; --undo then gives the file back as it was."""
    config.write_text(config_text(tree, beta="latest { num_versions: 2 }"))
    original = config.read_text()
    fake = FakeTFServing(config)
    archive = tmp_path / "archive"
    with fake.running() as url:
        a = args(present_lab, config, archive, "--server", url, "--apply")
        crashed = cli("unload", *a, crash_after=after)
        assert crashed.returncode == -9, crashed.stderr
        rerun = cli("unload", *a)
        assert rerun.returncode == 0, rerun.stderr
        assert fake.available("alpha") == {"1", "5", "8"} and fake.available("beta") == {"3"}
        back = cli(*undo_args(config, archive, "--server", url))
        assert back.returncode == 0, back.stderr
        assert fake.available("alpha") == ALL and fake.available("beta") == {"2", "3"}
        assert "specific { versions: [1, 2, 3, 5, 8] }" in config.read_text()
        if after % 2 == 0:  # no step was left begun: each original went back over retire's text
            assert config.read_text() == original


@pytest.mark.parametrize("where", ["config", "archive"])
def test_a_full_filesystem_changes_nothing(present_lab: Lab, tree: Path, tmp_path: Path, where: str) -> None:
    """The config's (or the archive's) filesystem is full: no half-written file, the config as it
    was, the server untouched, one line, exit 6."""
    with tmpfs(tmp_path, "64k") as mount:
        config = (mount if where == "config" else tmp_path) / "models.config"
        config.write_text(config_text(tree))
        archive = (mount if where == "archive" else tmp_path) / "archive"
        archive.mkdir()
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"x" * 1024):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        original = config.read_text()
        fake = FakeTFServing(config)
        with fake.running() as url:
            run = run_cli("unload", *args(present_lab, config, archive, "--server", url, "--apply"))
            one_line_error(run, 6, "No space left on device")
            assert config.read_text() == original and fake.available("alpha") == ALL
            assert not [n for n in os.listdir(config.parent) if n.endswith(".retire")]


def test_a_read_only_config_is_one_line(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path, "1m") as mount:
        config = mount / "models.config"
        config.write_text(config_text(tree))
        import subprocess

        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        run = run_cli("unload", *args(present_lab, config, tmp_path / "archive", "--apply"))
        one_line_error(run, 6, f"cannot rewrite {config}", "Read-only file system", "not changed")
        assert "versions: [1, 2, 3, 5, 8]" in config.read_text()


def test_owner_and_mode_are_kept(present_lab: Lab, config: Path, tmp_path: Path) -> None:
    os.chown(config, 65534, 65534)
    config.chmod(0o604)
    run = run_cli("unload", *args(present_lab, config, tmp_path / "archive", "--apply"))
    assert run.exit_code == 0, run.stderr
    st = config.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o604)
    assert "versions: 1 versions: 5 versions: 8" in config.read_text()


def test_secrets_never_reach_the_model_server_nor_the_output(
    present_lab: Lab, config: Path, tmp_path: Path
) -> None:
    """Prometheus's header and token stay with Prometheus; the --server URL's password goes only
    to the model server, never into a message or the journal, on success and on failure."""
    token = tmp_path / "token"
    token.write_text("prom-token-4242\n")
    archive = tmp_path / "archive"
    fake = FakeTFServing(config)
    with fake.running() as url:
        secret = url.replace("http://", "http://ops:srv-pass-777@")
        extra = ("--header", "X-Prom-Key: prom-header-999", "--bearer-token-file", str(token))
        ok = run_cli(
            "unload",
            *args(present_lab, config, archive, "--server", secret, *extra, "--only", "alpha:2", "--apply"),
        )
        assert ok.exit_code == 0, ok.stderr
        fake.faults.add("ignore")
        bad = run_cli(
            "unload",
            *args(present_lab, config, archive, "--server", secret, *extra, "--apply", "--timeout", "2s"),
        )
        assert bad.exit_code == 6, bad.stderr
        back = run_cli(*undo_args(config, archive, "--server", secret))
        sent = json.dumps([s.headers for s in fake.log])
        assert "prom-header-999" not in sent and "prom-token-4242" not in sent
        seen = "".join(r.stdout + r.stderr for r in (ok, bad, back)) + (archive / "unload.jsonl").read_text()
        for word in ("srv-pass-777", "prom-header-999", "prom-token-4242"):
            assert word not in seen


def test_a_kept_copy_turned_into_a_symlink_is_not_followed(
    present_lab: Lab, config: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    original = config.read_text()
    assert run_cli("unload", *args(present_lab, config, archive, "--apply")).exit_code == 0
    kept = archive / next(iter(journal_records(archive)))["had"]["file"]["kept"]
    elsewhere = tmp_path / "elsewhere.config"
    elsewhere.write_text(original)  # the same bytes: only the link is wrong
    kept.unlink()
    kept.symlink_to(elsewhere)
    run = run_cli(*undo_args(config, archive))
    one_line_error(run, 6, "cannot read the kept copy")
    assert "versions: 1 versions: 5 versions: 8" in config.read_text()


def test_a_hard_linked_config_is_refused_before_it_is_changed(
    present_lab: Lab, config: Path, tmp_path: Path
) -> None:
    os.link(config, tmp_path / "other-name.config")
    archive = tmp_path / "archive"
    run = run_cli("unload", *args(present_lab, config, archive, "--apply"))
    one_line_error(run, 6, "hard links")
    assert "versions: [1, 2, 3, 5, 8]" in config.read_text()
    assert phases(archive) == [("unload", "begin", "alpha"), ("unload", "failed", "alpha")]


@pytest.mark.parametrize("name", ["al\tpha", "al\x1bpha", "<b>beta</b>"])
def test_odd_model_names_in_the_config(
    present_lab: Lab, tree: Path, config: Path, tmp_path: Path, name: str
) -> None:
    """A model in the file whose name holds a control character or markup is never acted on,
    and never printed raw (held)."""
    shutil.copytree(tree / "beta", tree / "odd")
    text = config.read_text().replace(
        '}\n  config { name: "beta"',
        f'}}\n  config {{ name: "{name.encode("unicode_escape").decode()}" base_path: "{tree / "odd"}" model_version_policy {{ specific {{ versions: [1, 2, 3] }} }} }}\n  config {{ name: "beta"',
    )
    config.write_text(text)
    run = run_cli("unload", *args(present_lab, config, tmp_path / "archive", "--apply"))
    assert "\x1b" not in run.stdout + run.stderr and "Traceback" not in run.stderr
    one_line_error(run, 6)  # unknown (its name reaches no query), or not a plain name
    assert config.read_text() == text


class VanishingTFServing(FakeTFServing):
    """Once the changed file is applied, the model is gone: `Could not find any versions`."""

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if len(self.applied) > 1 and path.endswith("/alpha"):
            return 404, {"error": "Could not find any versions of model alpha"}
        return super().answer(method, path, query, body)


def test_a_model_that_vanishes_is_not_an_unload(present_lab: Lab, config: Path, tmp_path: Path) -> None:
    """Absence of the whole model is not "the dropped versions are gone": the kept ones must be
    AVAILABLE, so the file is put back (held)."""
    original = config.read_text()
    fake = VanishingTFServing(config)
    with fake.running() as url:
        run = run_cli(
            "unload",
            *args(present_lab, config, tmp_path / "a", "--server", url, "--apply", "--timeout", "2s"),
        )
        one_line_error(run, 6, "put back as it was", "1 is not loaded")
        assert config.read_text() == original


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda r: r.update(kind="triton"), "not through --model-config"),
        (lambda r: r["had"].pop("file"), "not through --model-config"),
        (lambda r: r["had"]["file"].update(config="/etc/../etc/x"), "not an absolute, normalised path"),
        (lambda r: r.update(versions=["9"]), "not on disk"),
    ],
)
def test_edited_journals_are_refused(
    present_lab: Lab, config: Path, tmp_path: Path, edit: Any, said: str
) -> None:
    archive = tmp_path / "archive"
    assert run_cli("unload", *args(present_lab, config, archive, "--apply")).exit_code == 0
    after = config.read_text()
    journal = archive / "unload.jsonl"
    records = [json.loads(x) for x in journal.read_text().splitlines()]
    for r in records:
        edit(r)
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    one_line_error(run_cli(*undo_args(config, archive)), 6, said)
    assert config.read_text() == after


def test_the_deadline_bounds_the_confirmation(present_lab: Lab, config: Path, tmp_path: Path) -> None:
    """A server that never applies the file; --timeout 60s but --deadline 20s: the run stops by
    its deadline with the file put back (held)."""
    original = config.read_text()
    fake = FakeTFServing(config)
    fake.faults.add("ignore")
    with fake.running() as url:
        started = time.monotonic()
        run = run_cli(
            "unload",
            *args(
                present_lab,
                config,
                tmp_path / "a",
                "--server",
                url,
                "--apply",
                "--timeout",
                "60s",
                "--deadline",
                "20s",
            ),
        )
        assert time.monotonic() - started < 25
        one_line_error(run, 6, "put back as it was")
        # Which wait the deadline ends depends on the machine's load: the confirmation's poll
        # seeing 2 still loaded, or a status request in flight (both bounded by the deadline).
        assert (
            "2 is still loaded" in run.stderr
            or "did not answer before the run's --deadline (20s)" in run.stderr
        )
        assert config.read_text() == original


def test_a_listed_version_missing_on_disk_is_not_a_loaded_one(
    present_lab: Lab, tree: Path, config: Path, tmp_path: Path
) -> None:
    """Worked: without --server, alpha `specific [2, 3, 9]` (9 not on disk) read as 2, 3 and 9
    loaded, so unloading the idle 2 and 3 "kept 9" and left alpha with no version TF Serving can
    load. TF Serving loads only listed versions that are on disk: now 3 is kept, and said."""
    config.write_text(config_text(tree, alpha="specific { versions: [2, 3, 9] }"))
    run = run_cli("unload", *args(present_lab, config, tmp_path / "archive", "--apply"))
    assert run.exit_code == 0, run.stderr
    assert "kept alpha 3 loaded" in run.stderr
    assert "model_version_policy { specific { versions: 3 versions: 9 } }" in config.read_text()


class WordyTFServing(FakeTFServing):
    """Lists alpha version "x" AVAILABLE: no version TF Serving could have."""

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        status, payload = super().answer(method, path, query, body)
        if path.endswith("/alpha") and status == 200:
            payload["model_version_status"].append({"version": "x", "state": "AVAILABLE"})
        return status, payload


def test_a_version_that_is_no_number_is_refused_in_one_line(
    present_lab: Lab, config: Path, tmp_path: Path
) -> None:
    """Worked: a traceback (the versions are sorted as numbers). Now one line, exit 3, before
    any change."""
    before = config.read_text()
    fake = WordyTFServing(config)
    with fake.running() as url:
        run = run_cli("unload", *args(present_lab, config, tmp_path / "a", "--server", url, "--apply"))
        one_line_error(run, 3, "no TF Serving version")
        assert config.read_text() == before


@pytest.mark.parametrize("way", ["status", "body", "chunked", "silent"])
def test_a_server_that_trickles_once_the_file_changed_is_bounded(
    present_lab: Lab, config: Path, tmp_path: Path, way: str
) -> None:
    """Prompt answers (every version AVAILABLE) while the file is as it was, then each answer
    trickles a byte at a time, or never comes: the run ends within --timeout, the file put back,
    one line, exit 6 (held)."""
    from tests.hostile_servers import Answer, Request
    from tests.trickle_servers import http

    original = config.read_text()
    versions = {"alpha": ALL, "beta": {"1", "2", "3"}}

    def answer(request: Request) -> Answer:
        model = request.path.rsplit("/", 1)[-1]
        doc = {
            "model_version_status": [{"version": v, "state": "AVAILABLE"} for v in versions.get(model, ())]
        }
        return Answer(200, json.dumps(doc).encode())

    def how(request: Request) -> str:
        return "prompt" if config.read_text() == original else way

    with http(how, answer) as url:
        started = time.monotonic()
        run = run_cli(
            "unload",
            *args(present_lab, config, tmp_path / "a", "--server", url, "--apply", "--timeout", "2s"),
        )
        assert time.monotonic() - started < 20
    one_line_error(run, 6, "put back as it was", "did not answer within 2s")
    assert config.read_text() == original

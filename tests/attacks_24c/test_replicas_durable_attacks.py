"""Attacks on `retire unload` with several `--server` replicas and on its durable Triton change
(retire/actions/triton_config.py): a real Prometheus whose history ends now (the basic scenario),
real model trees and files, and small real HTTP servers speaking Triton's repository API
(tests/model_servers.py, with subclasses below where a replica must misbehave otherwise). No
real Triton.

Attacks that worked are fixed (their docstrings say how they worked); the rest held.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from retire.actions import tfserving_config as files
from retire.actions import triton_config as durable
from retire.actions.unload import journal_records
from retire.sources.disk.server_configs import parse_triton_text, triton_policy
from tests import scenarios as sc
from tests.actions.test_unload import AFTER, ON_DISK, TRITON_FLAGS, loaded
from tests.conftest import Lab, run_cli
from tests.model_servers import FakeTriton
from tests.offload_lab import evidence, present_lab_server

pytestmark = pytest.mark.prometheus

ALL = {m: set(v) for m, v in ON_DISK.items()}
ALPHA = 'name: "alpha"\nbackend: "python"\nmax_batch_size: 0\nversion_policy: { all { } }\n'
BETA = 'name: "beta"\nbackend: "python"\nmax_batch_size: 0\nversion_policy: { all { } }\n'


@pytest.fixture(scope="module")
def present_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from present_lab_server(tmp_path_factory)


@pytest.fixture
def tree(present_lab: Lab, tmp_path: Path) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(present_lab.models(sc.BASIC), dst, symlinks=True)
    (dst / "alpha" / "config.pbtxt").write_text(ALPHA)
    return dst


def args(lab: Lab, tree: Path, urls: tuple[str, ...], archive: Path, *extra: str) -> list[str]:
    servers = [w for url in urls for w in ("--server", url)]
    return [
        "unload",
        *evidence(lab, "--model-dir", str(tree), *TRITON_FLAGS),
        *servers,
        "--archive-dir",
        str(archive),
        *extra,
    ]


def undo(urls: tuple[str, ...], archive: Path, *extra: str) -> list[str]:
    servers = [w for url in urls for w in ("--server", url)]
    return ["unload", "--undo", "--preset", "triton", *servers, "--archive-dir", str(archive), *extra]


def statuses(lab: Lab, tree: Path, urls: tuple[str, ...], archive: Path) -> dict[str, str]:
    cmd = args(lab, tree, urls, archive, "--format", "json")[1:]
    out = run_cli("report", *cmd)
    assert out.exit_code in (0, 4), out.stderr
    return {f"{r['model']}:{r['version']}": r["status"] for r in json.loads(out.stdout)["rows"]}


def file_loads(path: Path, disk: list[str]) -> set[int]:
    """What a Triton started now would load of `disk` under the file's version_policy."""
    policy = triton_policy(parse_triton_text(path.read_text(), str(path)))
    return files.loads(policy, [int(v) for v in disk]) & {int(v) for v in disk}


# =============================================================================================
# Attacks that worked, fixed


def test_a_version_that_failed_to_load_is_written_out_of_the_file(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """Was harm, fixed: the durable policy is `specific` = the versions loaded on the changed replicas minus  those dropped, not what the file loads minus those dropped: alpha 8, which the file's `all`  loads and which clients may call (not safe), had failed to load on the replica just then, so  the rewrite silently leaves it out at every later start; no journal step, no `unloaded`  row names it."""
    fake = FakeTriton(ON_DISK)
    fake.models["alpha"].loaded = {"1", "2", "3", "5"}  # alpha 8 UNAVAILABLE here (a failed load)
    archive = tmp_path / "archive"
    config = tree / "alpha" / "config.pbtxt"
    with fake.running() as url:
        run = run_cli(*args(present_lab, tree, (url,), archive, "--apply"))
        assert run.exit_code == 0, run.stderr
        assert fake.loaded("alpha") == {"1", "5"}
        # Retire unloaded 2 and 3; whatever else the file loaded must still load at the next start.
        assert 8 in file_loads(config, ON_DISK["alpha"]), config.read_text()


def test_a_skipped_replica_serving_a_version_is_not_counted_in_the_file(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """Was harm, fixed: a replica skipped for a model (the safe versions no longer loaded on it) is left out  of the kept versions: replica b serves alpha 8 (not safe), replica a had it unavailable; the  file is rewritten to `specific` [1, 5], contrary to 'the versions kept loaded on any replica',  so b (or any replica) restarted never loads alpha 8 again."""
    a, b = FakeTriton(ON_DISK), FakeTriton(ON_DISK)
    a.models["alpha"].loaded = {"1", "2", "3", "5"}
    b.models["alpha"].loaded = {"1", "5", "8"}
    archive = tmp_path / "archive"
    config = tree / "alpha" / "config.pbtxt"
    with a.running() as url_a, b.running() as url_b:
        run = run_cli(*args(present_lab, tree, (url_a, url_b), archive, "--apply"))
        assert run.exit_code == 0, run.stderr
        assert b.loaded("alpha") == {"1", "5", "8"}
        assert 8 in file_loads(config, ON_DISK["alpha"]), (config.read_text(), run.stderr)


def test_a_symlinked_config_outside_the_repository_is_not_rewritten(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """Was a false safe or a hang, fixed: config.pbtxt is written through a symlink to wherever it points (realpath): a  --model-dir whose alpha/config.pbtxt links to a file outside the repository gets that  outside file rewritten."""
    outside = tmp_path / "elsewhere" / "shared-ranker.pbtxt"
    outside.parent.mkdir()
    outside.write_text(ALPHA)
    config = tree / "alpha" / "config.pbtxt"
    config.unlink()
    config.symlink_to(outside)
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        run = run_cli(*args(present_lab, tree, (url,), tmp_path / "archive", "--apply"))
        assert run.exit_code == 0, run.stderr
        assert loaded(fake) == AFTER
    assert outside.read_text() == ALPHA, run.stderr


def test_a_config_shared_by_two_models_is_not_narrowed_for_both(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """Was a false safe or a hang, fixed: two models whose config.pbtxt are symlinks to one file: alpha's rewrite is beta's too;  beta is then refused ('does not describe what they run') but its file already says  `specific` [1, 5, 8], so beta 3, which clients call, is not loaded at the next start."""
    shared = tree / "python-models.pbtxt"
    shared.write_text('backend: "python"\nmax_batch_size: 0\nversion_policy: { all { } }\n')
    for model in ("alpha", "beta"):
        path = tree / model / "config.pbtxt"
        path.unlink(missing_ok=True)
        path.symlink_to(Path("..") / "python-models.pbtxt")
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        run = run_cli(*args(present_lab, tree, (url,), tmp_path / "archive", "--apply"))
        assert run.exit_code == 0, run.stderr
        assert loaded(fake) == AFTER
    assert {1, 3} <= file_loads(tree / "beta" / "config.pbtxt", ON_DISK["beta"]), (
        shared.read_text(),
        run.stderr,
    )


def test_an_edited_kept_path_cannot_put_another_file_back(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """Was a false safe or a hang, fixed: --undo puts back whatever file the config journal's `kept` names, anywhere on disk,  if only its name carries its own hash: an edited journal makes --undo write an outsider's  config.pbtxt (specific [8]) over alpha's, so alpha 1 and 5, in use, do not load at the next  start."""
    archive = tmp_path / "archive"
    config = tree / "alpha" / "config.pbtxt"
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        assert run_cli(*args(present_lab, tree, (url,), archive, "--apply")).exit_code == 0
        evil_text = 'name: "alpha"\nbackend: "python"\nversion_policy { specific { versions: [ 8 ] } }\n'
        evil = tmp_path / "dropped" / f"config.pbtxt.{durable.sha(evil_text)[:16]}.orig"
        evil.parent.mkdir()
        evil.write_text(evil_text)
        journal = archive / "unload-config.jsonl"
        records = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
        journal.write_text("".join(json.dumps({**r, "kept": str(evil)}) + "\n" for r in records))
        run_cli(*undo((url,), archive, "--model-dir", str(tree)))
    assert config.read_text() != evil_text
    assert {1, 5, 8} <= file_loads(config, ON_DISK["alpha"]), config.read_text()


# =============================================================================================
# Attacks that held (plain tests)


def test_the_file_keeps_its_mode_through_rewrite_and_undo(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    config = tree / "alpha" / "config.pbtxt"
    config.chmod(0o640)
    archive = tmp_path / "archive"
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        run = run_cli(*args(present_lab, tree, (url,), archive, "--apply"))
        assert run.exit_code == 0, run.stderr
        assert "made it last" in run.stderr
        assert config.stat().st_mode & 0o7777 == 0o640
        back = run_cli(*undo((url,), archive, "--model-dir", str(tree)))
        assert back.exit_code == 0, back.stderr
    assert config.read_text() == ALPHA
    assert config.stat().st_mode & 0o7777 == 0o640
    assert not config.is_symlink()


def test_a_hard_linked_config_is_left_alone(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    config = tree / "alpha" / "config.pbtxt"
    other = tmp_path / "backup-alpha.pbtxt"
    os.link(config, other)
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        run = run_cli(*args(present_lab, tree, (url,), tmp_path / "archive", "--apply"))
        assert run.exit_code == 0, run.stderr
        assert loaded(fake) == AFTER
    assert "not made durable for alpha" in run.stderr and "hard links" in run.stderr
    assert config.read_text() == other.read_text() == ALPHA


def test_credentials_in_replica_urls_never_show_nor_reach_the_journals(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    a, b = FakeTriton(ON_DISK), FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with a.running() as url_a, b.running() as url_b:
        secret_a = url_a.replace("http://", "http://ops:pw-alpha-4431@")
        secret_b = url_b.replace("http://", "http://ops:pw-beta-9902@")
        run = run_cli(*args(present_lab, tree, (secret_a, secret_b), archive, "--apply"))
        assert run.exit_code == 0, run.stderr
        assert loaded(a) == loaded(b) == AFTER
        back = run_cli(*undo((secret_a, secret_b), archive, "--model-dir", str(tree)))
        assert back.exit_code == 0, back.stderr
        assert loaded(a) == loaded(b) == ALL
    said = run.stdout + run.stderr + back.stdout + back.stderr
    written = "".join(p.read_text() for p in archive.rglob("*") if p.is_file())
    for secret in ("pw-alpha-4431", "pw-beta-9902"):
        assert secret not in said and secret not in written


def test_one_replica_twice_with_different_credentials_ends_as_it_began(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        first = url.replace("http://", "http://reader:one@")
        second = url.replace("http://", "http://writer:two@")
        run = run_cli(*args(present_lab, tree, (first, second), archive, "--apply"))
        assert run.exit_code == 0, run.stderr
        assert loaded(fake) == AFTER
        rows = statuses(present_lab, tree, (url,), archive)
        assert rows["alpha:2"] == rows["alpha:3"] == rows["beta:2"] == "unloaded"
        back = run_cli(*undo((first, second), archive, "--model-dir", str(tree)))
        assert back.exit_code == 0, back.stderr
        assert loaded(fake) == ALL
        assert "unloaded" not in statuses(present_lab, tree, (url,), archive).values()
    assert (tree / "alpha" / "config.pbtxt").read_text() == ALPHA


def test_one_replica_under_two_spellings_is_never_cleared_by_the_other(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """127.0.0.1 and localhost are one replica, not deduplicated: the unload happens once; a
    report through the other spelling (where the versions are not loaded) keeps them unloaded,
    and one where someone loaded them back on it keeps them unloaded too (the journal's server
    was not asked)."""
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        other = url.replace("127.0.0.1", "localhost") + "/"
        run = run_cli(*args(present_lab, tree, (url, other), archive, "--apply"))
        assert run.exit_code == 0, run.stderr
        assert loaded(fake) == AFTER
        assert statuses(present_lab, tree, (other,), archive)["alpha:2"] == "unloaded"
        fake.models["alpha"].loaded |= {"2", "3"}
        assert statuses(present_lab, tree, (other,), archive)["alpha:2"] == "unloaded"
        fake.models["alpha"].loaded -= {"2", "3"}
        back = run_cli(*undo((other, url), archive, "--model-dir", str(tree)))
        assert back.exit_code == 0, back.stderr
        assert loaded(fake) == ALL
    assert (tree / "alpha" / "config.pbtxt").read_text() == ALPHA


class TrickleConfigTriton(FakeTriton):
    """A replica that answers its status at once but trickles its model config, a byte every
    half second: the change on the other replica must be put back within the bounds."""

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        status, payload = super().answer(method, path, query, body)
        if method == "GET" and unquote(path).endswith("/config"):
            self.trickled = 0.5
        return status, payload


def test_a_trickling_second_replica_puts_the_first_back_in_bounded_time(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    a, b = FakeTriton(ON_DISK), TrickleConfigTriton(ON_DISK)
    archive = tmp_path / "archive"
    with a.running() as url_a, b.running() as url_b:
        start = time.monotonic()
        run = run_cli(
            *args(
                present_lab, tree, (url_a, url_b), archive, "--apply", "--timeout", "2s", "--deadline", "60s"
            )
        )
        took = time.monotonic() - start
        assert run.exit_code == 6, run.stderr
        assert "Traceback" not in run.stderr
        assert took < 45, took
        assert loaded(a) == loaded(b) == ALL
        assert "unloaded" not in statuses(present_lab, tree, (url_a, url_b), archive).values()
    assert (tree / "alpha" / "config.pbtxt").read_text() == ALPHA  # no replica confirmed: no rewrite
    assert [r["phase"] for r in journal_records(archive)][-1] == "done"


def test_a_model_directory_reached_through_a_symlink_gets_no_file_rewritten_outside(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """alpha's directory is a symlink to another volume: its versions are protected (not
    unloaded), so nothing outside --model-dir is rewritten."""
    outside = tmp_path / "other-volume" / "alpha"
    outside.parent.mkdir()
    shutil.move(str(tree / "alpha"), outside)
    (tree / "alpha").symlink_to(outside)
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        run = run_cli(*args(present_lab, tree, (url,), tmp_path / "archive", "--apply"))
        assert "Traceback" not in run.stderr
        assert run.exit_code == 0, run.stderr
        assert fake.loaded("alpha") == set(ON_DISK["alpha"])  # versions behind a symlink: protected
    assert (outside / "config.pbtxt").read_text() == ALPHA, run.stderr


def test_a_trailing_slash_is_the_same_replica_for_reports_and_undo(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        run = run_cli(*args(present_lab, tree, (url + "/",), archive, "--apply"))
        assert run.exit_code == 0, run.stderr
        assert statuses(present_lab, tree, (url,), archive)["alpha:2"] == "unloaded"
        back = run_cli(*undo((url,), archive, "--model-dir", str(tree)))
        assert back.exit_code == 0, back.stderr
        assert loaded(fake) == ALL
        assert "unloaded" not in statuses(present_lab, tree, (url + "/",), archive).values()
    assert (tree / "alpha" / "config.pbtxt").read_text() == ALPHA


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_the_file_keeps_its_owner_through_rewrite_and_undo(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    config = tree / "alpha" / "config.pbtxt"
    os.chown(config, 4321, 4322)
    archive = tmp_path / "archive"
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        run = run_cli(*args(present_lab, tree, (url,), archive, "--apply"))
        assert run.exit_code == 0 and "made it last" in run.stderr, run.stderr
        assert (config.stat().st_uid, config.stat().st_gid) == (4321, 4322)
        back = run_cli(*undo((url,), archive, "--model-dir", str(tree)))
        assert back.exit_code == 0, back.stderr
    assert config.read_text() == ALPHA
    assert (config.stat().st_uid, config.stat().st_gid) == (4321, 4322)


def test_each_replica_gets_only_its_own_credentials_and_none_of_prometheus(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """Two replicas, each with its own user info; Prometheus with a header and a token. Through
    an apply whose second replica refuses (the first put back), an apply and an undo: each
    replica sees only its own Basic credentials, neither sees Prometheus's, and no secret is
    said or written in the archive."""
    import base64

    a, b = FakeTriton(ON_DISK), FakeTriton(ON_DISK)
    token = tmp_path / "token"
    token.write_text("prom-token-5151\n")
    archive = tmp_path / "archive"
    prom = ("--header", "X-Prom-Key: prom-header-6161", "--bearer-token-file", str(token))
    with a.running() as url_a, b.running() as url_b:
        urls = (
            url_a.replace("http://", "http://ops:pw-a-7171@"),
            url_b.replace("http://", "http://ops:pw-b-8181@"),
        )
        b.faults.add("refuse")
        refused = run_cli(*args(present_lab, tree, urls, archive, *prom, "--apply"))
        assert refused.exit_code == 6, refused.stderr
        assert loaded(a) == loaded(b) == ALL
        b.faults.discard("refuse")
        run = run_cli(*args(present_lab, tree, urls, archive, *prom, "--apply"))
        assert run.exit_code == 0, run.stderr
        back = run_cli(*undo(urls, archive, "--model-dir", str(tree)))
        assert back.exit_code == 0, back.stderr
        assert loaded(a) == loaded(b) == ALL
    for fake, own in ((a, "ops:pw-a-7171"), (b, "ops:pw-b-8181")):
        auth = {s.headers.get("Authorization", "") for s in fake.log}
        assert auth == {"Basic " + base64.b64encode(own.encode()).decode()}, auth
        sent = json.dumps([s.headers for s in fake.log]) + "".join(s.body for s in fake.log)
        assert "prom-header-6161" not in sent and "prom-token-5151" not in sent
    said = "".join(r.stdout + r.stderr for r in (refused, run, back))
    written = "".join(p.read_text() for p in archive.rglob("*") if p.is_file())
    for secret in ("pw-a-7171", "pw-b-8181", "prom-header-6161", "prom-token-5151"):
        assert secret not in said and secret not in written

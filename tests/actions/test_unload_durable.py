"""`retire unload` makes a Triton change last: the model's `config.pbtxt` in the repository says
the kept versions once every replica confirmed the change, and `--undo` puts the file back
(retire/actions/triton_config.py). Against the real Prometheus of the basic scenario and small
real HTTP servers that speak Triton's repository API (tests/model_servers.py), with real files;
tests/e2e/test_unload_triton.py starts a real Triton on the rewritten repository.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from retire.actions import triton_config as durable
from retire.errors import OffloadError
from tests import scenarios as sc
from tests.actions.test_unload import AFTER, ON_DISK, TRITON_FLAGS, loaded, one_line_error
from tests.conftest import Lab, run_cli
from tests.model_servers import FakeTriton
from tests.offload_lab import evidence, present_lab_server

pytestmark = pytest.mark.prometheus

ALL = {m: set(v) for m, v in ON_DISK.items()}
ALPHA = """\
name: "alpha"  # the ranker
backend: "python"
max_batch_size: 0
version_policy: {
  all { }  # every version on disk
}
instance_group [ { kind: KIND_CPU count: 1 } ]
"""


@pytest.fixture(scope="module")
def present_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from present_lab_server(tmp_path_factory)


@pytest.fixture
def tree(present_lab: Lab, tmp_path: Path) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(present_lab.models(sc.BASIC), dst, symlinks=True)
    (dst / "alpha" / "config.pbtxt").write_text(ALPHA)
    return dst


@pytest.fixture
def triton() -> Iterator[tuple[FakeTriton, str]]:
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        yield fake, url


def args(lab: Lab, tree: Path, url: str, archive: Path, *extra: str) -> list[str]:
    return [
        "unload",
        *evidence(lab, "--model-dir", str(tree), *TRITON_FLAGS),
        "--server",
        url,
        "--archive-dir",
        str(archive),
        *extra,
    ]


def undo(url: str, archive: Path, *extra: str) -> list[str]:
    return ["unload", "--undo", "--preset", "triton", "--server", url, "--archive-dir", str(archive), *extra]


def test_the_policy_span_alone_is_rewritten_kept_journaled_and_put_back(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    fake, url = triton
    archive = tmp_path / "archive"
    config = tree / "alpha" / "config.pbtxt"
    run = run_cli(*args(present_lab, tree, url, archive, "--apply"))
    assert run.exit_code == 0, run.stderr
    assert loaded(fake) == AFTER  # the in-memory unload, as before
    # Only the version_policy field's text changed (its comment with it); every other byte kept.
    assert config.read_text() == ALPHA.replace(
        "version_policy: {\n  all { }  # every version on disk\n}",
        "version_policy { specific { versions: [ 1, 5, 8 ] } }",
    )
    assert f"made it last: {config} says version_policy specific [1, 5, 8]" in run.stderr
    # beta has no config.pbtxt: said in one line, and its in-memory unload stands.
    assert "not made durable for beta: cannot read" in run.stderr
    kept = (
        archive
        / "triton-configs"
        / "alpha"
        / f"config.pbtxt.{hashlib.sha256(ALPHA.encode()).hexdigest()[:16]}.orig"
    )
    assert kept.read_text() == ALPHA
    records = [json.loads(line) for line in (archive / "unload-config.jsonl").read_text().splitlines()]
    assert [(r["op"], r["phase"], r["model"], r["versions"]) for r in records] == [
        ("unload", "begin", "alpha", ["2", "3"]),
        ("unload", "done", "alpha", ["2", "3"]),
    ]
    assert records[0]["before"] == hashlib.sha256(ALPHA.encode()).hexdigest()
    assert records[0]["after"] == hashlib.sha256(config.read_bytes()).hexdigest()

    # --undo --only: the version comes back in the file's list too.
    part = run_cli(*undo(url, archive, "--model-dir", str(tree), "--only", "alpha:3"))
    assert part.exit_code == 0, part.stderr
    assert "version_policy { specific { versions: [ 1, 3, 5, 8 ] } }" in config.read_text()
    # The rest: the original, byte for byte.
    back = run_cli(*undo(url, archive, "--model-dir", str(tree)))
    assert back.exit_code == 0, back.stderr
    assert loaded(fake) == ALL
    assert config.read_text() == ALPHA
    assert f"put back {config}" in back.stderr


def test_an_undo_without_the_repository_says_so_and_a_later_one_puts_the_file_back(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    fake, url = triton
    archive = tmp_path / "archive"
    config = tree / "alpha" / "config.pbtxt"
    assert run_cli(*args(present_lab, tree, url, archive, "--apply", "--only", "alpha:2")).exit_code == 0
    first = run_cli(*undo(url, archive))
    assert first.exit_code == 0, first.stderr
    assert loaded(fake) == ALL
    assert "config.pbtxt of alpha still leaves out what retire unloaded" in first.stderr
    assert "version_policy { specific { versions: [ 1, 3, 5, 8 ] } }" in config.read_text()
    second = run_cli(*undo(url, archive, "--model-dir", str(tree)))
    assert second.exit_code == 0, second.stderr
    assert config.read_text() == ALPHA
    nothing = run_cli(*undo(url, archive, "--model-dir", str(tree)))
    one_line_error(nothing, 6, "nothing unloaded")


def test_a_file_that_does_not_say_what_the_server_runs_is_not_rewritten(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    """The server runs `all` (an override in its memory, say); the file says latest 2: the file
    would not describe the server, so it is left alone and said; the unload still happens."""
    fake, url = triton
    config = tree / "alpha" / "config.pbtxt"
    config.write_text('name: "alpha"\nversion_policy { latest { num_versions: 2 } }\n')
    run = run_cli(*args(present_lab, tree, url, tmp_path / "archive", "--apply"))
    assert run.exit_code == 0, run.stderr
    assert loaded(fake) == AFTER
    assert "not made durable for alpha: the servers ran alpha with version_policy all" in run.stderr
    assert "says latest 2" in run.stderr
    assert config.read_text() == 'name: "alpha"\nversion_policy { latest { num_versions: 2 } }\n'


def test_a_file_edited_after_retire_wrote_it_is_not_put_back(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    fake, url = triton
    archive = tmp_path / "archive"
    config = tree / "alpha" / "config.pbtxt"
    assert run_cli(*args(present_lab, tree, url, archive, "--apply")).exit_code == 0
    edited = config.read_text() + "# edited by hand\n"
    config.write_text(edited)
    back = run_cli(*undo(url, archive, "--model-dir", str(tree)))
    assert back.exit_code == 0, back.stderr
    assert loaded(fake) == ALL
    assert f"{config} was not put back: it changed since retire wrote it" in back.stderr
    assert config.read_text() == edited


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name: "m"\n', 'name: "m"\nversion_policy { specific { versions: [ 2 ] } }\n'),
        ('name: "m"', 'name: "m"\nversion_policy { specific { versions: [ 2 ] } }\n'),
        (
            'name: "m"\r\nversion_policy: < latest: < num_versions: 3 > >\r\nbackend: "python"\r\n',
            'name: "m"\r\nversion_policy { specific { versions: [ 2 ] } }\r\nbackend: "python"\r\n',
        ),
    ],
    ids=["absent", "absent-no-newline", "angle-brackets-crlf"],
)
def test_the_edit_replaces_or_adds_only_the_policy(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "m" / "config.pbtxt"
    path.parent.mkdir()
    path.write_bytes(text.encode())
    server = {"latest": {"num_versions": 3}} if "latest" in text else {"latest": {"num_versions": 1}}
    edit = durable.plan("m", path, ["2"], [server])
    assert isinstance(edit, durable.Edit), edit
    assert edit.after == expected


def test_what_cannot_be_edited_is_said(tmp_path: Path) -> None:
    path = tmp_path / "m" / "config.pbtxt"
    path.parent.mkdir()
    path.write_text("version_policy { all {} }\nversion_policy { all {} }\n")
    assert "version_policy" in str(durable.plan("m", path, ["2"], [{"all": {}}]))
    path.write_text("version_policy { all {\n")
    assert "does not parse" in str(durable.plan("m", path, ["2"], [{"all": {}}]))
    path.write_text("version_policy { all {} }\n")
    assert "not one retire reads" in str(durable.plan("m", path, ["2"], [{"any": 1}]))
    assert "cannot read" in str(durable.plan("m", tmp_path / "none" / "config.pbtxt", ["2"], [{"all": {}}]))


def test_an_interrupted_rewrite_is_settled_by_the_file_hash(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    path = tmp_path / "models" / "m" / "config.pbtxt"
    path.parent.mkdir(parents=True)
    before, after = "version_policy { all {} }\n", "version_policy { specific { versions: [ 2 ] } }\n"
    record = {
        "step": 1,
        "op": "unload",
        "model": "m",
        "config": str(path),
        "versions": ["1"],
        "before": durable.sha(before),
        "after": durable.sha(after),
        "kept": str(archive / "k"),
    }
    for text, phase in ((after, "done"), (before, "failed")):
        path.write_text(text)
        durable.journal(archive).append({**record, "phase": "begin"})
        durable.settle(archive)
        assert durable.journal(archive).records()[-1]["phase"] == phase
        record["step"] += 1
    path.write_text("# someone else's\n")
    durable.journal(archive).append({**record, "phase": "begin"})
    with pytest.raises(OffloadError) as e:
        durable.settle(archive)
    assert "changed while retire was rewriting it" in e.value.message

"""Crashes (a subprocess killed right after each journal write, tests/crash.py) during an unload
on two replicas that also rewrites alpha's config.pbtxt, and during its `--undo`; replicas
refusing the undo; names with markup and control characters. The same real Prometheus (basic
scenario) and fake Tritons (tests/model_servers.py) as test_replicas_durable_attacks.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retire.actions.unload import journal_records
from tests import scenarios as sc
from tests.actions.test_unload import AFTER, ON_DISK, loaded
from tests.attacks_24c.test_replicas_durable_attacks import ALL, ALPHA, args, statuses, undo
from tests.conftest import Lab, run_cli
from tests.model_servers import FakeTriton
from tests.offload_lab import cli, present_lab_server

pytestmark = pytest.mark.prometheus

APPLY_WRITES = 10  # alpha: 2 replicas x (begin, done) + the config's (begin, done); beta: 2 x 2
UNDO_WRITES = 10  # 2 replicas x 2 models x (begin, done) + the config's (begin, done)


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
def pair() -> Iterator[tuple[FakeTriton, str, FakeTriton, str]]:
    a, b = FakeTriton(ON_DISK), FakeTriton(ON_DISK)
    with a.running() as url_a, b.running() as url_b:
        yield a, url_a, b, url_b


def unfinished(archive: Path) -> list[int]:
    last: dict[int, str] = {}
    for r in journal_records(archive):
        last[r["step"]] = r["phase"]
    return [s for s, p in last.items() if p == "begin"]


@pytest.mark.parametrize("after", range(1, APPLY_WRITES + 1))
def test_a_crash_at_any_step_of_a_two_replica_unload_is_undone_whole(
    present_lab: Lab,
    tree: Path,
    pair: tuple[FakeTriton, str, FakeTriton, str],
    tmp_path: Path,
    after: int,
) -> None:
    a, url_a, b, url_b = pair
    archive = tmp_path / "archive"
    urls = (url_a, url_b)
    crashed = cli(*args(present_lab, tree, urls, archive, "--apply"), crash_after=after)
    assert crashed.returncode == -9, crashed.stderr
    # Until the undo, every version unloaded on any replica reads `unloaded`, never safe.
    rows = statuses(present_lab, tree, urls, archive)
    for model, kept in AFTER.items():
        for v in ON_DISK[model]:
            if v not in kept and (v not in a.loaded(model) or v not in b.loaded(model)):
                assert rows[f"{model}:{v}"] == "unloaded", (model, v, rows)
    back = cli(*undo(urls, archive, "--model-dir", str(tree)))
    assert back.returncode == 0, back.stderr
    assert loaded(a) == loaded(b) == ALL
    assert (tree / "alpha" / "config.pbtxt").read_text() == ALPHA, back.stderr
    assert "unloaded" not in statuses(present_lab, tree, urls, archive).values()
    assert unfinished(archive) == []


# Crash points 6 and 7 were harm, fixed: the next --undo now also puts back the file of a model
# loaded back everywhere before the crash. What they did:
FORGOTTEN_FILE = (
    "an undo interrupted after alpha was loaded back on both replicas but before beta was on the "
    "second: the next --undo loads back only beta, and puts back only the config.pbtxt of the "
    "models it loaded back in this run (`back`), so alpha's file stays `specific` [1, 5, 8] while "
    "the journal, the reports and the run's output say nothing is left: the next start of any "
    "replica drops alpha 2 and 3 again, unsaid"
)


@pytest.mark.parametrize(
    "after",
    list(range(1, UNDO_WRITES + 1)),
)
def test_a_crash_at_any_step_of_a_two_replica_undo_is_finished_by_another(
    present_lab: Lab,
    tree: Path,
    pair: tuple[FakeTriton, str, FakeTriton, str],
    tmp_path: Path,
    after: int,
) -> None:
    a, url_a, b, url_b = pair
    archive = tmp_path / "archive"
    urls = (url_a, url_b)
    run = run_cli(*args(present_lab, tree, urls, archive, "--apply"))
    assert run.exit_code == 0, run.stderr
    assert loaded(a) == loaded(b) == AFTER
    crashed = cli(*undo(urls, archive, "--model-dir", str(tree)), crash_after=after)
    assert crashed.returncode == -9, crashed.stderr
    again = cli(*undo(urls, archive, "--model-dir", str(tree)))
    assert again.returncode == 0 or "nothing unloaded" in again.stderr, again.stderr
    assert loaded(a) == loaded(b) == ALL
    assert (tree / "alpha" / "config.pbtxt").read_text() == ALPHA, again.stderr
    assert "unloaded" not in statuses(present_lab, tree, urls, archive).values()


class RefusingLoads(FakeTriton):
    """A replica whose every load answers 400 while `refusing` (its GPU is full, say)."""

    refusing = False

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if self.refusing and method == "POST" and path.endswith("/load"):
            return 400, {"error": "failed to load: out of memory"}
        return super().answer(method, path, query, body)


def test_an_undo_refused_by_one_replica_keeps_the_versions_unloaded_and_the_file_narrowed(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    a, b = FakeTriton(ON_DISK), RefusingLoads(ON_DISK)
    archive = tmp_path / "archive"
    config = tree / "alpha" / "config.pbtxt"
    with a.running() as url_a, b.running() as url_b:
        urls = (url_a, url_b)
        assert run_cli(*args(present_lab, tree, urls, archive, "--apply")).exit_code == 0
        narrowed = config.read_text()
        b.refusing = True
        half = run_cli(*undo(urls, archive, "--model-dir", str(tree)))
        assert half.exit_code == 6, half.stderr
        assert "Traceback" not in half.stderr
        assert loaded(b) == AFTER
        rows = statuses(present_lab, tree, urls, archive)
        assert rows["alpha:2"] == rows["alpha:3"] == rows["beta:2"] == "unloaded"
        assert config.read_text() == narrowed  # b still leaves them out: the file too
        b.refusing = False
        back = run_cli(*undo(urls, archive, "--model-dir", str(tree)))
        assert back.exit_code == 0, back.stderr
        assert loaded(a) == loaded(b) == ALL
        assert "unloaded" not in statuses(present_lab, tree, urls, archive).values()
    assert config.read_text() == ALPHA


class RefusingBeta(FakeTriton):
    """A replica that refuses to load beta while `refusing` (no room for it just then)."""

    refusing = False

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if self.refusing and method == "POST" and path.endswith("/models/beta/load"):
            return 400, {"error": "failed to load 'beta': out of memory"}
        return super().answer(method, path, query, body)


def test_an_undo_retried_after_one_replica_refused_puts_every_file_back(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """Was harm, fixed: an --undo that fails on one model of one replica (beta on b) after alpha was loaded  back everywhere stops before any config.pbtxt is put back; the retry loads beta back and  puts back only beta's file (the models loaded back in that run), so alpha's config.pbtxt  is left `specific` [1, 5, 8] with nothing in the journal, the reports or the output saying  so: every replica started later drops alpha 2 and 3."""
    a, b = FakeTriton(ON_DISK), RefusingBeta(ON_DISK)
    archive = tmp_path / "archive"
    config = tree / "alpha" / "config.pbtxt"
    with a.running() as url_a, b.running() as url_b:
        urls = (url_a, url_b)
        assert run_cli(*args(present_lab, tree, urls, archive, "--apply")).exit_code == 0
        b.refusing = True
        half = run_cli(*undo(urls, archive, "--model-dir", str(tree)))
        assert half.exit_code == 6, half.stderr
        assert loaded(a) == ALL and b.loaded("alpha") == ALL["alpha"]
        b.refusing = False
        back = run_cli(*undo(urls, archive, "--model-dir", str(tree)))
        assert back.exit_code == 0, back.stderr
        assert loaded(a) == loaded(b) == ALL
        assert "unloaded" not in statuses(present_lab, tree, urls, archive).values()
    assert config.read_text() == ALPHA, back.stderr


@pytest.mark.parametrize("name", ["r[bold red]x[/]", "r\x1b[2Jx", "r\u202ex"])
def test_markup_and_control_characters_in_a_model_name_are_shown_escaped(
    present_lab: Lab, tree: Path, tmp_path: Path, name: str
) -> None:
    """A model only the repository and the server know (no series: unknown), named with rich
    markup, an ANSI escape or a bidi override: `--only` unloads it; every line said shows the
    name escaped, never interpreted."""
    shutil.copytree(tree / "beta", tree / name)
    fake = FakeTriton({**ON_DISK, name: ["1", "2", "3"]})
    archive = tmp_path / "archive"
    with fake.running() as url:
        run = run_cli(*args(present_lab, tree, (url,), archive, "--apply", "--only", f"{name}:2"))
        said = run.stdout + run.stderr
        assert "Traceback" not in said
        assert "\x1b" not in said and "\u202e" not in said, said
        if "[bold" in name:
            assert name in said, said  # markup shown as it is, not rendered away
        if run.exit_code == 0:
            assert fake.loaded(name) == {"1", "3"}
            back = run_cli(*undo((url,), archive, "--model-dir", str(tree)))
            assert back.exit_code == 0, back.stderr
            assert "\x1b" not in back.stdout + back.stderr and "\u202e" not in back.stdout + back.stderr
            assert fake.loaded(name) == {"1", "2", "3"}
        else:
            assert fake.loaded(name) == {"1", "2", "3"}


def test_an_edited_config_journal_naming_a_fifo_cannot_hang_the_undo(tmp_path: Path) -> None:
    """Was a false safe or a hang, fixed: the config journal is untrusted, yet settling a begun step reads whatever absolute  `<x>/alpha/config.pbtxt` it names, with no bound: an edited record naming a FIFO makes  every later `retire unload` and `--undo` hang forever (no --timeout, no --deadline applies)."""
    import os
    import subprocess
    import sys

    from retire.actions import triton_config as durable

    archive = tmp_path / "archive"
    archive.mkdir()
    fifo = tmp_path / "trap" / "alpha" / "config.pbtxt"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    durable.journal(archive).append(
        {
            "step": 1,
            "op": "unload",
            "phase": "begin",
            "model": "alpha",
            "config": str(fifo),
            "versions": ["2"],
            "before": durable.sha("a"),
            "after": durable.sha("b"),
            "kept": str(archive / "k"),
        }
    )
    fake = FakeTriton(ON_DISK)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with fake.running() as url:
        cmd = [sys.executable, "-m", "retire", *undo((url,), archive, "--deadline", "10s")]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=40, env=env, cwd=tmp_path)
        except subprocess.TimeoutExpired:  # the child is killed by subprocess.run
            pytest.fail("retire unload --undo still reading the journal's FIFO after 40 s")
    assert done.returncode in (2, 6), done.stderr
    assert "Traceback" not in done.stderr

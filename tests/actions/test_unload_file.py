"""`retire unload --preset tfserving*`: a real Prometheus whose history ends now (the basic
scenario), real model trees, a real TF Serving --model_config_file rewritten on disk, and
`FakeTFServing` (tests/model_servers.py), a small real HTTP server that stands in for TF Serving:
it polls that file with protobuf's text_format and the ModelServerConfig schema and answers its
REST status API.

In the basic scenario alpha 2, alpha 3 and beta 2 are idle; alpha 1, 5 and beta 1 are called;
alpha 8 and beta 3 are the newest (--keep-latest 1). The config loads every alpha version with a
`specific` list, and beta with `latest 3`, under which beta 2 is not the oldest loaded (1 is):
that model is left as it is, and said why.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retire.actions.unload import journal_records
from tests import scenarios as sc
from tests.actions.test_unload import one_line_error
from tests.conftest import Lab, run_cli
from tests.model_servers import FakeTFServing
from tests.offload_lab import cli, evidence

pytestmark = pytest.mark.prometheus


def config_text(
    tree: Path,
    alpha: str = "specific { versions: [1, 2, 3, 5, 8] }",
    beta: str = "latest { num_versions: 3 }",
) -> str:
    return (
        "# served models (a comment retire keeps)\n"
        "model_config_list {\n"
        f'  config {{ name: "alpha" base_path: "{tree / "alpha"}" model_platform: "tensorflow"\n'
        f"    model_version_policy {{ {alpha} }}\n"
        '    version_labels { key: "stable" value: 5 }\n'
        "  }\n"
        f'  config {{ name: "beta" base_path: "{tree / "beta"}" model_version_policy {{ {beta} }} }}\n'
        "}\n"
    )


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


@pytest.fixture
def tfs(config: Path) -> Iterator[tuple[FakeTFServing, str]]:
    fake = FakeTFServing(config, poll=0.1)
    with fake.running() as url:
        yield fake, url


def args(lab: Lab, config: Path, archive: Path, *extra: str) -> list[str]:
    return [*evidence(lab, "--model-config", str(config)), "--archive-dir", str(archive), *extra]


def undo_args(config: Path, archive: Path, *extra: str) -> list[str]:
    return ["unload", "--undo", "--model-config", str(config), "--archive-dir", str(archive), *extra]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def phases(archive: Path) -> list[tuple[str, str, str]]:
    return [(r["op"], r["phase"], r["model"]) for r in journal_records(archive)]


def test_dry_run_changes_nothing(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    fake, url = tfs
    before = config.read_text()
    archive = tmp_path / "archive"
    run = run_cli("unload", *args(present_lab, config, archive, "--server", url))
    assert run.exit_code == 0, run.stderr
    assert run.stdout == (
        f"would rewrite {config} (TF Serving --model_config_file), confirmed by {url} (TF Serving REST API "
        "(port 8501 by default)):\n"
        "  beta: left as it is: latest 3 loads 1, 2, 3; lowering it unloads the oldest first, and 2 are not "
        "the oldest 1 of them (that would be 1): change the policy to a specific list yourself\n"
        "  alpha: specific 1, 2, 3, 5, 8 -> specific 1, 5, 8 (keep 1, 5, 8; unload 2, 3)\n"
    )
    assert "dry run: nothing was changed; add --apply to act" in run.stderr
    assert config.read_text() == before and not archive.exists()
    assert fake.available("alpha") == {"1", "2", "3", "5", "8"}


def test_without_server_the_policy_says_what_is_loaded_and_nothing_is_confirmed(
    present_lab: Lab, config: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    run = run_cli("unload", *args(present_lab, config, archive))
    assert run.exit_code == 0, run.stderr
    assert "not confirmed (no --server): the server unloads them at its next poll" in run.stdout
    assert "  alpha: specific 1, 2, 3, 5, 8 -> specific 1, 5, 8" in run.stdout
    applied = run_cli("unload", *args(present_lab, config, archive, "--apply"))
    assert applied.exit_code == 0, applied.stderr
    assert "versions: [1, 5, 8]" not in config.read_text()  # printed by protobuf
    assert "model_version_policy { specific { versions: 1 versions: 5 versions: 8 } }" in config.read_text()
    assert "not confirmed (no --server)" in applied.stderr
    assert phases(archive) == [("unload", "begin", "alpha"), ("unload", "done", "alpha")]


def test_apply_rewrites_the_server_unloads_and_undo_restores(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    fake, url = tfs
    original = config.read_text()
    archive = tmp_path / "archive"
    run = run_cli("unload", *args(present_lab, config, archive, "--server", url, "--apply"))
    assert run.exit_code == 0, run.stderr
    assert fake.available("alpha") == {"1", "5", "8"}
    assert fake.states["alpha"]["2"] == fake.states["alpha"]["3"] == "END"
    assert fake.available("beta") == {"1", "2", "3"}  # left as it was, and said why
    assert "left beta as it is" in run.stderr or "beta: left as it is" in run.stdout
    text = config.read_text()
    assert text.startswith("# served models (a comment retire keeps)\n")
    assert text == original.replace(
        "model_version_policy { specific { versions: [1, 2, 3, 5, 8] } }",
        "model_version_policy { specific { versions: 1 versions: 5 versions: 8 } }",
    )
    records = list(journal_records(archive))
    assert phases(archive) == [("unload", "begin", "alpha"), ("unload", "done", "alpha")]
    f = records[0]["had"]["file"]
    assert f["config"] == str(config.resolve()) and f["before"] == sha(original) and f["after"] == sha(text)
    assert (archive / f["kept"]).read_text() == original
    assert records[0]["had"]["policy"]["after"] == "specific 1, 5, 8"
    assert "undo with `retire unload --undo --archive-dir" in run.stderr

    again = run_cli("unload", *args(present_lab, config, archive, "--server", url, "--apply"))
    assert again.exit_code == 0 and "nothing was unloaded" in again.stderr, again.stderr
    assert config.read_text() == text and len(phases(archive)) == 2

    back = run_cli(*undo_args(config, archive, "--server", url))
    assert back.exit_code == 0, back.stderr
    assert config.read_text() == original  # the kept original, byte for byte
    assert fake.available("alpha") == {"1", "2", "3", "5", "8"}
    assert "loaded back 2 version(s)" in back.stderr
    one_line_error(run_cli(*undo_args(config, archive, "--server", url)), 6, "nothing unloaded")


def test_latest_n_is_lowered_where_the_idle_versions_are_the_oldest(
    present_lab: Lab, tree: Path, config: Path, tmp_path: Path
) -> None:
    """beta `latest 2` loads 2 and 3; 2 is idle and the oldest of them: latest 1."""
    config.write_text(config_text(tree, beta="latest { num_versions: 2 }"))
    fake = FakeTFServing(config)
    archive = tmp_path / "archive"
    with fake.running() as url:
        run = run_cli(
            "unload", *args(present_lab, config, archive, "--server", url, "--only", "beta:2", "--apply")
        )
        assert run.exit_code == 0, run.stderr
        assert "model_version_policy { latest { num_versions: 1 } }" in config.read_text()
        assert fake.available("beta") == {"3"} and fake.states["beta"]["2"] == "END"
        assert "a version that arrives later will push out the oldest one kept" in run.stderr
        back = run_cli(*undo_args(config, archive, "--server", url))
        assert back.exit_code == 0, back.stderr
        assert fake.available("beta") == {"2", "3"}


def test_only_picks_and_refuses(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    fake, url = tfs
    archive = tmp_path / "archive"
    base = args(present_lab, config, archive, "--server", url)
    run = run_cli("unload", *base, "--only", "alpha:3", "--apply")
    assert run.exit_code == 0, run.stderr
    assert fake.available("alpha") == {"1", "2", "5", "8"}
    one_line_error(run_cli("unload", *base, "--only", "alpha:1"), 6, "alpha:1 is in-use, not safe")
    # The report knows retire unloaded it (the journal in --archive-dir): refused as such.
    one_line_error(run_cli("unload", *base, "--only", "alpha:3"), 6, "alpha:3 is already unloaded by retire")
    # beta 2 is safe and loaded, but latest 3 cannot drop it alone: named, that is a refusal.
    one_line_error(
        run_cli("unload", *base, "--only", "beta:2", "--apply"), 6, "cannot unload beta", "not the oldest"
    )
    assert fake.available("beta") == {"1", "2", "3"}
    # --undo --only puts back exactly that version.
    assert run_cli("unload", *base, "--only", "alpha:2", "--apply").exit_code == 0
    assert fake.available("alpha") == {"1", "5", "8"}
    back = run_cli(*undo_args(config, archive, "--server", url, "--only", "alpha:2"))
    assert back.exit_code == 0, back.stderr
    assert fake.available("alpha") == {"1", "2", "5", "8"}
    unknown = run_cli(*undo_args(config, archive, "--only", "alpha:1"))
    one_line_error(unknown, 6, "was not unloaded by retire")


@pytest.mark.parametrize(
    ("fault", "said"),
    [("ignore", "2 is still loaded"), ("kept-down", "1 is not loaded"), ("unloading", "is unsure")],
)
def test_a_server_that_does_not_follow_gets_the_file_back_and_the_run_stops(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path, fault: str, said: str
) -> None:
    fake, url = tfs
    fake.faults.add(fault)
    original = config.read_text()
    archive = tmp_path / "archive"
    run = run_cli(
        "unload", *args(present_lab, config, archive, "--server", url, "--apply", "--timeout", "3s")
    )
    one_line_error(run, 6, "unloading alpha failed", "put back as it was", said)
    assert config.read_text() == original
    records = list(journal_records(archive))
    assert phases(archive) == [("unload", "begin", "alpha"), ("unload", "failed", "alpha")]
    assert said in records[1]["reason"]


def test_a_server_that_hangs_is_bounded(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    """Every status read hangs 5 s; --timeout 1s: the run ends within its bounds (exit 3 before any
    change: the status cannot be read), the file unchanged."""
    fake, url = tfs
    fake.faults.add("hang")
    fake.delay = 5.0
    original = config.read_text()
    run = run_cli(
        "unload", *args(present_lab, config, tmp_path / "a", "--server", url, "--apply", "--timeout", "1s")
    )
    one_line_error(run, 3, "did not answer within 1s")
    assert config.read_text() == original


def test_crash_after_each_journal_write_is_settled_by_a_rerun(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    fake, url = tfs
    archive = tmp_path / "archive"
    for after in (1, 2):
        shutil.rmtree(archive, ignore_errors=True)
        config.write_text(config_text(config.parent.parent / "models"))
        a = args(present_lab, config, archive, "--server", url, "--apply")
        crashed = cli("unload", *a, crash_after=after)
        assert crashed.returncode == -9, crashed.stderr
        rerun = cli("unload", *a)
        assert rerun.returncode == 0, rerun.stderr
        assert fake.available("alpha") == {"1", "5", "8"}
        last: dict[int, str] = {}
        for r in journal_records(archive):
            last[r["step"]] = r["phase"]
        assert "begin" not in last.values()


def test_a_crash_between_the_write_and_the_done_record_is_confirmed(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    """The begin record and the rewritten file, as a crash right after the rename leaves them:
    the next run confirms the step through the server and marks it done."""
    fake, url = tfs
    archive = tmp_path / "archive"
    dry = run_cli(
        "unload", *args(present_lab, config, archive, "--server", url, "--apply", "--only", "alpha:2")
    )
    assert dry.exit_code == 0
    records = list(journal_records(archive))
    (archive / "unload.jsonl").write_text(json.dumps(records[0]) + "\n")  # only `begin` survived
    rerun = run_cli(*undo_args(config, archive, "--server", url))
    assert rerun.exit_code == 0, rerun.stderr
    assert "settled the interrupted unload of alpha" in rerun.stderr
    assert fake.available("alpha") == {"1", "2", "3", "5", "8"}


def test_a_crash_before_the_write_changes_nothing(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    _fake, url = tfs
    archive = tmp_path / "archive"
    crashed = cli("unload", *args(present_lab, config, archive, "--server", url, "--apply"), crash_after=1)
    assert crashed.returncode == -9
    original = config.read_text()
    assert "versions: [1, 2, 3, 5, 8]" in original  # the begin record was written, the file not yet
    nothing = run_cli(*undo_args(config, archive, "--server", url))
    one_line_error(nothing, 6, "nothing unloaded")
    assert config.read_text() == original
    assert phases(archive) == [("unload", "begin", "alpha"), ("unload", "failed", "alpha")]


def test_a_file_edited_since_the_step_began_refuses_in_one_line(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    _, url = tfs
    archive = tmp_path / "archive"
    crashed = cli("unload", *args(present_lab, config, archive, "--server", url, "--apply"), crash_after=1)
    assert crashed.returncode == -9
    config.write_text(config.read_text() + "# edited by someone\n")
    run = run_cli(*undo_args(config, archive, "--server", url))
    one_line_error(run, 6, "neither what it was nor what retire wrote", "Put back")


def test_undo_after_the_file_was_edited_adds_the_versions_back(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    """Someone edits the file after the unload (a comment, and beta's policy): the kept original
    is not written over their edit; alpha's versions are added back to its list instead."""
    fake, url = tfs
    archive = tmp_path / "archive"
    assert run_cli("unload", *args(present_lab, config, archive, "--server", url, "--apply")).exit_code == 0
    edited = config.read_text().replace("num_versions: 3", "num_versions: 2") + "# theirs\n"
    config.write_text(edited)
    back = run_cli(*undo_args(config, archive, "--server", url))
    assert back.exit_code == 0, back.stderr
    text = config.read_text()
    assert "num_versions: 2" in text and text.endswith("# theirs\n")
    assert "specific { versions: 1 versions: 5 versions: 8 versions: 2 versions: 3 }" in text
    assert fake.available("alpha") == {"1", "2", "3", "5", "8"}


def test_undo_refuses_in_one_line_when_only_adding_cannot_do_it(
    present_lab: Lab, tree: Path, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    _fake, url = tfs
    archive = tmp_path / "archive"
    assert run_cli("unload", *args(present_lab, config, archive, "--server", url, "--apply")).exit_code == 0
    config.write_text(
        config.read_text().replace(
            "specific { versions: 1 versions: 5 versions: 8 }", "latest { num_versions: 1 }"
        )
    )
    run = run_cli(*undo_args(config, archive, "--server", url))
    one_line_error(run, 6, "cannot load alpha 2, 3 back", "would also load 5")
    assert "latest { num_versions: 1 }" in config.read_text()


def test_the_journal_is_untrusted(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    """A journal naming another file, a kept copy outside the archive, or a kept copy whose hash
    is not the journal's: refused, and nothing written anywhere."""
    _, url = tfs
    archive = tmp_path / "archive"
    assert run_cli("unload", *args(present_lab, config, archive, "--server", url, "--apply")).exit_code == 0
    journal = archive / "unload.jsonl"
    good = journal.read_text()
    victim = tmp_path / "victim.config"
    victim.write_text(config.read_text())

    def edit(change: Any) -> None:
        records = [json.loads(x) for x in good.splitlines()]
        for r in records:
            change(r)
        journal.write_text("".join(json.dumps(r) + "\n" for r in records))

    edit(lambda r: r["had"]["file"].update(config=str(victim)))
    one_line_error(run_cli(*undo_args(config, archive, "--server", url)), 6, "not in --model-config")
    edit(lambda r: r["had"]["file"].update(kept="../victim.config"))
    one_line_error(run_cli(*undo_args(config, archive, "--server", url)), 6, "not a plain file name")
    edit(lambda r: r["had"]["file"].update(before="0" * 64))
    one_line_error(run_cli(*undo_args(config, archive, "--server", url)), 6, "not named by the hash")
    # A kept copy replaced by other text (its name kept): not put back; alpha's versions are added.
    journal.write_text(good)
    kept = archive / json.loads(good.splitlines()[0])["had"]["file"]["kept"]
    evil = config.read_text().replace('base_path: "', 'base_path: "/evil')
    kept.write_text(evil)
    back = run_cli(*undo_args(config, archive, "--server", url))
    one_line_error(back, 6, "is not what the journal says")
    assert "/evil" not in config.read_text()


def test_a_symlinked_config_is_followed_and_stays_a_link(
    present_lab: Lab, config: Path, tmp_path: Path
) -> None:
    """A ConfigMap-style mount: --model-config is a link to the real file; the file is replaced,
    the link kept."""
    link = tmp_path / "link.config"
    link.symlink_to(config)
    archive = tmp_path / "archive"
    fake = FakeTFServing(link)
    with fake.running() as url:
        run = run_cli("unload", *args(present_lab, link, archive, "--server", url, "--apply"))
        assert run.exit_code == 0, run.stderr
        assert link.is_symlink() and "versions: 1 versions: 5 versions: 8" in config.read_text()
        assert fake.available("alpha") == {"1", "5", "8"}
        assert next(iter(journal_records(archive)))["had"]["file"]["config"] == str(config.resolve())
        assert run_cli(*undo_args(link, archive, "--server", url)).exit_code == 0
        assert fake.available("alpha") == {"1", "2", "3", "5", "8"}


def test_needs_model_config(tmp_path: Path) -> None:
    for preset in ("tfserving", "tfserving-patched"):
        run = run_cli(
            "unload", "--preset", preset, "--server", "http://127.0.0.1:9", "--archive-dir", str(tmp_path)
        )
        one_line_error(run, 2, "pass it with --model-config FILE")


def test_the_readme_shows_a_real_dry_run(
    present_lab: Lab, config: Path, tfs: tuple[FakeTFServing, str], tmp_path: Path
) -> None:
    _, url = tfs
    run = run_cli("unload", *args(present_lab, config, tmp_path / "archive", "--server", url))
    page = Path(__file__).resolve().parents[2] / "docs" / "offload-and-unload.md"  # README links it
    shown = (
        page.read_text(encoding="utf-8").split("<!-- unload-tfs-dry-run -->\n```\n", 1)[1].split("```", 1)[0]
    )
    assert run.stdout.replace(url, "http://tfs:8501").replace(str(config), "/etc/tfs/models.config") == shown

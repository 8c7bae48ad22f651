"""`actions.plan.make_plan` straight from hand-made reports over real directories: what may be moved,
where to, and every refusal, without a Prometheus (tests/actions/test_offload.py runs the whole
path through the CLI; the plan is made before anything moves, so it must refuse on its own)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from retire.actions.paths import check_archive
from retire.actions.plan import make_plan
from retire.advisor import Report, Status
from retire.advisor.plan import Plan
from retire.errors import OffloadError
from retire.escape import has_unsafe
from tests.builders import END, every_status, report, row


def _tree(root: Path, *versions: tuple[str, str]) -> None:
    for model, version in versions:
        (root / model / version).mkdir(parents=True)
        (root / model / version / "saved_model.pb").write_bytes(b"x" * 10)


def _listing(*paths: Path) -> list[tuple[str, int]]:
    out = []
    for top in paths:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in sorted(dirnames + filenames):
                p = Path(dirpath, name)
                out.append((str(p), p.lstat().st_mode))
    return sorted(out)


def _on(root: Path, *rows: dict[str, Any], **header: Any) -> Report:
    """A report over `root`: rows at the builder's default path (/models/...) are under `root`."""
    placed = [
        r | {"path": str(root / r["model"] / r["version"])}
        if r["path"] == f"/models/{r['model']}/{r['version']}"
        else r
        for r in rows
    ]
    return report(*placed, model_roots=(str(root),), **header)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path.resolve() / "models"  # resolved: the plan names real paths
    _tree(path, ("alpha", "1"), ("alpha", "2"), ("alpha", "3"), ("alpha", "4"), ("beta", "7"))
    return path


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return tmp_path.resolve() / "archive"


def test_only_safe_versions_move_to_the_archive_and_nothing_changes(root: Path, archive: Path) -> None:
    decided = [r for r in every_status() if r["status"] is not Status.UNKNOWN]  # see the next test
    rep = _on(root, *decided, row("beta", "7", size_bytes=None), evaluated_at=END)
    before = _listing(root.parent)
    plan = make_plan(rep, archive)
    assert _listing(root.parent) == before  # a plan moves nothing, creates nothing
    assert plan.archive == os.path.realpath(archive)
    assert plan.evaluated_at == END
    assert [(m.model, m.version, m.src, m.dst, m.size_bytes) for m in plan.moves] == [
        ("alpha", "1", str(root / "alpha" / "1"), f"{archive}/models/alpha/1", 1024),
        ("beta", "7", str(root / "beta" / "7"), f"{archive}/models/beta/7", 0),  # unknown size: 0
    ]


def test_unknown_evidence_refuses_the_whole_plan(root: Path, archive: Path) -> None:
    rep = _on(root, row("alpha", "1"), row("alpha", "2", Status.UNKNOWN), row("alpha", "3", Status.UNKNOWN))
    with pytest.raises(OffloadError) as e:
        make_plan(rep, archive)
    assert e.value.exit_code == 6
    assert e.value.message.startswith("2 version(s) are unknown (evidence incomplete); refusing to act")
    assert "--only MODEL:VERSION" in e.value.message


def test_only_moves_exactly_the_named_safe_versions_even_beside_unknown_ones(
    root: Path, archive: Path
) -> None:
    rep = _on(root, row("alpha", "1"), row("alpha", "2", Status.UNKNOWN), row("beta", "7"), row("alpha", "3"))
    plan = make_plan(rep, archive, only=(("beta", "7"), ("alpha", "1")))
    assert [(m.model, m.version) for m in plan.moves] == [("beta", "7"), ("alpha", "1")]


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.SAFE])
def test_only_refuses_a_version_that_is_not_safe(root: Path, archive: Path, status: Status) -> None:
    rep = _on(root, row("alpha", "1"), row("alpha", "2", status))
    with pytest.raises(OffloadError) as e:
        make_plan(rep, archive, only=(("alpha", "1"), ("alpha", "2")))
    assert e.value.message == f"--only alpha:2 is {status.value}, not safe: nothing was moved"


def test_only_refuses_a_version_not_in_the_report(root: Path, archive: Path) -> None:
    with pytest.raises(OffloadError, match=r"^--only alpha:9 is not found, not safe: nothing was moved$"):
        make_plan(_on(root, row("alpha", "1")), archive, only=(("alpha", "9"),))


def test_an_empty_or_all_busy_report_plans_nothing(root: Path, archive: Path) -> None:
    assert make_plan(report(), archive).moves == ()
    busy = _on(root, row("alpha", "1", Status.IN_USE), row("alpha", "2", Status.PROTECTED))
    assert make_plan(busy, archive).moves == ()


def test_a_model_root_named_through_a_symlink_is_resolved(root: Path, archive: Path, tmp_path: Path) -> None:
    link = tmp_path / "served"
    link.symlink_to(root)
    rep = report(row("alpha", "1", path=str(link / "alpha" / "1")), model_roots=(str(link),))
    (move,) = make_plan(rep, archive).moves
    assert move.src == str(root / "alpha" / "1")


def test_a_symlink_below_the_root_is_refused(root: Path, archive: Path) -> None:
    (root / "alpha" / "9").symlink_to(root / "alpha" / "1")
    with pytest.raises(OffloadError, match="is a symlink; retire never moves a version through a symlink"):
        make_plan(_on(root, row("alpha", "9")), archive)
    (root / "linked").symlink_to(root / "alpha")
    with pytest.raises(OffloadError, match="linked is a symlink"):
        make_plan(_on(root, row("linked", "1")), archive)


def test_paths_outside_the_roots_the_root_itself_and_missing_ones_are_refused(
    root: Path, archive: Path, tmp_path: Path
) -> None:
    _tree(tmp_path / "elsewhere", ("alpha", "1"))
    outside = report(
        row("alpha", "1", path=str(tmp_path / "elsewhere" / "alpha" / "1")), model_roots=(str(root),)
    )
    with pytest.raises(OffloadError, match="is not inside any model root; refusing to move it"):
        make_plan(outside, archive)
    itself = report(row("alpha", "1", path=str(root)), model_roots=(str(root),))
    with pytest.raises(OffloadError, match="is not inside any model root"):
        make_plan(itself, archive)
    dotted = report(row("alpha", "1", path=f"{root}/../elsewhere/alpha/1"), model_roots=(str(root),))
    with pytest.raises(OffloadError, match="is not inside any model root"):
        make_plan(dotted, archive)
    with pytest.raises(OffloadError, match=r"^cannot read .*/alpha/8: No such file or directory; alpha 8"):
        make_plan(_on(root, row("alpha", "8")), archive)


def test_a_safe_row_without_a_path_is_refused(root: Path, archive: Path) -> None:
    rep = report(row("alpha", "1", path=None), model_roots=(str(root),))
    with pytest.raises(OffloadError, match=r"^alpha 1 is not on disk; nothing to move$"):
        make_plan(rep, archive)


def test_a_file_is_refused_unless_it_is_a_model_archive(root: Path, archive: Path) -> None:
    (root / "ts").mkdir()
    (root / "ts" / "resnet.mar").write_bytes(b"PK")
    (root / "ts" / "notes.txt").write_text("x")
    (move,) = make_plan(_on(root, row("ts", "resnet.mar")), archive).moves
    assert move.dst == f"{archive}/models/ts/resnet.mar"
    with pytest.raises(OffloadError, match=r"is neither a directory nor a \.mar model archive"):
        make_plan(_on(root, row("ts", "notes.txt")), archive)


@pytest.mark.parametrize(
    ("model", "version", "what"),
    [
        ("..", "1", "model name '..'"),
        ("alpha", "..", "version '..'"),
        ("line\nbreak", "1", "model name 'line\\nbreak'"),
        ("esc\x1b[2J", "1", "model name 'esc\\x1b[2J'"),
        ("alpha", "tab\t1", "version 'tab\\t1'"),
        ("back\\slash", "1", "model name 'back\\\\slash'"),
        ("", "1", "model name ''"),
    ],
)
def test_names_that_are_not_one_plain_path_component_are_refused(
    root: Path, archive: Path, model: str, version: str, what: str
) -> None:
    rep = report(row(model, version, path=str(root / "alpha" / "1")), model_roots=(str(root),))
    with pytest.raises(OffloadError) as e:
        make_plan(rep, archive)
    assert e.value.message.startswith(f"{what} is not a safe directory name ("), e.value.message
    assert e.value.message.endswith("); refusing to move it")
    assert not has_unsafe(e.value.message)  # one line, whatever the name held


def test_a_version_directory_with_an_unsafe_name_is_refused(root: Path, archive: Path) -> None:
    (root / "alpha" / "odd\nname").mkdir()
    rep = report(row("alpha", "5", path=str(root / "alpha" / "odd\nname")), model_roots=(str(root),))
    with pytest.raises(OffloadError, match=r"^version directory 'odd\\nname' is not a safe directory name"):
        make_plan(rep, archive)


def test_the_archive_may_not_overlap_a_model_root(root: Path, tmp_path: Path) -> None:
    for inside in (root / "archive", root, tmp_path):
        with pytest.raises(OffloadError, match="overlaps the model root"):
            check_archive(inside, [str(root)])
    check_archive(tmp_path / "archive", [str(root)])


def test_a_plan_reads_back_as_written(root: Path, archive: Path) -> None:
    plan = make_plan(_on(root, row("alpha", "1"), row("beta", "7", size_bytes=None)), archive)
    text = plan.to_json()
    assert '"evaluated_at": "2023-11-14T22:13:20Z"' in text
    assert Plan.from_json(text, "plan.json") == plan

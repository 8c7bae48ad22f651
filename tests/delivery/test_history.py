"""`--since-last`: loading the previous report and comparing it with this one, from hand-made
reports and real files (the CLI tests run the same path against the Prometheus lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retire.advisor import Status
from retire.advisor.changes import Change, History, compare
from retire.delivery.history import load
from retire.formats import ReportFormat, render_report
from retire.formats.words import since_last as lines
from tests.builders import END, every_status, report, row

ODD = "x\x1b[2J\n<b>|\t"  # a name from a label: kept exactly in the state, escaped where shown


def test_a_first_run_has_no_changes() -> None:
    assert compare(None, report(*every_status())) == ()
    assert compare({}, report()) == ()


def test_became_safe_used_again_and_disappeared_in_order() -> None:
    previous = {
        ("beta", "1"): "in-use",
        ("alpha", "2"): "unknown",
        ("alpha", "3"): "safe",
        ("alpha", "4"): "protected",
        ("gone", "1"): "safe",
        ("gone", "2"): "in-use",
    }
    now = report(
        row("alpha", "2", Status.SAFE),
        row("alpha", "3", Status.IN_USE),
        row("alpha", "4", Status.IN_USE),
        row("beta", "1", Status.SAFE),
        row("new", "1", Status.SAFE),
    )
    assert compare(previous, now) == (
        Change("alpha", "2", "unknown", "safe", "became safe"),
        Change("beta", "1", "in-use", "safe", "became safe"),
        Change("new", "1", None, "safe", "became safe"),
        Change("gone", "1", "safe", None, "disappeared"),
        Change("gone", "2", "in-use", None, "disappeared"),
        Change("alpha", "3", "safe", "in-use", "used again"),
        Change("alpha", "4", "protected", "in-use", "used again"),
    )


def test_what_is_not_a_change() -> None:
    previous = {("a", "1"): "safe", ("a", "2"): "in-use", ("a", "3"): "safe", ("a", "4"): "unknown"}
    now = report(
        row("a", "1", Status.SAFE),  # still safe
        row("a", "2", Status.IN_USE),  # still in use
        row("a", "3", Status.UNKNOWN),  # no longer safe, but not in use either
        row("a", "4", Status.PROTECTED),
        row("a", "5", Status.IN_USE),  # new and in use: nothing to act on
        row("a", "6", Status.NOT_ON_DISK),
    )
    assert compare(previous, now) == ()


def test_names_are_compared_exactly() -> None:
    previous = {(ODD, "1"): "in-use", (ODD.upper(), "1"): "safe"}
    changes = compare(previous, report(row(ODD, "1", Status.SAFE)))
    assert changes == (
        Change(ODD, "1", "in-use", "safe", "became safe"),
        Change(ODD.upper(), "1", "safe", None, "disappeared"),
    )


def test_lines() -> None:
    assert lines(History(None, (), "previous report x unreadable (ValueError); starting afresh")) == [
        "since last report: previous report x unreadable (ValueError); starting afresh"
    ]
    assert lines(History(None, ())) == ["since last report: no previous report (first run)"]
    assert lines(History("2023-11-13T22:13:20Z", ())) == [
        "since last report (2023-11-13T22:13:20Z): no changes"
    ]
    changes = (Change("a", "1", None, "safe", "became safe"), Change("a", "2", "safe", None, "disappeared"))
    assert lines(History("2023-11-13T22:13:20Z", changes)) == [
        "since last report (2023-11-13T22:13:20Z):",
        "  became safe: a 1 (new)",
        "  disappeared: a 2 (was safe)",
    ]


def test_load_reads_back_what_the_json_report_wrote(tmp_path: Path) -> None:
    before = report(*every_status(), row(ODD, "7", Status.IN_USE), evaluated_at=END - 86400)
    path = tmp_path / "last.json"
    path.write_text(render_report(before, ReportFormat.JSON), encoding="utf-8")
    at, statuses, problem = load(path)
    assert (at, problem) == ("2023-11-13T22:13:20Z", None)
    assert statuses == {
        ("alpha", "1"): "safe",
        ("alpha", "2"): "in-use",
        ("alpha", "3"): "protected",
        ("alpha", "4"): "unknown",
        ("alpha", "5"): "not-on-disk",
        ("alpha", "6"): "unloaded",
        (ODD, "7"): "in-use",
    }
    after = report(row("alpha", "2", Status.SAFE), row(ODD, "7", Status.SAFE), row("alpha", "1"))
    assert [(c.model, c.version, c.kind) for c in compare(statuses, after)] == [
        ("alpha", "2", "became safe"),
        (ODD, "7", "became safe"),
        ("alpha", "3", "disappeared"),
        ("alpha", "4", "disappeared"),
        ("alpha", "5", "disappeared"),
        ("alpha", "6", "disappeared"),
    ]


def test_load_of_a_missing_file_is_a_first_run(tmp_path: Path) -> None:
    assert load(tmp_path / "never-written.json") == (None, None, None)


def test_load_keys_a_numeric_version_as_text(tmp_path: Path) -> None:
    path = tmp_path / "last.json"
    path.write_text(
        '{"header": {"evaluated_at": "t"}, "rows": [{"model": "m", "version": 3, "status": "safe"}]}'
    )
    assert load(path) == ("t", {("m", "3"): "safe"}, None)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"not json", "JSONDecodeError"),
        (b"\xff\xfe\x00garbage", "UnicodeDecodeError"),
        (b"[]", "TypeError"),
        (b"{}", "KeyError"),
        (b'{"header": {}, "rows": []}', "KeyError"),
        (b'{"header": {"evaluated_at": "t"}, "rows": [{"model": "m"}]}', "KeyError"),
        (b'{"header": {"evaluated_at": "t"}, "rows": 3}', "TypeError"),
        (b"[" * 100_000 + b"]" * 100_000, "RecursionError"),
    ],
)
def test_load_of_a_bad_file_starts_afresh_and_says_why(tmp_path: Path, content: bytes, error: str) -> None:
    path = tmp_path / "last.json"
    path.write_bytes(content)
    assert load(path) == (None, None, f"previous report {path} unreadable ({error}); starting afresh")


def test_load_of_a_directory_starts_afresh(tmp_path: Path) -> None:
    at, statuses, problem = load(tmp_path)
    assert (at, statuses) == (None, None)
    assert problem == f"previous report {tmp_path} unreadable (IsADirectoryError); starting afresh"

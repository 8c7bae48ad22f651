"""Versions `retire unload` unloaded (its journal, handed in as `unloaded`): the pure rule, on
hand-built evidence. After an unload a version's counter vanishes or freezes and calls to it fail
uncounted, so "no calls" is no proof: such a row is `unloaded`, never `safe`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from retire.advisor import Status, advise
from retire.advisor.report import Report, Unloaded
from retire.sources.disk.inventory import Inventory
from retire.sources.prometheus.evidence import SeriesFacts, VersionValue
from tests.advisor.test_verdicts import AT, NO_PROTECTION, disk, evidence

UNDO = "retire unload --undo --only a:1 --archive-dir /archive --server http://t:8000 --preset triton"
LONG_AGO = Unloaded(AT - 3 * 86400, "http://t:8000", UNDO)  # before the window: all of it is after
IN_WINDOW = Unloaded(AT - 3600 * 5, "http://t:8000", UNDO)  # five hours before the instant


def _report(ev: object, unloaded: dict[tuple[str, str], Unloaded], served: object = None) -> Report:
    inv = Inventory((Path("/m"),), (disk("a", 1), disk("a", 2)))
    return advise(inv, ev, NO_PROTECTION, generated_at=AT, served=served, unloaded=unloaded)  # type: ignore[arg-type]


def _idle() -> object:
    series = [SeriesFacts("a", str(v), (("pod", "p"),), 0, 0) for v in (1, 2)]
    return evidence(qps={("a", "1"): 0.0, ("a", "2"): 0.0}, series=series)


def _row(report: Report, version: str) -> tuple[str, str]:
    row = next(r for r in report.rows() if r.version == version)
    return row.status.value, row.reason


def test_an_unloaded_idle_version_is_unloaded_not_safe_and_says_how_to_load_it_back() -> None:
    report = _report(_idle(), {("a", "1"): LONG_AGO})
    status, reason = _row(report, "1")
    assert status == "unloaded"
    assert reason.startswith("unloaded by retire at ")
    assert "proves nothing" in reason and reason.endswith(f"`{UNDO}`")
    assert _row(report, "2")[0] == "safe"
    assert [r.version for r in report.safe_rows()] == ["2"]
    assert report.summary.counts["unloaded"] == 1
    assert report.summary.safe_bytes == 100  # only version 2's


def test_calls_counted_after_the_unload_are_clients_still_asking_and_the_row_stays_unloaded() -> None:
    series = [SeriesFacts("a", "1", (("pod", "p"),), 0, 40), SeriesFacts("a", "2", (("pod", "p"),), 0, 0)]
    ev = evidence(qps={("a", "1"): 0.5, ("a", "2"): 0.0}, series=series)
    status, reason = _row(_report(ev, {("a", "1"): LONG_AGO}), "1")
    assert status == "unloaded"
    assert "clients still asking (calls counted since)" in reason and UNDO in reason


def test_failed_calls_after_the_unload_are_clients_still_asking() -> None:
    ev = replace(_idle(), failed=(VersionValue("a", "1", 7.0),))  # type: ignore[type-var]
    status, reason = _row(_report(ev, {("a", "1"): LONG_AGO}), "1")
    assert status == "unloaded"
    assert "clients still asking (7 failed call(s) since)" in reason


def test_a_call_in_the_last_step_after_an_unload_inside_the_window_is_clients_still_asking() -> None:
    ev = evidence(
        qps={("a", "1"): 0.5, ("a", "2"): 0.0},
        last={("a", "1"): 0.2, ("a", "2"): 0.0},
        series=[SeriesFacts("a", "1", (("pod", "p"),), 0, 40)],
    )
    status, reason = _row(_report(ev, {("a", "1"): IN_WINDOW}), "1")
    assert status == "unloaded" and "clients still asking" in reason


def test_calls_that_may_predate_an_unload_inside_the_window_are_said_but_not_called_asking() -> None:
    ev = evidence(
        qps={("a", "1"): 0.5, ("a", "2"): 0.0},
        last={("a", "1"): 0.0, ("a", "2"): 0.0},
        series=[SeriesFacts("a", "1", (("pod", "p"),), 0, 40)],
    )
    status, reason = _row(_report(ev, {("a", "1"): IN_WINDOW}), "1")
    assert status == "unloaded"
    assert "clients still asking" not in reason and "before or after it" in reason


def test_a_version_the_server_lists_loaded_again_gets_its_ordinary_verdict() -> None:
    """Only the server it was unloaded from (`here`) clears it; another replica's word does not."""
    here = replace(LONG_AGO, here=True)
    served = {("a", "1"): True, ("a", "2"): True}
    assert _row(_report(_idle(), {("a", "1"): here}, served), "1")[0] == "safe"
    assert _row(_report(_idle(), {("a", "1"): LONG_AGO}, served), "1")[0] == "unloaded"
    served = {("a", "1"): False, ("a", "2"): True}
    assert _row(_report(_idle(), {("a", "1"): here}, served), "1")[0] == "unloaded"


def test_an_unloaded_version_no_longer_on_disk_is_not_on_disk() -> None:
    report = _report(_idle(), {("a", "9"): LONG_AGO})
    assert {r.version: r.status for r in report.rows()} == {"1": Status.SAFE, "2": Status.SAFE}
    series = [SeriesFacts("a", "9", (("pod", "p"),), 0, 0)]
    ev = evidence(qps={("a", "9"): 0.0}, series=series)
    assert _row(_report(ev, {("a", "9"): LONG_AGO}), "9")[0] == "not-on-disk"

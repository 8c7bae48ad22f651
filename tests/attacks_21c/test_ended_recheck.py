"""Flat series that ended in the window are re-read against their target's scrapes
(`raw_source._recheck_ended`): one created anew at its old value before it ended is in-use
(tests/attacks_21c's `recreated-then-ends-twin`); these are the other outcomes. A series that
just ended early (a restart with no call since) stays safe; one whose samples are stamped apart
from its target's scrapes, or one past the re-read bound, cannot be told and is `unknown`.

Same world as tests/attacks_21c: model m<i>, versions 1 and 2 (newest, protected); pod tfs-0
holds version 1's series flat all window, pod tfs-1 (same job) the series under test, version 1's
too. One real Prometheus 2.42, backfilled.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from retire.lab.servers import Prometheus, backfill
from retire.lab.synth import HOUR, make_model_tree
from retire.sources.prometheus import raw_source
from tests.attacks_21.history import METRIC, Pod, every
from tests.attacks_21c.test_unlabelled_attacks import BASE, START, Case, World, counter, write
from tests.conftest import rows, run_cli, statuses
from tests.scenarios import END

pytestmark = pytest.mark.prometheus

RESTART = END - 8 * HOUR


def _case(name: str, model: str, stamped_apart: bool = False) -> Case:
    base = {"job": name, "scenario": name}
    p0 = Pod(every(60, START, END, 30), {**base, "instance": "tfs-0"})
    p1 = Pod(every(60, START, END, 30), {**base, "instance": "tfs-1"})
    own = {"model_name": model, "model_version": "1"}
    times = None
    if stamped_apart:  # pushed or federated: its own stamps, 5 s after each scrape of tfs-1
        t, ok = p1.stored()
        times = t[ok] + 5.0
    # Its calls a day before the window; the restart wipes it, and no call comes since.
    ended = counter(p1, METRIC, own, BASE, (RESTART,), times=times)
    assert ended.times.size and ended.times.max() < RESTART
    return Case(name, model, [p0, p1], [counter(p0, METRIC, own, BASE), ended])


CASES = {c.name: c for c in (_case("ended-early", "e0"), _case("stamped-apart", "e1", stamped_apart=True))}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("ended")
    write(root / "history.om", CASES.values())
    backfill(root / "history.om", root / "tsdb")
    with Prometheus(root / "tsdb", root / "prometheus") as server:
        yield World(server.url, root)


def report(world: World, case: Case, *extra: str) -> dict[tuple[str, str], dict[str, object]]:
    models = world.root / "models" / case.name
    if not models.exists():
        make_model_tree(models, case.disk, END)
    args = ["--prometheus", world.url, "--model-dir", str(models), "--at", str(END)]
    run = run_cli("report", *args, "--selector", f'scenario="{case.name}"', "--format", "json", *extra)
    assert run.exit_code in (0, 4), run.stderr
    doc = run.json()
    assert isinstance(doc, dict)
    assert set(statuses(doc).values()) <= {"safe", "unknown", "in-use", "protected"}
    return rows(doc)


@pytest.mark.parametrize("extra", [(), ("--threshold", "0.001"), ("--split-by-model",)])
def test_a_series_that_ended_early_stays_safe(world: World, extra: tuple[str, ...]) -> None:
    row = report(world, CASES["ended-early"], *extra)[("e0", "1")]
    assert row["status"] == "safe", row


def test_a_series_stamped_apart_from_its_scrapes_cannot_be_told(world: World) -> None:
    row = report(world, CASES["stamped-apart"])[("e1", "1")]
    assert row["status"] == "unknown", row
    assert "ended and could not be re-read against them" in str(row["reason"]), row


def test_past_the_re_read_bound_a_series_cannot_be_told(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound on re-reads (1,000 series) set to none: the ended series is not re-read."""
    monkeypatch.setattr(raw_source, "MAX_RECHECK", 0)
    row = report(world, CASES["ended-early"])[("e0", "1")]
    assert row["status"] == "unknown", row
    assert "ended and could not be re-read against them" in str(row["reason"]), row


def test_the_stamps_are_apart() -> None:
    """The premise of the second case: no sample of the series at any scrape of tfs-1."""
    series = CASES["stamped-apart"].series[1]
    t, ok = CASES["stamped-apart"].pods[1].stored()
    assert not np.isin(series.times, t[ok]).any()

"""Series lacking the model or version label (issue #21's price): a flat one hides no call only
if it had a sample at exactly each successful scrape of its target. Pure: no server."""

from __future__ import annotations

import math

from retire.config import Settings, build
from retire.sources.prometheus.answers import QueryResult, Series, series_key
from retire.sources.prometheus.common import _unlabelled, flat_unlabelled
from retire.sources.prometheus.evidence import Unlabelled
from retire.sources.prometheus.targets import Targets

PARAMS = build.params_from(Settings())
POD = {"job": "tfs", "instance": "tfs-0"}
TARGET = series_key(POD)
NO_VERSION = {**POD, "model_name": "m"}
NO_MODEL = {**POD, "model_version": "1"}


def answer(rows: list[tuple[dict[str, str], float | None]]) -> QueryResult:
    return QueryResult("vector", tuple(Series(labels, v) for labels, v in rows))


def judged(rows: list[tuple[dict[str, str], float | None]], scrapes: float | None) -> Unlabelled:
    owner = {series_key(labels): TARGET for labels, _ in rows}
    targets = Targets(True, "up", 0.0, owner=owner, scrapes={} if scrapes is None else {TARGET: scrapes})
    return _unlabelled(answer(rows), PARAMS, targets)


def test_flat_series_present_at_every_scrape_hide_no_call() -> None:
    got = judged([(NO_VERSION, 1440), (NO_MODEL, 1440)], 1440)
    assert (got.no_version, got.no_model, got.flat) == ({}, 0, 2)


def test_a_series_that_missed_a_scrape_may_have_been_created_anew_or_ended() -> None:
    """Ended too: a labelled series that ends is read by its own queries, this one by none
    (created anew at its old value between two scrapes, then ended: tests/attacks_21c)."""
    got = judged([(NO_VERSION, 1000)], 1440)
    assert (got.no_version, got.flat) == ({"m": 1}, 0)


def test_a_series_sampled_more_often_than_its_up_is_not_that_targets() -> None:
    """Exposed every 30 s under a target scraped every 60 s (honor_labels): its samples outnumber
    the scrapes though it missed an hour (tests/attacks_21c)."""
    got = judged([(NO_VERSION, 2760)], 1440)
    assert (got.no_version, got.flat) == ({"m": 1}, 0)


def test_no_up_series_no_proof() -> None:
    """Its target's scrapes are not known (no `up`: federated or remote-written data)."""
    got = judged([(NO_MODEL, 1440)], None)
    assert (got.no_model, got.flat) == (1, 0)


def test_series_that_moved_or_answers_that_prove_nothing_may_hide_calls() -> None:
    for value in (-1440, None, math.nan, math.inf, 0):
        got = judged([(NO_VERSION, value)], 1440)
        assert (got.no_version, got.flat) == ({"m": 1}, 0), value


def test_only_flat_series_join_the_target_checks() -> None:
    other = {**POD, "model_name": "x"}
    assert flat_unlabelled(answer([(NO_VERSION, 1440), (NO_MODEL, -3), (other, math.nan)])) == [NO_VERSION]

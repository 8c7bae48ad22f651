"""Series lacking the model or version label (issue #21's price): a flat one hides no call only
if, still there at the end, it had a sample at every successful scrape of its target. Pure: no
server."""

from __future__ import annotations

import math

from retire.config import Settings, build
from retire.sources.prometheus.answers import QueryResult, Series, series_key
from retire.sources.prometheus.common import _unlabelled, flat_unlabelled
from retire.sources.prometheus.evidence import Unlabelled
from retire.sources.prometheus.runner import Answers
from retire.sources.prometheus.targets import Targets

PARAMS = build.params_from(Settings())
POD = {"job": "tfs", "instance": "tfs-0"}
TARGET = series_key(POD)
NO_VERSION = {**POD, "model_name": "m"}
NO_MODEL = {**POD, "model_version": "1"}
AT = 1_790_000_000.0


def answers(
    rows: list[tuple[dict[str, str], float | None]], ended: tuple[dict[str, str], ...] = ()
) -> Answers:
    now = [Series(labels, AT - 30) for labels, _ in rows if labels not in ended]
    return Answers(
        (),
        {
            "unlabelled_series": QueryResult("vector", tuple(Series(labels, v) for labels, v in rows)),
            "unlabelled_now": QueryResult("vector", tuple(now)),
        },
    )


def judged(
    rows: list[tuple[dict[str, str], float | None]], scrapes: float | None, **kw: object
) -> Unlabelled:
    owner = {series_key(labels): TARGET for labels, _ in rows}
    targets = Targets(True, "up", AT, owner=owner, scrapes={} if scrapes is None else {TARGET: scrapes})
    return _unlabelled(answers(rows, **kw), PARAMS, targets)  # type: ignore[arg-type]


def test_flat_series_present_at_every_scrape_hide_no_call() -> None:
    got = judged([(NO_VERSION, 1440), (NO_MODEL, 1440)], 1440)
    assert (got.no_version, got.no_model, got.flat) == ({}, 0, 2)


def test_a_series_still_there_that_missed_a_scrape_may_have_been_created_anew() -> None:
    got = judged([(NO_VERSION, 1000)], 1440)
    assert (got.no_version, got.flat) == ({"m": 1}, 0)


def test_a_flat_series_that_ended_hides_no_call() -> None:
    """As a labelled series: a TF Serving counter is gone after a restart until the next call,
    which would create it anew (seen)."""
    got = judged([(NO_VERSION, 1000)], 1440, ended=(NO_VERSION,))
    assert (got.no_version, got.flat) == ({}, 1)


def test_no_up_series_no_proof() -> None:
    """Still there at the end, but its target's scrapes are not known (no `up`: federated or
    remote-written data)."""
    got = judged([(NO_MODEL, 1440)], None)
    assert (got.no_model, got.flat) == (1, 0)


def test_series_that_moved_or_answers_that_prove_nothing_may_hide_calls() -> None:
    for value in (-1440, None, math.nan, math.inf, 0):
        got = judged([(NO_VERSION, value)], 1440)
        assert (got.no_version, got.flat) == ({"m": 1}, 0), value


def test_only_flat_series_join_the_target_checks_with_their_newest_sample() -> None:
    other = {**POD, "model_name": "x"}
    flat = flat_unlabelled(answers([(NO_VERSION, 1440), (NO_MODEL, -3), (other, math.nan)]))
    assert flat == [(NO_VERSION, AT - 30)]
    assert flat_unlabelled(answers([(NO_VERSION, 5)], ended=(NO_VERSION,))) == [(NO_VERSION, None)]

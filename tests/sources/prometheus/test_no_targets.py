"""`no_target_steps`: which steps Prometheus's own scrape-pool counts excuse (pure; the e2e
scenarios against a real Prometheus are in tests/e2e/test_no_targets.py)."""

from __future__ import annotations

from retire.sources.prometheus.answers import Series
from retire.sources.prometheus.no_targets import lead_steps, no_target_steps

RES = 60.0
START, END = 10_000.0, 10_000.0 + 20 * RES  # 21 steps, k = 0..20
LEAD = lead_steps(RES)  # 5


def pool(job: str, values: dict[int, float], **labels: str) -> Series:
    """A witness series: step index (negative: before the window) -> its largest count."""
    points = tuple((START + k * RES, v) for k, v in sorted(values.items()))
    return Series(
        {"__name__": "w", "job": "prometheus", "instance": "p", "scrape_job": job, **labels}, points=points
    )


def zeros(lo: int, hi: int) -> dict[int, float]:
    return dict.fromkeys(range(lo, hi + 1), 0.0)


SERIES = [{"job": "tfs", "instance": "a:1"}]


def test_steps_of_an_empty_pool_after_it_settled_are_excused() -> None:
    empty = no_target_steps(
        [pool("tfs", {**zeros(-LEAD, 9), **dict.fromkeys(range(10, 21), 1.0)})], SERIES, START, END, RES
    )
    assert empty is not None
    assert empty.steps == tuple([True] * 10 + [False] * 11)
    assert empty.jobs == ("tfs",)


def test_the_first_steps_after_the_witness_was_missing_are_not_excused() -> None:
    values = {**zeros(-LEAD, 3), **zeros(8, 20)}  # nothing stored in steps 4..7
    empty = no_target_steps([pool("tfs", values)], SERIES, START, END, RES)
    assert empty is not None
    assert [k for k, e in enumerate(empty.steps) if e] == [0, 1, 2, 3, *range(8 + LEAD, 21)]


def test_every_witness_of_the_job_must_be_zero() -> None:
    other = pool("tfs", {**zeros(-LEAD, 20), 12: 1.0}, replica="b")
    empty = no_target_steps([pool("tfs", zeros(-LEAD, 20)), other], SERIES, START, END, RES)
    assert empty is not None
    assert not empty.steps[12] and empty.steps[11] and empty.steps[13]


def test_every_job_of_the_metric_needs_its_own_witness() -> None:
    both = [*SERIES, {"job": "canary", "instance": "b:1"}]
    assert no_target_steps([pool("tfs", zeros(-LEAD, 20))], both, START, END, RES) is None
    witnesses = [pool("tfs", zeros(-LEAD, 20)), pool("canary", {**zeros(-LEAD, 20), 5: 2.0})]
    empty = no_target_steps(witnesses, both, START, END, RES)
    assert empty is not None
    assert empty.jobs == ("canary", "tfs") and not empty.steps[5] and empty.steps[6]


def test_a_witness_whose_labels_the_series_lack_vouches_for_nothing() -> None:
    series = [{"job": "tfs", "instance": "a:1", "cluster": "east"}]
    assert no_target_steps([pool("tfs", zeros(-LEAD, 20), cluster="west")], series, START, END, RES) is None
    assert (
        no_target_steps([pool("tfs", zeros(-LEAD, 20), cluster="east")], series, START, END, RES) is not None
    )


def test_series_without_a_job_or_no_series_excuse_nothing() -> None:
    witness = [pool("", zeros(-LEAD, 20))]
    assert no_target_steps(witness, [{"instance": "a:1"}], START, END, RES) is None
    assert no_target_steps(witness, [], START, END, RES) is None


def up_of(job: str, values: dict[int, float]) -> Series:
    """A job's lowest `up` per step (index -> value), as `up_promql` answers."""
    return Series({"job": job}, points=tuple((START + k * RES, v) for k, v in sorted(values.items())))


def test_a_pool_that_held_none_while_its_job_was_scraped_is_not_the_jobs_pool() -> None:
    """A job label relabelled onto the name of another, empty pool (or a pool of another
    cluster with the same job name): the job's targets were scraped while it counted 0."""
    witness = [pool("tfs", zeros(-LEAD, 20))]
    assert no_target_steps(witness, SERIES, START, END, RES, [up_of("tfs", {15: 1.0})]) is None


def test_another_pool_of_the_same_prometheus_with_targets_not_scraped_well_blocks_the_step() -> None:
    """A job with no series of the metric whose targets failed (up 0) or were not stored while its
    pool held them: they may have served the metric."""
    witness = [pool("tfs", zeros(-LEAD, 20)), pool("other", dict.fromkeys(range(-LEAD, 21), 1.0))]
    up = [up_of("other", {**{k: 1.0 for k in range(-LEAD, 21) if k != 12}, 4: 0.0})]
    empty = no_target_steps(witness, SERIES, START, END, RES, up)
    assert empty is not None
    assert [k for k, e in enumerate(empty.steps) if not e] == [4, 12]
    # A pool of another Prometheus (another instance) does not block.
    elsewhere = pool("other", dict.fromkeys(range(-LEAD, 21), 1.0))
    elsewhere = Series({**elsewhere.labels, "instance": "q"}, points=elsewhere.points)
    empty = no_target_steps([witness[0], elsewhere], SERIES, START, END, RES, up)
    assert empty is not None and all(empty.steps)

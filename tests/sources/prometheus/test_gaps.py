from __future__ import annotations

from retire.sources.prometheus.answers import Series
from retire.sources.prometheus.gaps import global_gaps, target_gaps


def series(
    labels: dict[str, str], present: list[int], value: float = 1.0, down: tuple[int, ...] = ()
) -> Series:
    return Series(labels, points=tuple((float(k * 60), 0.0 if k in down else value) for k in present))


def test_global_gap_edges_and_tolerance() -> None:
    s = [series({"i": "a"}, [k for k in range(0, 101) if not 10 <= k < 30])]
    gaps = global_gaps(s, 0, 6000, 60, max_gap=900)
    assert [(g.start, g.end, g.at_most) for g in gaps] == [(540.0, 1740.0, 1320.0)]
    # 20 empty intervals: the samples beside them may be up to 22 intervals apart (here they are
    # 21: 540 and 1800), so --max-gap 20m does not tolerate it, 22m does.
    assert len(global_gaps(s, 0, 6000, 60, max_gap=1200)) == 1
    assert global_gaps(s, 0, 6000, 60, max_gap=1320) == []
    late = [series({"i": "a"}, list(range(50, 101)))]
    assert global_gaps(late, 0, 6000, 60, 900)[0].start == 0


def test_targets_born_late_are_not_gaps_but_down_is() -> None:
    new_pod = series({"instance": "new"}, list(range(60, 101)))
    flaky = series({"instance": "flaky"}, list(range(0, 101)), down=tuple(range(40, 70)))
    gaps = target_gaps([new_pod, flaky], 0, 6000, 60, 900)
    assert [(g.target, g.kind) for g in gaps] == [('instance="flaky"', "down")]


def test_a_target_scraped_before_the_window_that_shows_up_late_had_a_hole_not_a_birth() -> None:
    # Scraped before the window (`before`), then nothing until minute 40: a restart in that hole
    # would have lost the calls taken before it. A target first seen then is a new pod.
    late = series({"instance": "late"}, list(range(40, 101)))
    assert target_gaps([late], 0, 6000, 60, 900) == []
    gaps = target_gaps([late], 0, 6000, 60, 900, before={(("instance", "late"),)})
    assert [(g.target, g.kind, g.start, g.end) for g in gaps] == [
        ('instance="late"', "no samples", 0.0, 2340.0)
    ]
    # A shorter hole at the start is tolerated as any other.
    soon = series({"instance": "soon"}, list(range(10, 101)))
    assert target_gaps([soon], 0, 6000, 60, 900, before={(("instance", "soon"),)}) == []


def test_up_values_other_than_one_are_down_and_non_finite_counts_are_no_data() -> None:
    # `up` is 1 or 0: NaN or -1 (a proxy, a bad recording rule) is no proof the target was up.
    for bad in (float("nan"), -1.0, 0.5):
        odd = Series(
            {"instance": "odd"},
            points=tuple((float(k * 60), bad if 40 <= k < 70 else 1.0) for k in range(101)),
        )
        gaps = target_gaps([odd], 0, 6000, 60, 900)
        assert [(g.target, g.kind) for g in gaps] == [('instance="odd"', "down")], bad
    # A count of series that is 0 or NaN is not a sample.
    zero = Series({}, points=tuple((float(k * 60), 0.0 if 40 <= k < 70 else 1.0) for k in range(101)))
    assert len(global_gaps([zero], 0, 6000, 60, 900, min_value=1)) == 1


def test_coverage_cannot_be_related_to_a_metric_without_instance_labels() -> None:
    from retire.sources.prometheus.answers import QueryResult
    from retire.sources.prometheus.coverage import target_coverage
    from retire.sources.prometheus.promql import Matcher, Selector
    from retire.sources.prometheus.queries import QueryParams

    params = QueryParams(
        "m",
        "model_name",
        "model_version",
        (),
        86400,
        3600,
        60,
        Selector("up", (Matcher("job", "=", "other"),)),
    )
    up = QueryResult("matrix", (series({"job": "other", "instance": "n1"}, list(range(0, 1441))),))
    at = 1440 * 60.0
    ok = target_coverage(up, params, at, 900, {("other", "n1"): "{}"})
    assert ok.problem is None
    vacuous = target_coverage(up, params, at, 900, {None: "{model_name='a'}"})
    assert vacuous.problem is not None and "without an instance label" in vacuous.problem
    other_job = target_coverage(up, params, at, 900, {("tfs", "n1"): "{}"})
    assert other_job.problem is not None and 'job="tfs",instance="n1"' in other_job.problem


def test_excused_steps_trim_a_hole_to_one_stretch_but_never_cut_it_into_pieces() -> None:
    present = [k for k in range(0, 101) if not 10 <= k < 40]  # a 30-step hole (steps 10..39)
    s = [series({"i": "a"}, present)]
    # Excused from its start to step 35: 4 steps left, under the 15-step tolerance.
    trimmed = [10 <= k < 36 for k in range(101)]
    assert global_gaps(s, 0, 6000, 60, max_gap=900, excused=trimmed) == []
    # Excused steps in its middle would leave two short pieces: the hole stays whole.
    cut = [20 <= k < 30 for k in range(101)]
    assert [(g.start, g.end) for g in global_gaps(s, 0, 6000, 60, max_gap=900, excused=cut)] == [
        (540.0, 2340.0)
    ]


def test_a_hole_is_any_time_without_a_successful_scrape_and_may_be_longer_than_its_run() -> None:
    """Down (up = 0) and lost (no sample) stretches in a row are one hole; and the samples beside a
    run of empty intervals may lie anywhere in the intervals next to it."""
    pieces = Series(
        {"instance": "a"},
        points=tuple(
            (float(k * 60), 0.0 if 40 <= k < 50 or 60 <= k < 70 else 1.0)
            for k in range(101)
            if not 50 <= k < 60
        ),
    )
    (gap,) = target_gaps([pieces], 0, 6000, 60, 900)
    assert (gap.kind, gap.start, gap.end) == ("down or no samples", 2340.0, 4140.0)
    lost = series({"instance": "b"}, [k for k in range(101) if not 40 <= k < 44])  # 4 intervals
    assert target_gaps([lost], 0, 6000, 60, 240)[0].at_most == 360.0
    assert target_gaps([lost], 0, 6000, 60, 360) == []

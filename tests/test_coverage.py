from __future__ import annotations

from retire.coverage import global_gaps, target_gaps
from retire.prometheus import Series


def series(labels: dict[str, str], present: list[int], value: float = 1.0, down: tuple[int, ...] = ()) -> Series:
    return Series(labels, points=tuple((float(k * 60), 0.0 if k in down else value) for k in present))


def test_global_gap_edges_and_tolerance() -> None:
    s = [series({"i": "a"}, [k for k in range(0, 101) if not 10 <= k < 30])]
    gaps = global_gaps(s, 0, 6000, 60, max_gap=900)
    assert [(g.start, g.end) for g in gaps] == [(540.0, 1740.0)]
    assert global_gaps(s, 0, 6000, 60, max_gap=1200) == []
    late = [series({"i": "a"}, list(range(50, 101)))]
    assert global_gaps(late, 0, 6000, 60, 900)[0].start == 0


def test_targets_born_late_are_not_gaps_but_down_is() -> None:
    new_pod = series({"instance": "new"}, list(range(60, 101)))
    flaky = series({"instance": "flaky"}, list(range(0, 101)), down=tuple(range(40, 70)))
    gaps = target_gaps([new_pod, flaky], 0, 6000, 60, 900)
    assert [(g.target, g.kind) for g in gaps] == [('instance="flaky"', "down")]

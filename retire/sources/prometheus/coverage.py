"""Whether the data covers the window: holes in the metric itself and, with --coverage, in the
targets' `up` series (`gaps.py` finds the holes; here they become a `Coverage` with its problem).

Coverage of other targets than those exporting the metric would pass vacuously, so every target
(job and instance) that exported the metric in the window must be among the covered ones.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from retire.durations import format_duration
from retire.sources.prometheus.answers import QueryResult, Series, SeriesKey
from retire.sources.prometheus.evidence import Coverage
from retire.sources.prometheus.gaps import global_gaps, target_gaps
from retire.sources.prometheus.queries import QueryParams

Target = tuple[str, str]  # (job, instance): a scrape target, as `up` and the metric both carry it


def target_of(labels: dict[str, str]) -> Target | None:
    if "instance" not in labels:
        return None
    return (labels.get("job", ""), labels["instance"])


def _target_text(target: Target) -> str:
    job, instance = target
    return f'job="{job}",instance="{instance}"' if job else f'instance="{instance}"'


def metric_holes(
    result: QueryResult, params: QueryParams, at: float, max_gap: float, excused: Sequence[bool] = ()
) -> Coverage:
    """Holes in the metric itself: intervals where no series of it had a sample (`excused` steps
    had nothing to scrape, `no_targets.py`)."""
    start = at - params.window
    gaps = global_gaps(result.series, start, at, params.resolution, max_gap, min_value=1, excused=excused)
    problem = too_coarse(params, max_gap)
    return Coverage(False, params.series_selector, max_gap, tuple(gaps), 0, problem=problem)


def too_coarse(params: QueryParams, max_gap: float) -> str | None:
    """A hole is seen only if it spans a whole interval of the range query: intervals longer
    than half of --max-gap (a long window at the server's point limit) could hide one."""
    if 2 * params.resolution <= max_gap:
        return None
    return (
        f"at --window {format_duration(params.window)} the data is checked every "
        f"{format_duration(params.resolution)}, too coarse to find holes longer than --max-gap "
        f"{format_duration(max_gap)}: raise --max-gap to {format_duration(2 * params.resolution)} "
        "or shorten --window"
    )


def target_coverage(
    result: QueryResult,
    params: QueryParams,
    at: float,
    max_gap: float,
    exporters: dict[Target | None, str],
    excused: Sequence[bool] = (),
    before: Collection[SeriesKey] = (),
) -> Coverage:
    """Per-target coverage with --coverage. `exporters`: every target that exported the metric in
    the window (None: series without an `instance` label), with an example series for messages;
    `excused`: steps with nothing to scrape (`no_targets.py`), no hole across every target;
    `before`: the targets scraped in the window before this one (`gaps.target_gaps`)."""
    assert params.coverage is not None
    start = at - params.window
    series: tuple[Series, ...] = result.series
    selector = params.coverage.render()
    if not series:
        return Coverage(
            True, selector, max_gap, (), 0, problem=f"--coverage {selector} matched no series in the window"
        )
    gaps = global_gaps(series, start, at, params.resolution, max_gap, min_value=0, excused=excused)
    gaps += target_gaps(series, start, at, params.resolution, max_gap, before)
    problem = too_coarse(params, max_gap)
    if None in exporters:
        problem = (
            f"the metric has series without an instance label ({exporters[None]}), so --coverage {selector} "
            "cannot be related to the targets that export it: drop --coverage (the metric's own holes are "
            "checked) or keep the instance label"
        )
    # Coverage of other targets than those exporting the metric would pass vacuously: every target
    # (job and instance) that exported the metric in the window must be among the covered ones.
    covered = {target_of(s.labels) for s in series}
    uncovered = sorted(t for t in exporters if t is not None and t not in covered)
    if uncovered and problem is None:
        covered_jobs = {t[0] for t in covered if t is not None}
        example = ", ".join(
            f'instance="{t[1]}"' if t[0] in covered_jobs else _target_text(t) for t in uncovered[:3]
        )
        problem = (
            f"--coverage {selector} does not cover {len(uncovered)} target(s) that export the metric "
            f"({example}); widen the selector"
        )
    return Coverage(True, selector, max_gap, tuple(gaps), len(series), problem=problem)

"""Evidence from the recording rules of `retire rules` (README "Recording rules for large fleets").

Each aspect per version is read over the window from the rollups, since the last rollup from the
fine series, and raw at the instant (`rule_tail`: the span since the fine rule's last evaluation);
its highest value counts (`rules_facts.py`). Both heartbeats stand for the metric's own holes
(the rollups' tolerates none), and what the rules cover is checked against this report's options
and the scrape interval the server names (`_rule_checks`); the targets at the window's end are
judged as from raw series.
"""

from __future__ import annotations

from dataclasses import replace

from retire.durations import format_duration
from retire.sources.prometheus.answers import QueryResult, Series
from retire.sources.prometheus.client import PrometheusClient
from retire.sources.prometheus.common import Reading, begin, finish, flat_unlabelled, hourly
from retire.sources.prometheus.coverage import Target, target_coverage
from retire.sources.prometheus.evidence import Coverage, Evidence, Request, holes_longer
from retire.sources.prometheus.gaps import global_gaps
from retire.sources.prometheus.instrument import Instrument
from retire.sources.prometheus.queries import (
    LOOKBACK_LABEL,
    QueryParams,
    recorded_selector,
    report_queries,
    tolerated_gap,
)
from retire.sources.prometheus.recording import check_loaded, parse_lookback
from retire.sources.prometheus.rules_facts import recorded_aspects, recorded_facts
from retire.sources.prometheus.runner import run_plan
from retire.sources.prometheus.targets import LabelSet
from retire.sources.prometheus.up import gather_targets


def gather(client: PrometheusClient, params: QueryParams, request: Request) -> Evidence:
    """Run the queries on the recorded series concurrently and read their answers (`gather.gather`
    says more). A query too big for the server is not split by model: it fails."""
    assert params.rules is not None
    at, max_gap = request.at, request.max_gap
    start = begin(client, params, at)
    answers = run_plan(
        client,
        params,
        request,
        lambda p: report_queries(p, request.sparklines),
        "a query on the recorded series is too big",
    )
    instrument = start.instrument()
    # No raw series read: it asks the index (and for the series lacking a label, flat all window).
    flat = flat_unlabelled(answers["unlabelled_series"])
    targets = gather_targets(client, params, at, instrument, also=flat, max_gap=max_gap)
    aspects = recorded_aspects(
        (answers["recorded_window"], answers["recorded_recent"], answers["rule_tail"]), params
    )
    steps = {q.name: q.step for q in answers.planned}
    coverage, checks = _recorded_coverage(
        answers.results, steps, params, at, max_gap, start.exporters, targets.before
    )
    # A series back after a gap longer than the step looks born (README): then first calls
    # are only a doubt, and are left out of the bound on the busiest step.
    returns = holes_longer(params.step, (coverage, *checks), targets.holes or ())
    max_qps, recorded = recorded_facts(aspects, params.step, returns)
    problems, notes = _rule_checks(params, answers.results, instrument, start.exporters, at, max_gap)
    reading = Reading(
        max_qps=max_qps,
        coverage=coverage,
        targets=targets,
        checks=checks,
        recorded=recorded,
        hourly=hourly(answers["recorded_hourly"], params, at) if request.sparklines else None,
        rule_problems=problems,
        notes=tuple(notes),
    )
    return finish(client, params, at, start, answers, reading)


def _rule_checks(
    params: QueryParams,
    results: dict[str, QueryResult],
    instrument: Instrument,
    exporters: dict[Target | None, str],
    at: float,
    max_gap: float,
) -> tuple[tuple[str, ...], list[str]]:
    """Whether the recorded series can hold what this report tolerates: problems (every
    would-be-safe row unknown) and notes. The rules the server runs must be these options'
    (`check_loaded`); the step must hold two scrapes plus a rule interval, or the recorded rate
    sees nothing; the rules' lookback (recorded with each series) must span a step, a scrape
    interval and the longest gap between evaluations that --max-gap lets pass unseen."""
    assert params.rules is not None
    spec = params.rules
    loaded = check_loaded(params, instrument.rules, at)
    problems, notes = list(loaded.problems), list(loaded.notes)
    recorded = [
        s
        for name in ("recorded_window", "recorded_recent", "recorded_present", "recorded_rollups")
        for s in results[name].series
    ]
    if not recorded:
        return tuple(problems), notes  # the heartbeats say so: no recorded series at all
    scrape = instrument.longest_of(sorted(t for t in exporters if t is not None))
    if scrape is not None and params.step < 2 * scrape + spec.interval:
        least = format_duration(2 * scrape + spec.interval)
        problems.append(
            f"--step {format_duration(params.step)} cannot hold two scrapes (the server scrapes every "
            f"{format_duration(scrape)}) plus a rule interval ({format_duration(spec.interval)}), so the "
            f"recorded rate misses calls: make the rules and the report with --step {least} or more"
        )
    _check_lookback(params, recorded, scrape, max_gap, problems, notes)
    return tuple(dict.fromkeys(problems)), notes


def _check_lookback(
    params: QueryParams,
    recorded: list[Series],
    scrape: float | None,
    max_gap: float,
    problems: list[str],
    notes: list[str],
) -> None:
    """The rules' lookback (the shortest recorded) must span a step, a scrape interval (where not
    learned, the rules' own assumption) and the longest tolerated gap between evaluations; what
    is wrong goes to `problems`, what was assumed to `notes`."""
    assert params.rules is not None
    lookbacks = [parse_lookback(s.labels.get(LOOKBACK_LABEL, "")) for s in recorded]
    if None in lookbacks:
        problems.append(
            f"recorded series lack a readable {LOOKBACK_LABEL} label (rules made by an older retire or by "
            "hand), so what they cover cannot be checked: load the rules `retire rules` prints"
        )
        return
    lookback = min(v for v in lookbacks if v is not None)
    gap = tolerated_gap(params.window, max_gap, params.rules.interval)
    if scrape is None:  # the rules' own assumption, stated in their file: noted, not checked
        scrape = max(lookback - params.step - gap, 0.0)
        notes.append(
            f"scrape interval not learned: the recording rules' lookback ({format_duration(lookback)}) "
            f"was checked assuming scrapes every {format_duration(scrape)} at most"
        )
    need = params.step + scrape + gap
    if lookback < need:
        problems.append(
            f"the recording rules read back {format_duration(lookback)} ({LOOKBACK_LABEL}), less than a "
            f"step, a scrape interval ({format_duration(scrape)}) and the longest gap between evaluations "
            f"that --max-gap {format_duration(max_gap)} lets pass ({format_duration(gap)}), "
            f"{format_duration(need)} in all, so calls in such a gap may be unrecorded: make the rules "
            "with this --max-gap and --window and `retire rules --prometheus URL`, or lower --max-gap"
        )


def _heartbeat(
    result: QueryResult, selector: str, at: float, window: float, resolution: float, max_gap: float
) -> Coverage:
    """Holes in a recorded heartbeat; none at all means the rules are not there."""
    if not result.series:
        problem = (
            f"no recorded series {selector} in the window: load the rules `retire rules` prints "
            "(same --metric, labels, --selector and --step), or drop --use-recording-rules"
        )
        return Coverage(False, selector, max_gap, (), 0, problem=problem)
    gaps = global_gaps(result.series, at - window, at, resolution, max_gap)
    return Coverage(False, selector, max_gap, tuple(gaps))


def _recorded_coverage(
    results: dict[str, QueryResult],
    steps: dict[str, float],
    params: QueryParams,
    at: float,
    max_gap: float,
    exporters: dict[Target | None, str],
    before: frozenset[LabelSet],
) -> tuple[Coverage, tuple[Coverage, ...]]:
    """The fine heartbeat stands for metric_presence; the rollup heartbeat tolerates nothing:
    two rollups further apart than one rollup's range leave fine samples that neither read.
    `steps`: each heartbeat query's resolution, as planned; `before`: the targets scraped in
    the window before this one (`gaps.target_gaps`)."""
    assert params.rules is not None
    fine = _heartbeat(
        results["recorded_present"],
        recorded_selector(params, aspect="present"),
        at,
        params.window,
        steps["recorded_present"],
        max_gap,
    )
    rollups = _rollup_heartbeat(results["recorded_rollups"], params, at, steps["recorded_rollups"])
    if params.coverage is None:
        return fine, (rollups,)
    cover = target_coverage(results["coverage"], params, at, max_gap, exporters, before=before)
    return cover, (fine, rollups)


def _rollup_heartbeat(result: QueryResult, params: QueryParams, at: float, step: float) -> Coverage:
    """Each point of the rollup heartbeat asks for a rollup within `reach` before it (the query's
    range); a point without one is a stretch of fine samples no rollup may have read. Reported
    from the last rollup seen to the point, as a hole longer than one rollup interval."""
    assert params.rules is not None
    spec = params.rules
    selector = recorded_selector(params, True, "present")
    found = _heartbeat(result, selector, at, params.window, step, 0.0)
    reach = spec.rollup_range - step
    gaps = tuple(replace(g, start=g.start + step - reach) for g in found.gaps)
    problem = found.problem
    if problem is None and reach < spec.rollup:
        problem = (
            f"at --window {format_duration(params.window)} the rollups can be checked only every "
            f"{format_duration(step)}, too coarse to prove that every fine sample was rolled up: raise "
            "--rule-interval (and make the rules with it) or shorten --window"
        )
    return Coverage(False, selector, spec.rollup, gaps, 0, problem=problem, in_data=False)

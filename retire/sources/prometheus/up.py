"""Asking Prometheus for the `up` series of the metric's targets, and judging them (`targets.py`).

Every target that could hold calls is read from the `up` series Prometheus writes per scrape:
recent raw samples (its scrape interval), the series over the window (its last scrape, whether it
ended on a good one), its successful scrapes in the window, and with per-step evidence the same at
each step boundary. A target that ended is shown gone only by another target of the fleet scraped
right after it, by Prometheus's own staleness marker, or by Prometheus storing its own count of the
job's scrape pool right after it (`_confirm_gone`), one small query each.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from retire.durations import promql_duration
from retire.sources.prometheus.answers import QueryResult, Series, series_key
from retire.sources.prometheus.buckets import StepGrid, on_grid
from retire.sources.prometheus.client import PrometheusClient
from retire.sources.prometheus.gaps import Gap, target_gaps
from retire.sources.prometheus.instrument import NOTHING, Instrument
from retire.sources.prometheus.no_targets import vouches, witness_of
from retire.sources.prometheus.promql import Matcher
from retire.sources.prometheus.queries import QueryParams, render
from retire.sources.prometheus.targets import (
    GONE,
    RECENT,
    STALE,
    LabelSet,
    Targets,
    TargetState,
    grace,
    judge,
    plausible,
    same_pipeline,
)

# How far before the window a target's scrapes make it one that existed at the window's start (or
# the window, if longer): one first seen later in the window had a hole there, not a birth.
BEFORE = 86400.0

# Targets whose end is checked sample by sample (one small query each); past this many, the rest
# cannot be shown gone.
MAX_ENDED = 50


def _re2_literal(text: str) -> str:
    """A regex (RE2) matching exactly `text`."""
    return "".join("\\" + ch if ch in r"\.+*?()|[]{}^$" else ch for ch in text)


def up_selector(params: QueryParams, metric_series: Iterable[dict[str, str]]) -> str:
    """The `up` series to read: --coverage's selector when given, else `up` of the jobs (or, with no
    job label, the instances) the metric's series name. "" when they name neither."""
    if params.coverage is not None:
        return params.coverage.render()
    for label in ("job", "instance"):
        values = sorted({s[label] for s in metric_series if s.get(label)})
        if values:
            regex = "|".join(_re2_literal(v) for v in values)
            return f"up{{{Matcher(label, '=~', regex).render()}}}"
    return ""


def gather_targets(
    client: PrometheusClient,
    params: QueryParams,
    at: float,
    instrument: Instrument = NOTHING,
    metric_series: Sequence[dict[str, str]] | None = None,
    newest: dict[LabelSet, float] | None = None,
    steps: StepGrid | None = None,
    also: Sequence[dict[str, str]] = (),
    max_gap: float | None = None,
) -> Targets:
    """Ask Prometheus for the `up` series of the metric's targets and judge each at the instant.
    `metric_series`: the label sets of the metric's series in the window; `newest`: each one's
    newest sample at or before the instant (the `series_now` query). Asked for here when not given
    (with recording rules, which read no raw series: the index and one instant lookup).
    `instrument`: what the server says of its targets: the scrape interval its configuration names
    for each (used where the `up` samples do not show one), and its query lookback, the targets it
    scrapes itself and its own jobs, so that staleness markers can be read (`_confirm_gone`).
    `also`: series outside the metric's selector whose targets must reach the end too (series
    lacking a label, flat all window: `common.flat_unlabelled`); each has a sample at every
    successful scrape of its target, so the target's `up` says when it was last scraped.
    `max_gap`: without --coverage, each target's holes longer than it are found here from its `up`
    (with --coverage, from its selector: `coverage.target_coverage`)."""
    if metric_series is None:
        metric_series = client.series(params.series_selector, at - params.window, at).series
    if newest is None:
        now = client.query(render("series_now", params), at)
        newest = {series_key(s.labels): s.value for s in now.series if s.value is not None}
    if also:
        metric_series = [*metric_series, *also]
    # A sample's time is at or before the instant: any other answer (NaN, +Inf, the future) is
    # no proof of a scrape.
    newest = {k: t for k, t in newest.items() if plausible(t, at)}
    if not metric_series and params.coverage is None:
        return Targets(False, "", at)
    selector = up_selector(params, metric_series)
    holes = params.coverage is None and max_gap is not None
    if not selector:  # no `up` to read: every target is one of its own, whose holes cannot be seen
        states, owner = judge(at, metric_series, newest, (), (), (), lambda _: False, instrument.configured)
        return Targets(True, "", at, states, owner=owner, holes=() if holes else None)
    up = _ask(client, params, selector, at, steps, holes)
    series = (up.recent.series, up.times.series, up.values.series)
    states, owner = judge(at, metric_series, newest, *series, _declared(params), instrument.configured)
    before = frozenset(series_key(s.labels) for s in up.before.series if s.value)
    ended = [t for t in states if t.state == GONE]
    fleet_targets = {t.labels for t in states}
    confirmed = _confirm_gone(client, selector, ended[:MAX_ENDED], fleet_targets, at, instrument)
    states = tuple(t if t.state != GONE or t.labels in confirmed else replace(t, state=STALE) for t in states)
    up_steps, step_counts, step_successes = _per_step(up, steps)
    return Targets(
        True,
        selector,
        at,
        states,
        tuple(dict.fromkeys(w for a in up.answers for w in a.warnings)),
        any(a.partial for a in up.answers),
        owner,
        up_steps,
        {series_key(s.labels): s.value for s in up.scrapes.series if s.value is not None},
        step_counts=step_counts,
        step_successes=step_successes,
        before=before,
        holes=None
        if up.lowest is None or max_gap is None
        else _holes(up.lowest, states, params, at, max_gap, before),
    )


def _holes(
    lowest: QueryResult,
    states: Sequence[TargetState],
    params: QueryParams,
    at: float,
    max_gap: float,
    before: frozenset[LabelSet],
) -> tuple[Gap, ...]:
    """Each target's holes longer than `max_gap` in the window, from its `up` series: a restart
    inside one would lose, unseen, the calls the target took before it (README "How verdicts are
    made")."""
    judged = {t.labels for t in states if t.has_up}
    mine = [s for s in lowest.series if series_key(s.labels) in judged]
    return tuple(target_gaps(mine, at - params.window, at, params.resolution, max_gap, before))


@dataclass(frozen=True)
class _UpAnswers:
    """The answers about the targets' `up` series: over the window on the hole checks' grid, and
    (with per-step evidence) at the step boundaries (the same answers when the grids agree)."""

    recent: QueryResult  # raw samples of the last RECENT seconds (scrape intervals)
    times: QueryResult  # timestamp(up) over the window
    values: QueryResult  # up over the window
    step_times: QueryResult
    step_values: QueryResult
    scrapes: QueryResult  # successful scrapes in the window
    before: QueryResult  # samples in the day (or window) before this one
    counts: QueryResult | None = None  # samples per step
    sums: QueryResult | None = None  # successful scrapes per step
    lowest: QueryResult | None = None  # the lowest `up` per interval of the hole grid

    @property
    def answers(self) -> tuple[QueryResult, ...]:
        """Every answer, once per query, for their warnings and partial flags."""
        base = (self.recent, self.times, self.values, self.step_times, self.step_values, self.scrapes)
        more = (self.before, self.counts, self.sums, self.lowest)
        return (*base, *(a for a in more if a is not None))


def _ask(
    client: PrometheusClient,
    params: QueryParams,
    selector: str,
    at: float,
    steps: StepGrid | None,
    holes: bool,
) -> _UpAnswers:
    """The `up` queries, five at a time. `holes`: also each target's lowest `up` per interval of
    the hole grid (--coverage's query, for its `up` series when it is not given)."""
    start, resolution = at - params.window, params.resolution
    # The boundaries of the steps are points of the grid when the step is a multiple of it.
    own_grid = steps is not None and bool(steps.step % resolution or steps.start != start)
    window = promql_duration(params.window)
    with ThreadPoolExecutor(max_workers=5) as pool:
        recent_f = pool.submit(client.samples, f"{selector}[{promql_duration(RECENT)}]", at)
        times_f = pool.submit(client.query_range, f"timestamp({selector})", start, at, resolution)
        values_f = pool.submit(client.query_range, selector, start, at, resolution)
        scrapes_f = pool.submit(client.query, f"sum_over_time({selector}[{window}])", at)
        # The targets scraped in the day (or window) before this one: a hole at its start is theirs.
        back = promql_duration(max(params.window, BEFORE))
        before_f = pool.submit(client.query, f"count_over_time({selector}[{back}])", start)
        holes_f = None
        if holes:
            lowest = render("coverage", params, coverage=selector)  # --coverage's query, on these
            holes_f = pool.submit(client.query_range, lowest, start, at, resolution)
        step_times_f, step_values_f, counts_f, sums_f = times_f, values_f, None, None
        if steps is not None and own_grid:
            step_times_f = pool.submit(
                client.query_range, f"timestamp({selector})", steps.start, at, steps.step
            )
            step_values_f = pool.submit(client.query_range, selector, steps.start, at, steps.step)
        if steps is not None:
            per_step = f"({selector}[{promql_duration(steps.step)}])"
            grid = (steps.start, at, steps.step)
            counts_f = pool.submit(client.query_range, "count_over_time" + per_step, *grid)
            sums_f = pool.submit(client.query_range, "sum_over_time" + per_step, *grid)
        recent, times, values, scrapes = (
            recent_f.result(),
            times_f.result(),
            values_f.result(),
            scrapes_f.result(),
        )
        step_times, step_values = step_times_f.result(), step_values_f.result()
        counts = None if counts_f is None else counts_f.result()
        sums = None if sums_f is None else sums_f.result()
        before = before_f.result()
        lowest_up = None if holes_f is None else holes_f.result()
    return _UpAnswers(
        recent, times, values, step_times, step_values, scrapes, before, counts, sums, lowest_up
    )


def _per_step(
    up: _UpAnswers, steps: StepGrid | None
) -> tuple[
    dict[LabelSet, tuple[float | None, ...]],
    dict[LabelSet, tuple[float | None, ...]],
    dict[LabelSet, tuple[float | None, ...]],
]:
    """Per `up` target at each step boundary: its newest successful scrape, its samples and its
    successful scrapes in each step (all empty without per-step evidence)."""
    if steps is None or up.counts is None or up.sums is None:
        return {}, {}, {}
    return (
        _up_at_steps(up.step_times.series, up.step_values.series, steps),
        {series_key(s.labels): tuple(on_grid(s.points, steps)) for s in up.counts.series},
        {series_key(s.labels): tuple(on_grid(s.points, steps)) for s in up.sums.series},
    )


def _declared(params: QueryParams) -> Callable[[LabelSet], bool]:
    """Whether an `up` series that exported no series of the metric is a target of the fleet:
    --coverage's series all are; else those that pass the --selector's matchers on labels they
    carry (a pod that took no call yet; not another service sharing the job)."""
    fleet = params.fleet

    def declared(target: LabelSet) -> bool:
        if params.coverage is not None:
            return True
        labels = dict(target)
        # Another service sharing the job name carries none of the selector's labels: not ours.
        return all(m.name in labels and m.matches(labels[m.name]) for m in fleet)

    return declared


def _up_at_steps(
    times: Sequence[Series], values: Sequence[Series], steps: StepGrid
) -> dict[LabelSet, tuple[float | None, ...]]:
    """Per `up` target, its newest scrape at or before each boundary if that scrape succeeded."""
    value_at = {series_key(s.labels): on_grid(s.points, steps) for s in values}
    out = {}
    for s in times:
        key = series_key(s.labels)
        when, ok = on_grid(s.points, steps), value_at.get(key, [])
        out[key] = tuple(
            t
            if t is not None
            and plausible(t, steps.boundary(k))
            and k < len(ok)
            and ok[k] is not None
            and ok[k] >= 1  # type: ignore[operator]
            else None
            for k, t in enumerate(when)
        )
    return out


def _confirm_gone(
    client: PrometheusClient,
    selector: str,
    ended: Sequence[TargetState],
    fleet: set[LabelSet],
    at: float,
    instrument: Instrument,
) -> set[LabelSet]:
    """The targets among `ended` after whose last `up` sample another target of the fleet (or
    Prometheus itself, storing its count of the job's scrape pool) was scraped within one
    interval plus grace: the scraping went on, so service discovery dropped them. Only the
    fleet's own targets whose labels say their data travels the same way count
    (`same_pipeline`): another cluster's data arriving on time says nothing of this one's (each
    remote-writes on its own). Or Prometheus said so itself: when service discovery drops a
    target, Prometheus ends each of its series with a staleness marker at its next scrape time
    (not when it shuts down, nor for data lost on the way), so an instant query just after that
    finds no `up` although its last sample is within the query lookback (`marked`). Only for a
    target this server scrapes itself (its job label is one of the instrument's `own_jobs`, without
    honor_labels, or an active target of the same pipeline has it): a series it only receives
    (federated with honor_labels, remote-written) is marked stale whenever the scrape or write
    that carries it fails, while the pod behind it may serve on. None of it counts for a target
    whose `up` goes on after --at (`came_back`)."""
    lookback, scraped, own_jobs = instrument.lookback, instrument.scraped, instrument.own_jobs
    if not ended:
        return set()

    def marked(t: TargetState, end: float, span: float) -> bool:
        if lookback is None or span > lookback / 2 or end + span > at or not t.has_up:
            return False
        labels = dict(t.labels)
        mine = own_jobs is not None and labels.get("job") in own_jobs
        if not mine and not any(same_pipeline(labels, dict(x)) for x in scraped or ()):
            return False
        answer = client.query(_up_of(t.labels), end + span)
        return not (answer.partial or answer.warnings) and all(
            series_key(s.labels) != t.labels for s in answer.series
        )

    def came_back(t: TargetState, end: float, interval: float) -> bool:
        """With --at in the past, what came after it is there to read: a target whose `up` has
        samples after its last one before --at was not dropped, whatever else says so (its data
        was lost or late around --at, calls and a restart in that stretch unseen). No answer
        to trust reads as back."""
        now = time.time()
        if now <= at:
            return False
        # From half an interval after its last sample (its next one, had it stayed, is a whole
        # interval later; VictoriaMetrics counts a sample just before a range's start, and
        # Prometheus 2.x ranges hold both ends) to the present.
        reach = math.ceil(now - end)
        after = f"count_over_time({_up_of(t.labels)}[{promql_duration(max(reach - interval / 2, 0.001))}])"
        answer = client.query(after, end + reach)
        if answer.partial or answer.warnings:
            return True
        return any(series_key(s.labels) == t.labels and s.value for s in answer.series)

    def confirmed(t: TargetState) -> bool:
        if t.ended is None or t.interval is None:
            return False
        # Its last scrape: `ended` is read on the range queries' grid, `last` from raw samples.
        end = max(t.ended, t.last or t.ended)
        if came_back(t, end, t.interval):
            return False
        span = t.interval + grace(t.interval)
        if marked(t, end, span):
            return True
        answer: QueryResult = client.samples(f"{selector}[{promql_duration(span)}]", end + span)
        if answer.partial or answer.warnings:
            return False
        if any(
            series_key(s.labels) != t.labels
            and series_key(s.labels) in fleet
            and same_pipeline(dict(t.labels), s.labels)
            and any(end < when <= end + span for when, _ in s.points)
            for s in answer.series
        ):
            return True
        return pool_scraped(t, end, span)

    def pool_scraped(t: TargetState, end: float, span: float) -> bool:
        """Prometheus scraped itself on and on, storing its count of the target's job's pool
        (`no_targets.py`), from before the target's last scrape until after its next one was
        due: the scraping went on, yet that scrape was not stored, so the pool no longer held
        it. One self-scrape just after is not enough: the pipeline may stall right after it."""
        labels = dict(t.labels)
        due = end + span  # the target's next scrape, with grace, had it stayed
        if not labels.get("job") or not t.has_up or due > at:
            return False
        until = min(at, due + WITNESS_LEAD)  # a self-scrape after `due` must be in
        reach = promql_duration(until - end + WITNESS_LEAD)
        answer = client.samples(f"{witness_of(labels['job'])}[{reach}]", until)
        if answer.partial or answer.warnings:
            return False
        return any(vouches(s.labels, labels) and continuous(s.points, end, due) for s in answer.series)

    with ThreadPoolExecutor(max_workers=min(8, len(ended))) as pool:
        return {t.labels for t, ok in zip(ended, pool.map(confirmed, ended), strict=True) if ok}


# How far before a target's last scrape the witness is read, to see it was already there.
WITNESS_LEAD = 60.0


def continuous(points: Sequence[tuple[float, float]], end: float, due: float) -> bool:
    """Whether samples run from at or before `end` to at or after `due` with no pause longer
    than their own interval plus grace (the interval: their smallest spacing)."""
    times = sorted(t for t, _ in points)
    spacing = [b - a for a, b in itertools.pairwise(times) if b > a]
    if not spacing or times[0] > end or times[-1] < due:
        return False
    interval = min(spacing)
    return max(spacing) <= interval + grace(interval)


def _up_of(target: LabelSet) -> str:
    """The selector of one target's own `up` series."""
    return "up{" + ",".join(Matcher(k, "=", v).render() for k, v in target) + "}"


def scraped_after(
    client: PrometheusClient, targets: Targets, series: LabelSet, t: float, span: float
) -> bool:
    """Whether the target of a metric series (its label set) had a successful scrape in
    (t, t + span]: its `up` series' raw samples. False when the series has no `up` of its own."""
    target = targets.owner.get(series)
    if not target or target not in targets.up_targets:
        return False
    selector = _up_of(target)
    answer = client.samples(f"{selector}[{promql_duration(span)}]", t + span)
    if answer.partial or answer.warnings:
        return False
    return any(
        series_key(s.labels) == target and any(t < when <= t + span and v >= 1 for when, v in s.points)
        for s in answer.series
    )


def up_points(
    client: PrometheusClient, targets: Targets, series: LabelSet, at: float, window: float
) -> tuple[tuple[float, float], ...] | None:
    """The raw `up` samples in the window of the target of a metric series (its label set); None
    when the series has no `up` of its own or the answer cannot be trusted."""
    target = targets.owner.get(series)
    if not target or target not in targets.up_targets:
        return None
    answer = client.samples(f"{_up_of(target)}[{promql_duration(window)}]", at)
    if answer.partial or answer.warnings:
        return None
    found = [s.points for s in answer.series if series_key(s.labels) == target]
    return tuple(found[0]) if len(found) == 1 else None

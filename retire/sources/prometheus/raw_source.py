"""Evidence from the raw series: every planned query's answer read per series at one instant.

Per series (a pod or replica serving a version): its value at the window's start and its last
value, resets, whether it reaches the window's end, its samples (`raw_facts.py`); counters that
went down are re-read sample by sample and counted across the reset (`_recount_resets`); with a
--threshold above 0, each version's busiest step from counter differences at the step boundaries
(`buckets.py`); the metric's own holes, and with --coverage the targets' (`coverage.py`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from retire.durations import iso, promql_duration
from retire.errors import PrometheusError
from retire.sources.columns import Columns, columns_of
from retire.sources.prometheus.answers import QueryResult, Series, SeriesKey, series_key
from retire.sources.prometheus.buckets import StepBounds, StepGrid, on_grid, per_version_bounds
from retire.sources.prometheus.client import PrometheusClient
from retire.sources.prometheus.common import (
    Reading,
    begin,
    finish,
    flat_unlabelled,
    hourly,
    version_values,
)
from retire.sources.prometheus.coverage import Target, metric_holes, target_coverage
from retire.sources.prometheus.evidence import Coverage, Evidence, Request
from retire.sources.prometheus.instrument import Instrument
from retire.sources.prometheus.no_targets import (
    WITNESS,
    Empty,
    lead_steps,
    no_target_steps,
    up_promql,
    witness_promql,
)
from retire.sources.prometheus.promql import Matcher
from retire.sources.prometheus.queries import QueryParams, report_queries
from retire.sources.prometheus.raw_facts import (
    COUNTABLE,
    SERIES_FIELDS,
    SeriesFacts,
    recreated,
    series_facts,
    went_down,
)
from retire.sources.prometheus.runner import Answers, run_plan
from retire.sources.prometheus.targets import Targets, grace
from retire.sources.prometheus.up import gather_targets, scraped_after, up_points


def gather(client: PrometheusClient, params: QueryParams, request: Request) -> Evidence:
    """Run the raw queries concurrently and read their answers (`gather.gather` says more)."""
    at, max_gap = request.at, request.max_gap
    start = begin(client, params, at)
    answers = run_plan(client, params, request, lambda p: report_queries(p, request.sparklines))
    grid = StepGrid.ending(at, params.window, params.step)
    targets = _targets(client, params, at, answers, grid, start.instrument(), max_gap)
    series = series_facts(
        answers["series_last"],
        answers["series_start"],
        answers["series_resets"],
        answers["series_now"],
        answers["series_count"],
        params,
        targets,
    )
    series = _recheck_ended(client, params, at, series, targets)
    recount = _recount_resets(
        client, params, at, series, lambda key, t, span: scraped_after(client, targets, key, t, span)
    )
    coverage, checks, explained = _coverage(client, answers, params, at, max_gap, start.exporters, targets)
    reading = Reading(
        max_qps=version_values(answers["max_hourly_qps"], params),
        coverage=coverage,
        targets=targets,
        checks=checks,
        series=recount.facts,
        steps=_step_bounds(answers, params, grid, targets, recount) if params.per_step else None,
        hourly=hourly(answers["hourly_qps"], params, at) if request.sparklines else None,
        warnings=recount.warnings,
        partial=recount.partial,
        notes=explained,
    )
    return finish(client, params, at, start, answers, reading)


def _targets(
    client: PrometheusClient,
    params: QueryParams,
    at: float,
    answers: Answers,
    grid: StepGrid,
    instrument: Instrument,
    max_gap: float,
) -> Targets:
    """The targets of the metric's series in the window, judged at the instant and, without
    --coverage, for holes longer than `max_gap` (`up.py`)."""
    newest = {series_key(s.labels): s.value for s in answers["series_now"].series if s.value is not None}
    in_window = [s.labels for s in answers["series_last"].series]
    flat = flat_unlabelled(answers["unlabelled_series"])
    steps = grid if params.per_step else None
    return gather_targets(client, params, at, instrument, in_window, newest, steps, flat, max_gap)


def _coverage(
    client: PrometheusClient,
    answers: Answers,
    params: QueryParams,
    at: float,
    max_gap: float,
    exporters: dict[Target | None, str],
    targets: Targets,
) -> tuple[Coverage, tuple[Coverage, ...], tuple[str, ...]]:
    """The metric's own holes; with --coverage, the targets' first, the metric's still checked.
    Where a hole across every series remains, Prometheus's own scrape pools are asked whether
    there was anything to scrape then (`no_targets.py`), and a note says what that excused."""
    holes = metric_holes(answers["metric_presence"], params, at, max_gap)
    cover = None
    if params.coverage is not None:
        cover = target_coverage(answers["coverage"], params, at, max_gap, exporters, before=targets.before)
    if not any(not g.target for c in (holes, cover) if c is not None for g in c.gaps):
        return (holes, (), ()) if cover is None else (cover, (holes,), ())
    witness, up = _witness(client, params, at)
    in_metric = [s.labels for s in answers["series_last"].series]
    empty = no_target_steps(witness, in_metric, at - params.window, at, params.resolution, up)
    notes: list[str] = []
    if empty is None and in_metric:
        notes.append(
            f"no {WITNESS} (Prometheus scraping itself) for the metric's jobs: a hole before a "
            "job's first pod cannot be told from data lost on the way"
        )
    if empty is not None and empty.any():
        before = holes
        holes = metric_holes(answers["metric_presence"], params, at, max_gap, empty.steps)
        notes += _explained(before, holes, empty, at - params.window, params.resolution)
    if cover is not None:
        covered = [*in_metric, *(s.labels for s in answers["coverage"].series)]
        empty = no_target_steps(witness, covered, at - params.window, at, params.resolution, up)
        if empty is not None and empty.any():
            before = cover
            cover = target_coverage(
                answers["coverage"], params, at, max_gap, exporters, empty.steps, targets.before
            )
            notes += _explained(before, cover, empty, at - params.window, params.resolution)
    checks = (holes,) if cover is not None else ()
    return (holes if cover is None else cover), checks, tuple(dict.fromkeys(notes))


def _witness(
    client: PrometheusClient, params: QueryParams, at: float
) -> tuple[Sequence[Series], Sequence[Series]]:
    """Prometheus's own count of targets per scrape pool over the window, and each job's lowest
    `up` per step; nothing where it cannot say (no such series, a failed, partial or warned
    answer): then no hole is excused."""
    lead = lead_steps(params.resolution) * params.resolution
    try:
        pools, up = (
            client.query_range(promql, at - params.window - lead, at, params.resolution)
            for promql in (witness_promql(params.resolution), up_promql(params.resolution))
        )
    except PrometheusError:
        return (), ()
    if any(r.partial or r.warnings for r in (pools, up)):
        return (), ()
    return pools.series, up.series


def _explained(before: Coverage, after: Coverage, empty: Empty, start: float, resolution: float) -> list[str]:
    """What the witness excused: the first stretch with no target inside a hole it shrank."""
    shrunk = [g for g in before.gaps if not g.target and g not in after.gaps]
    if not shrunk:
        return []
    runs = empty.stretches(start, resolution)
    lo, hi = next(((a, b) for a, b in runs if a < shrunk[0].end and b > shrunk[0].start), runs[0])
    more = f" (and {len(shrunk) - 1} more)" if len(shrunk) > 1 else ""
    return [
        f"Prometheus had no target to scrape for job {', '.join(empty.jobs)} from {iso(lo)} to {iso(hi)} "
        f"(Prometheus's own prometheus_target_scrape_pool_targets = 0): no samples of {before.selector} "
        f"then is not a hole{more}"
    ]


# Counters that went down are re-read sample by sample, one small query each (8 at a time); past
# this many the rest keep the lower bound (calls since the reset) and their doubt.
MAX_RECOUNT = 1000


@dataclass(frozen=True)
class Recount:
    facts: Sequence[SeriesFacts]
    warnings: tuple[str, ...] = ()
    partial: bool = False
    # The raw samples of each series counted across its reset (and its value at the window's
    # start), for the per-step counts.
    points: dict[SeriesKey, tuple[tuple[tuple[float, float], ...], float | None]] = field(
        default_factory=dict
    )


def _recount_resets(
    client: PrometheusClient,
    params: QueryParams,
    at: float,
    facts: Sequence[SeriesFacts],
    scraped: Callable[[SeriesKey, float, float], bool] | None = None,
) -> Recount:
    """Count the calls of series whose counter reset, as Prometheus's increase() counts across a
    reset (a drop counts the new value) but without its extrapolation, from the raw samples. A
    re-read that is partial, has warnings, lacks the series or ends elsewhere than the series'
    last value counts nothing: the reset stays a doubt."""
    import numpy as np

    cols = columns_of(facts, SERIES_FIELDS)
    chosen: list[int] = np.flatnonzero(went_down(cols))[:MAX_RECOUNT].tolist()
    if not chosen:
        return Recount(facts)
    counted, blinds, intervals = list(cols["counted"]), list(cols["blind"]), list(cols["interval"])
    missed = list(cols["blind_missed"])
    warnings: list[str] = []
    partial = False
    raw: dict[SeriesKey, tuple[tuple[tuple[float, float], ...], float | None]] = {}

    def recount(i: int) -> tuple[SeriesFacts, QueryResult]:
        return _recount(client, params, at, facts[i], scraped)

    with ThreadPoolExecutor(max_workers=min(8, len(chosen))) as pool:
        for i, (fact, result) in zip(chosen, pool.map(recount, chosen), strict=True):
            counted[i], blinds[i], intervals[i] = fact.counted, fact.blind, fact.interval
            missed[i] = fact.blind_missed
            if fact.counted is not None:
                points = next(s.points for s in result.series if series_key(s.labels) == fact.series)
                raw[fact.series] = (points, fact.start)
            warnings += [f"re-read of a reset counter: {w}" for w in result.warnings]
            partial = partial or result.partial
    out = Columns(
        SeriesFacts,
        {**cols, "counted": counted, "blind": blinds, "interval": intervals, "blind_missed": missed},
    )
    return Recount(out, tuple(dict.fromkeys(warnings)), partial, raw)


# Flat series that ended in the window are re-read, one small query each (8 at a time), to tell
# whether they were created anew; past this many the rest are a doubt (`unsampled`).
MAX_RECHECK = 1000


def _recheck_ended(
    client: PrometheusClient, params: QueryParams, at: float, facts: Columns[SeriesFacts], targets: Targets
) -> Columns[SeriesFacts]:
    """A series that ended in the window, flat, with fewer samples than its target's successful
    scrapes in the window: did it end early (a version unloaded, a restart with no call since),
    or was it absent at some scrape and created anew at its old value before it ended? Its raw
    samples and its target's `up` say: a successful scrape from the window's start (its first
    sample, if it had no value then) to its last sample at which it has none marks it
    `recreated` (its last value is then calls in the window). One that cannot be re-read (a
    partial answer, past MAX_RECHECK, a sample not at one of its target's successful scrapes)
    is `unsampled`, a doubt: whether it was created anew cannot be told. One whose target has no
    `up` of its own is left as the series present at both ends are (`series_facts`)."""
    import numpy as np

    cols = columns_of(facts, (*SERIES_FIELDS, "samples"))
    keys = cols["series"]
    start = np.asarray([math.nan if v is None else v for v in cols["start"]], dtype=float)
    last = np.asarray(cols["last"], dtype=float)
    samples = np.asarray(cols["samples"], dtype=float)
    scrapes = [targets.scrapes_of(k) for k in keys]
    has_up = np.asarray([n is not None for n in scrapes], dtype=bool)
    counted = np.asarray([_nan(n) for n in scrapes], dtype=float)
    with np.errstate(invalid="ignore"):
        flat = np.where(np.isnan(start), last == 0, last == start)
        fewer = has_up & ~(samples >= counted)  # either unknown (NaN): re-read
    chosen: list[int] = np.flatnonzero(np.asarray(cols["gone"], dtype=bool) & flat & fewer).tolist()
    if not chosen:
        return facts
    recreated, unsampled = list(cols["recreated"]), list(cols["unsampled"])
    for i in chosen[MAX_RECHECK:]:
        unsampled[i] = True
    ups: dict[SeriesKey, tuple[tuple[float, float], ...] | None] = {}

    def check(i: int) -> bool | None:
        target = targets.owner.get(keys[i], ())
        if target not in ups:
            ups[target] = up_points(client, targets, keys[i], at, params.window)
        since = None if math.isnan(start[i]) else at - params.window
        return _created_anew(client, params, at, keys[i], ups[target], since)

    with ThreadPoolExecutor(max_workers=min(8, len(chosen))) as pool:
        for i, anew in zip(chosen, pool.map(check, chosen[:MAX_RECHECK]), strict=False):
            if anew is None:
                unsampled[i] = True
            else:
                recreated[i] = recreated[i] or anew
    return Columns(SeriesFacts, {**cols, "recreated": recreated, "unsampled": unsampled})


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _reread(
    client: PrometheusClient, params: QueryParams, at: float, key: SeriesKey
) -> tuple[QueryResult, list[Series]]:
    """One series' raw samples over the window: the answer, and its series whose key is `key`."""
    selector = f"{params.metric}{{{','.join(Matcher(k, '=', v).render() for k, v in key)}}}"
    result = client.samples(f"{selector}[{promql_duration(params.window)}]", at)
    return result, [s for s in result.series if series_key(s.labels) == key]


def _created_anew(
    client: PrometheusClient,
    params: QueryParams,
    at: float,
    key: SeriesKey,
    up: tuple[tuple[float, float], ...] | None,
    since: float | None,
) -> bool | None:
    """Whether the series had no sample at a successful scrape of its target (`up`, its raw
    samples) from `since` (the window's start, where it had a value then; else its first sample)
    to its last sample (None: cannot be told, as when any of its samples is not at one of those
    scrapes: pushed, federated, or owned by another `up`)."""
    result, matching = _reread(client, params, at, key)
    if up is None or result.warnings or result.partial or len(matching) != 1 or not matching[0].points:
        return None
    times = {t for t, _ in matching[0].points}
    first = min(times) if since is None else since
    end = max(times)
    scrapes = {t for t, v in up if first <= t <= end and v >= 1}
    if not times <= scrapes:
        return None
    return bool(scrapes - times)


def _recount(
    client: PrometheusClient,
    params: QueryParams,
    at: float,
    f: SeriesFacts,
    scraped: Callable[[SeriesKey, float, float], bool] | None,
) -> tuple[SeriesFacts, QueryResult]:
    """One series re-read and counted across its resets (unchanged where it cannot be)."""
    result, matching = _reread(client, params, at, f.series)
    if result.warnings or result.partial or len(matching) != 1:
        return f, result
    points = sorted(matching[0].points)
    if not points or points[-1][1] != f.last:
        return f, result
    # Born in the window: TF Serving creates the counter on the first call (at 1), so it
    # counts from 0; Triton creates it at 0 on load, where this adds nothing.
    across = _across_resets(points, (at - params.window, 0.0 if f.start is None else f.start))
    if across is None:
        return f, result  # the advisor reads the bad value from `last` or refuses it
    calls, blind, drops = across
    spacing = [b[0] - a[0] for a, b in itertools.pairwise(points) if b[0] > a[0]]
    interval = min(spacing) if spacing else math.nan
    missed = math.nan
    if scraped is not None and math.isfinite(interval):
        # A span of one scrape (plus grace) is what no query could see; a longer one is blind
        # only where the target's own scrapes were missed right after the last sample.
        one = interval + grace(interval)
        missed = max(
            (b - a for a, b in drops if b - a > one and not scraped(f.series, a, one)),
            default=0.0,
        )
    return replace(f, counted=calls, blind=blind, interval=interval, blind_missed=missed), result


def _across_resets(
    points: Sequence[tuple[float, float]], previous: tuple[float, float]
) -> tuple[float, float, list[tuple[float, float]]] | None:
    """Calls counted across resets from the raw samples after `previous` (time, value), the
    longest span with no sample before a reset, and each reset's span; None at a value that is
    no counter (NaN, Inf, negative) or too large to count one call (`raw_facts.COUNTABLE`)."""
    calls, blind = 0.0, 0.0
    drops = []
    for t, v in points:
        if not (math.isfinite(v) and 0 <= v < COUNTABLE):
            return None
        if v >= previous[1]:
            calls += v - previous[1]
        else:
            calls += v
            blind = max(blind, t - previous[0])
            drops.append((previous[0], t))
        previous = (t, v)
    return calls, blind, drops


def _step_bounds(
    answers: Answers, params: QueryParams, grid: StepGrid, targets: Targets, recount: Recount
) -> Mapping[tuple[str, str], StepBounds]:
    """With --threshold above 0: each version's busiest step, counted from counter differences at
    the step boundaries (README "How verdicts are made")."""
    return per_version_bounds(
        answers["step_values"].series,
        answers["step_times"].series,
        grid,
        lambda labels: (
            labels.get(params.model_label, ""),
            params.canonical(labels.get(params.version_label, "")),
        ),
        lambda key: targets.owner.get(key, ()),
        targets.interval,
        targets.up_steps,
        recount.points,
        recreated(recount.facts),
        targets.step_counts,
        {series_key(s.labels): on_grid(s.points, grid) for s in answers["step_counts"].series},
        targets.step_successes,
    )

"""Gathering the traffic evidence: run every planned query at one instant, concurrently.

All queries are evaluated at the same instant `at` (pinned before the first query is sent), so the
pieces of evidence describe the same window. The result is plain data for the advisor; nothing
here decides a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from retire.durations import format_duration, promql_duration
from retire.errors import PrometheusError
from retire.sources.prometheus.client import PrometheusClient, QueryResult, QueryTooBig, Series
from retire.sources.prometheus.gaps import Gap, global_gaps, target_gaps
from retire.sources.prometheus.queries import (
    VERSION_ASPECTS,
    Matcher,
    PlannedQuery,
    QueryParams,
    recorded_selector,
    report_queries,
)

Progress = Callable[[int, int], None]  # (models done, models in all)
# A series' identity: its whole label set as data (sorted pairs, without the metric name), never
# text joined by hand, where `a="p",b="x"` and `a="p\",b=\"x"` could come out the same.
SeriesKey = tuple[tuple[str, str], ...]


def series_key(labels: dict[str, str]) -> SeriesKey:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


@dataclass(frozen=True)
class VersionValue:
    """One aggregated value for a (model, version), e.g. its busiest-hour QPS."""

    model: str
    version: str
    value: float


@dataclass(frozen=True)
class VersionSeries:
    """A (model, version)'s rate at each step of the window (None: no data then)."""

    model: str
    version: str
    points: tuple[float | None, ...]


@dataclass(frozen=True)
class SeriesFacts:
    """One counter series (a pod or replica serving a version): its value at the window's start
    (None when it had no sample then) and its last value in the window."""

    model: str
    version: str
    series: SeriesKey
    start: float | None
    last: float
    # After a counter reset (reload, restart): calls counted from the raw samples across it, and
    # the longest span between the last sample before a reset and the first after it (calls made
    # then cannot be seen). None/0 when the series did not go down or its samples were not read.
    counted: float | None = None
    blind: float = 0.0
    resets: float = 0.0  # how many times the counter went down in the window (NaN: not known)
    gone: bool = False  # no sample at the instant: the series ended before the window's end


@dataclass(frozen=True)
class VersionFacts:
    """A version's recorded facts (with --use-recording-rules), in place of per-series facts:
    the most series at once, first calls of series born in the window, counter resets."""

    model: str
    version: str
    series: float
    born_calls: float
    resets: float


@dataclass(frozen=True)
class Coverage:
    """Whether the data covers the window. `checked` says if per-target coverage was asked for."""

    checked: bool
    selector: str
    max_gap: float
    gaps: tuple[Gap, ...] = ()
    targets: int = 0
    problem: str | None = None  # evidence that could not be judged at all


@dataclass(frozen=True)
class Scope:
    """What the queries could see, so that "no series" is read as "no calls" only where they
    could have seen calls (README "How verdicts are made"). Pure data for the advisor.

    `model_matchers`/`version_matchers` are the user's --selector matchers on the model and
    version labels: a version they reject is out of the query's reach. From the index (cheap: no
    samples read), the series of the metric with and without the --selector: a version with any
    series the selector leaves out may have calls the queries cannot see.
    """

    selector: str = ""
    model_matchers: tuple[Matcher, ...] = ()
    version_matchers: tuple[Matcher, ...] = ()
    outside: frozenset[tuple[str, str]] = frozenset()  # versions with a series the selector leaves out
    unscoped_models: frozenset[str] = frozenset()  # models with series when the selector is left out
    unscoped_count: int = 0  # series of the metric without the selector


@dataclass(frozen=True)
class Evidence:
    source: str
    evaluated_at: float
    window: float
    step: float
    queries: tuple[PlannedQuery, ...]
    max_qps: tuple[VersionValue, ...]
    last_step_qps: tuple[VersionValue, ...]
    series: tuple[SeriesFacts, ...]
    coverage: Coverage
    warnings: tuple[str, ...] = ()
    infos: tuple[str, ...] = ()
    partial: bool = False
    stats: dict[str, dict[str, object]] = field(default_factory=dict)
    split_models: int = 0  # > 0: the queries were run once per model, for this many models
    notes: tuple[str, ...] = ()
    hourly: tuple[VersionSeries, ...] | None = None  # only when sparklines were asked for
    recorded: tuple[VersionFacts, ...] | None = None  # from recording rules, instead of `series`
    checks: tuple[Coverage, ...] = ()  # more completeness checks (the recording rules' heartbeats)
    scope: Scope = field(default_factory=Scope)
    selector: str = ""  # the metric's full selector, for reasons that name it

    @property
    def window_start(self) -> float:
        return self.evaluated_at - self.window

    # What the advisor must know of how the evidence was gathered, as facts rather than its source.
    @property
    def from_rules(self) -> bool:
        """Read from recording rules (the header says so, with their heartbeats' state)."""
        return self.recorded is not None

    @property
    def calls_are_first_calls(self) -> bool:
        """The calls counted are only the first calls of series born in the window (the rules'
        rate covers the rest), not every call."""
        return self.from_rules

    @property
    def rate_implies_series(self) -> bool:
        """A version with a rate has per-series values too (raw series: both read the same
        series); the recorded facts have no such tie."""
        return not self.from_rules

    @property
    def births_may_be_returns(self) -> bool:
        """With recording rules a "born" series is one without samples in the step before it, and
        a series back after a longer gap looks the same: when such a gap was found, calls counted
        only from born series are not evidence of calls."""
        gaps = (g for c in (self.coverage, *self.checks) for g in c.gaps)
        return self.from_rules and any(g.seconds > self.step for g in gaps)


def _versions(result: QueryResult, params: QueryParams) -> tuple[VersionValue, ...]:
    return tuple(
        VersionValue(
            s.labels.get(params.model_label, ""),
            params.canonical(s.labels.get(params.version_label, "")),
            s.value if s.value is not None else float("nan"),
        )
        for s in result.series
    )


def _check_unique(name: str, result: QueryResult, where: str) -> None:
    """Two series with one label set in one answer cannot come from Prometheus; which one counts
    would depend on the order they came in, so refuse the answer instead of guessing."""
    seen: set[SeriesKey] = set()
    for s in result.series:
        key = series_key(s.labels)
        if key in seen:
            shown = ",".join(f"{k}={v!r}" for k, v in key)[:200]
            raise PrometheusError(
                f"{where} answered query {name} with the same series twice ({{{shown}}}); a proxy "
                "merging stores without deduplication? Query Prometheus directly, or fix the proxy"
            )
        seen.add(key)


def _series_facts(
    last: QueryResult, start: QueryResult, resets: QueryResult, now: QueryResult, params: QueryParams
) -> tuple[SeriesFacts, ...]:
    starts = {series_key(s.labels): s.value for s in start.series}
    current = {series_key(s.labels) for s in now.series}
    went_down = {series_key(s.labels): s.value for s in resets.series}
    facts = []
    for s in last.series:
        key = series_key(s.labels)
        facts.append(
            SeriesFacts(
                s.labels.get(params.model_label, ""),
                params.canonical(s.labels.get(params.version_label, "")),
                key,
                starts.get(key),
                s.value if s.value is not None else float("nan"),
                # No answer for a series that has samples: nothing proves it never went down.
                resets=_or_nan(went_down.get(key)),
                gone=key not in current,
            )
        )
    return tuple(facts)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


# Counters that went down are re-read sample by sample, one small query each (8 at a time); past
# this many the rest keep the lower bound (calls since the reset) and their doubt.
MAX_RECOUNT = 1000


@dataclass(frozen=True)
class Recount:
    facts: tuple[SeriesFacts, ...]
    warnings: tuple[str, ...] = ()
    partial: bool = False


def _went_down(f: SeriesFacts) -> bool:
    if not math.isfinite(f.resets) or f.resets > 0:
        return True
    return f.start is not None and math.isfinite(f.start) and math.isfinite(f.last) and f.last < f.start


def _recount_resets(
    client: PrometheusClient, params: QueryParams, at: float, facts: tuple[SeriesFacts, ...]
) -> Recount:
    """Count the calls of series whose counter reset, as Prometheus's increase() counts across a
    reset (a drop counts the new value) but without its extrapolation, from the raw samples. A
    re-read that is partial, has warnings, lacks the series or ends elsewhere than the series'
    last value counts nothing: the reset stays a doubt."""
    chosen = [i for i, f in enumerate(facts) if _went_down(f)][:MAX_RECOUNT]
    if not chosen:
        return Recount(facts)
    out = list(facts)
    warnings: list[str] = []
    partial = False

    def recount(i: int) -> tuple[SeriesFacts, QueryResult]:
        f = facts[i]
        selector = f"{params.metric}{{{','.join(Matcher(k, '=', v).render() for k, v in f.series)}}}"
        result = client.samples(f"{selector}[{promql_duration(params.window)}]", at)
        matching = [s for s in result.series if series_key(s.labels) == f.series]
        if result.warnings or result.partial or len(matching) != 1:
            return f, result
        points = sorted(matching[0].points)
        if not points or points[-1][1] != f.last:
            return f, result
        # Born in the window: TF Serving creates the counter on the first call (at 1), so it
        # counts from 0; Triton creates it at 0 on load, where this adds nothing.
        previous = (at - params.window, 0.0 if f.start is None else f.start)
        calls, blind = 0.0, 0.0
        for t, v in points:
            if not (math.isfinite(v) and v >= 0):
                return f, result  # the advisor reads the bad value from `last` or refuses it
            if v >= previous[1]:
                calls += v - previous[1]
            else:
                calls += v
                blind = max(blind, t - previous[0])
            previous = (t, v)
        return replace(f, counted=calls, blind=blind), result

    with ThreadPoolExecutor(max_workers=min(8, len(chosen))) as pool:
        for i, (fact, result) in zip(chosen, pool.map(recount, chosen), strict=True):
            out[i] = fact
            warnings += [f"re-read of a reset counter: {w}" for w in result.warnings]
            partial = partial or result.partial
    return Recount(tuple(out), tuple(dict.fromkeys(warnings)), partial)


def _hourly(result: QueryResult, params: QueryParams, at: float) -> tuple[VersionSeries, ...]:
    n = round(params.window / params.step)
    start = at - params.window + params.step
    out = []
    for s in result.series:
        points: list[float | None] = [None] * n
        for t, v in s.points:
            k = round((t - start) / params.step)
            if 0 <= k < n:
                points[k] = v
        model = s.labels.get(params.model_label, "")
        out.append(
            VersionSeries(model, params.canonical(s.labels.get(params.version_label, "")), tuple(points))
        )
    return tuple(out)


Target = tuple[str, str]  # (job, instance): a scrape target, as `up` and the metric both carry it


def _target(labels: dict[str, str]) -> Target | None:
    if "instance" not in labels:
        return None
    return (labels.get("job", ""), labels["instance"])


def _target_text(target: Target) -> str:
    job, instance = target
    return f'job="{job}",instance="{instance}"' if job else f'instance="{instance}"'


def _presence(result: QueryResult, params: QueryParams, at: float, max_gap: float) -> Coverage:
    """Holes in the metric itself: intervals where no series of it had a sample."""
    gaps = global_gaps(result.series, at - params.window, at, params.resolution, max_gap, min_value=1)
    problem = _too_coarse(params, max_gap)
    return Coverage(False, params.series_selector, max_gap, tuple(gaps), 0, problem=problem)


def _too_coarse(params: QueryParams, max_gap: float) -> str | None:
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


def _coverage(
    result: QueryResult, params: QueryParams, at: float, max_gap: float, exporters: dict[Target | None, str]
) -> Coverage:
    """Per-target coverage with --coverage. `exporters`: every target that exported the metric in
    the window (None: series without an `instance` label), with an example series for messages."""
    assert params.coverage is not None
    start = at - params.window
    series: tuple[Series, ...] = result.series
    selector = params.coverage.render()
    if not series:
        return Coverage(
            True, selector, max_gap, (), 0, problem=f"--coverage {selector} matched no series in the window"
        )
    gaps = global_gaps(series, start, at, params.resolution, max_gap, min_value=0)
    gaps += target_gaps(series, start, at, params.resolution, max_gap)
    problem = _too_coarse(params, max_gap)
    if None in exporters:
        problem = (
            f"the metric has series without an instance label ({exporters[None]}), so --coverage {selector} "
            "cannot be related to the targets that export it: drop --coverage (the metric's own holes are "
            "checked) or keep the instance label"
        )
    # Coverage of other targets than those exporting the metric would pass vacuously: every target
    # (job and instance) that exported the metric in the window must be among the covered ones.
    covered = {_target(s.labels) for s in series}
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


def _worst(old: float | None, new: float) -> float:
    """The larger value, but NaN wins: a NaN answer is evidence of a problem, not a small number."""
    if old is None or new != new:
        return new
    return old if old != old else max(old, new)


def _recorded_facts(
    parts: Iterable[QueryResult], params: QueryParams
) -> tuple[tuple[VersionValue, ...], tuple[VersionFacts, ...]]:
    """Per version, each aspect's highest value over the rollups and the span since the last one."""
    facts: dict[tuple[str, str], dict[str, float]] = {}
    for result in parts:
        for s in result.series:
            aspect = s.labels.get("aspect", "")
            if aspect not in VERSION_ASPECTS:
                continue  # `present` is the heartbeat, checked over the window separately
            version = params.canonical(s.labels.get(params.version_label, ""))
            key = (s.labels.get(params.model_label, ""), version)
            seen = facts.setdefault(key, {})
            seen[aspect] = _worst(seen.get(aspect), float("nan") if s.value is None else s.value)
    max_qps = tuple(VersionValue(m, v, f["rate"]) for (m, v), f in facts.items() if "rate" in f)
    recorded = tuple(
        VersionFacts(m, v, f.get("series", 0.0), f.get("born", 0.0), f.get("resets", 0.0))
        for (m, v), f in facts.items()
    )
    return max_qps, recorded


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
) -> tuple[Coverage, tuple[Coverage, ...]]:
    """The fine heartbeat stands for metric_presence; a missed rollup is a hole of a whole rollup
    interval, so any missing rollup point counts (tolerance: half an interval). `steps`: each
    heartbeat query's resolution, as planned."""
    fine = _heartbeat(
        results["recorded_present"],
        recorded_selector(params, aspect="present"),
        at,
        params.window,
        steps["recorded_present"],
        max_gap,
    )
    rollup = steps["recorded_rollups"]
    rollups = _heartbeat(
        results["recorded_rollups"],
        recorded_selector(params, True, "present"),
        at,
        params.window,
        rollup,
        rollup / 2,
    )
    if params.coverage is None:
        return fine, (rollups,)
    return _coverage(results["coverage"], params, at, max_gap, exporters), (fine, rollups)


def _run(
    client: PrometheusClient,
    planned: Iterable[PlannedQuery],
    params: QueryParams,
    at: float,
    pool: ThreadPoolExecutor,
) -> dict[str, QueryResult]:
    def one(q: PlannedQuery) -> QueryResult:
        if q.kind == "range":
            result = client.query_range(q.promql, at - params.window, at, q.step)
        else:
            result = client.query(q.promql, at)
        _check_unique(q.name, result, f"Prometheus at {client.display_url}")
        return result

    planned = list(planned)
    return dict(zip((q.name for q in planned), pool.map(one, planned), strict=True))


def _merge(parts: list[QueryResult]) -> QueryResult:
    return QueryResult(
        result_type=parts[0].result_type,
        series=tuple(s for p in parts for s in p.series),
        warnings=tuple(dict.fromkeys(w for p in parts for w in p.warnings)),
        infos=tuple(dict.fromkeys(i for p in parts for i in p.infos)),
        partial=any(p.partial for p in parts),
    )


def _run_split(
    client: PrometheusClient,
    params: QueryParams,
    at: float,
    models_hint: Callable[[], Iterable[str]],
    pool: ThreadPoolExecutor,
    progress: Progress | None,
    sparklines: bool,
) -> tuple[dict[str, QueryResult], int]:
    """The same queries once per model (a matcher on the model label), results concatenated.

    Every query's answer is per series or per (model, version), except metric_presence, whose
    per-model counts are merged by presence; coverage (about targets, not models) runs once.
    """
    seen = client.label_values(params.model_label, params.series_selector, at - params.window, at)
    models = sorted(set(seen) | set(models_hint()))  # models on disk: asked only when splitting
    per_name: dict[str, list[QueryResult]] = {}
    for done, model in enumerate(models):
        only = Matcher(params.model_label, "=", model)
        scoped = replace(params, selector=(*params.selector, only), coverage=None)
        planned = report_queries(scoped, sparklines)
        try:
            for name, result in _run(client, planned, scoped, at, pool).items():
                per_name.setdefault(name, []).append(result)
        except QueryTooBig as e:
            raise PrometheusError(
                f"even split by model, the queries for model {model!r} are too big: {e.message}"
            ) from e
        if progress:
            progress(done + 1, len(models))
    if params.coverage is not None:
        (cov,) = [q for q in report_queries(params) if q.name == "coverage"]
        per_name.update({k: [v] for k, v in _run(client, [cov], params, at, pool).items()})
    kinds = {q.name: "matrix" if q.kind == "range" else "vector" for q in report_queries(params, sparklines)}
    merged = {name: _merge(per_name.get(name) or [QueryResult(kind, ())]) for name, kind in kinds.items()}
    return merged, len(models)


def gather(
    client: PrometheusClient,
    params: QueryParams,
    at: float,
    max_gap: float,
    *,
    split: bool = False,
    models_hint: Callable[[], Iterable[str]] = tuple,
    progress: Progress | None = None,
    sparklines: bool = False,
) -> Evidence:
    """Run the planned queries concurrently and package their answers.

    When the server refuses a query as too big (sample limit, timeout), or with `split`, the
    queries are run once per model instead and merged; the report says so.
    """
    planned = report_queries(params, sparklines)
    notes: list[str] = []
    exporters, scope, index_warnings, index_partial = _index(client, params, at)
    split_models = 0
    with ThreadPoolExecutor(max_workers=len(planned)) as pool:
        results: dict[str, QueryResult] | None = None
        if not split:
            try:
                results = _run(client, planned, params, at, pool)
            except QueryTooBig as e:
                if params.rules is not None:
                    raise PrometheusError(f"a query on the recorded series is too big: {e.message}") from e
                notes.append(f"split by model after: {e.message}")
        if results is None:
            results, split_models = _run_split(client, params, at, models_hint, pool, progress, sparklines)
            notes.append(f"queries were run per model ({split_models} models)")

    warnings: list[str] = [f"series index: {w}" for w in index_warnings]
    infos: list[str] = []
    for name, result in results.items():
        warnings += [f"{name}: {w}" for w in result.warnings]
        infos += [f"{name}: {i}" for i in result.infos]
    series: tuple[SeriesFacts, ...] = ()
    recount_partial = False
    recorded: tuple[VersionFacts, ...] | None = None
    checks: tuple[Coverage, ...] = ()
    hourly = None
    if params.rules is None:
        max_qps = _versions(results["max_hourly_qps"], params)
        series = _series_facts(
            results["series_last"],
            results["series_start"],
            results["series_resets"],
            results["series_now"],
            params,
        )
        recount = _recount_resets(client, params, at, series)
        series = recount.facts
        warnings += recount.warnings
        recount_partial = recount.partial
        coverage = _presence(results["metric_presence"], params, at, max_gap)
        if params.coverage is not None:
            coverage, checks = _coverage(results["coverage"], params, at, max_gap, exporters), (coverage,)
        if sparklines:
            hourly = _hourly(results["hourly_qps"], params, at)
    else:
        max_qps, recorded = _recorded_facts((results["recorded_window"], results["recorded_recent"]), params)
        steps = {q.name: q.step for q in planned}
        coverage, checks = _recorded_coverage(results, steps, params, at, max_gap, exporters)
        if sparklines:
            hourly = _hourly(results["recorded_hourly"], params, at)
    return Evidence(
        source=client.display_url,
        evaluated_at=at,
        window=params.window,
        step=params.step,
        queries=tuple(planned),
        max_qps=max_qps,
        last_step_qps=_versions(results["last_step_qps"], params),
        series=series,
        coverage=coverage,
        warnings=tuple(warnings),
        infos=tuple(infos),
        partial=index_partial or recount_partial or any(r.partial for r in results.values()),
        stats={name: r.stats for name, r in results.items() if r.stats},
        split_models=split_models,
        notes=tuple(notes),
        hourly=hourly,
        recorded=recorded,
        checks=checks,
        scope=scope,
        selector=params.series_selector,
    )


def _index(
    client: PrometheusClient, params: QueryParams, at: float
) -> tuple[dict[Target | None, str], Scope, list[str], bool]:
    """What the index says (no samples read): which targets export the metric, for --coverage,
    and the --selector's reach: the series of the metric with and without it."""
    if params.coverage is None and not params.selector:
        return {}, Scope(), [], False
    start = at - params.window
    scoped = client.series(params.series_selector, start, at)
    exporters: dict[Target | None, str] = {}
    for labels in scoped.series:
        shown = ",".join(f"{k}={v!r}" for k, v in series_key(labels))
        exporters.setdefault(_target(labels), "{" + shown + "}")
    if not params.selector:
        return exporters, Scope(), list(scoped.warnings), scoped.partial
    unscoped = client.series(params.base_selector, start, at)
    inside = {series_key(labels) for labels in scoped.series}

    def version(labels: dict[str, str]) -> tuple[str, str]:
        return labels.get(params.model_label, ""), params.canonical(labels.get(params.version_label, ""))

    scope = Scope(
        selector=",".join(m.render() for m in params.selector),
        model_matchers=tuple(m for m in params.selector if m.name == params.model_label),
        version_matchers=tuple(m for m in params.selector if m.name == params.version_label),
        outside=frozenset(version(labels) for labels in unscoped.series if series_key(labels) not in inside),
        unscoped_models=frozenset(labels.get(params.model_label, "") for labels in unscoped.series),
        unscoped_count=len(unscoped.series),
    )
    return exporters, scope, [*scoped.warnings, *unscoped.warnings], scoped.partial or unscoped.partial

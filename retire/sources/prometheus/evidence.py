"""Gathering the traffic evidence: run every planned query at one instant, concurrently.

All queries are evaluated at the same instant `at` (pinned before the first query is sent), so the
pieces of evidence describe the same window. The result is plain data for the advisor; nothing
here decides a verdict.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from retire.durations import format_duration, iso, promql_duration
from retire.errors import PrometheusError
from retire.sources.columns import Columns, categorical, columns_of, factorize, pairs
from retire.sources.prometheus.answers import QueryResult, Series, SeriesKey, series_key
from retire.sources.prometheus.buckets import StepBounds, StepGrid, on_grid, per_version_bounds
from retire.sources.prometheus.client import PrometheusClient, QueryTooBig
from retire.sources.prometheus.gaps import Gap, global_gaps, target_gaps
from retire.sources.prometheus.instrument import Instrument, learn
from retire.sources.prometheus.promql import Matcher
from retire.sources.prometheus.queries import (
    LOOKBACK_LABEL,
    VERSION_ASPECTS,
    PlannedQuery,
    QueryParams,
    recorded_selector,
    report_queries,
    tolerated_gap,
)
from retire.sources.prometheus.targets import Targets, grace
from retire.sources.prometheus.up import gather_targets, scraped_after

if TYPE_CHECKING:
    import pandas as pd

Progress = Callable[[int, int], None]  # (models done, models in all)


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
    # Its scrape interval, the smallest spacing of its re-read samples (NaN: not re-read): a
    # blind span of one scrape (plus grace) is what no query could see; longer, scrapes were
    # missed before the reset, and calls then were countable had they been stored.
    interval: float = math.nan
    # The longest blind span before a reset during which its target's scrapes were missed (0:
    # none; NaN: not checked, and --max-gap decides). While the target is scraped and the series
    # is absent, the old counter was already gone: only the moment before the first such scrape
    # is blind, as for every scrape.
    blind_missed: float = math.nan
    samples: float = math.nan  # its samples in the window (NaN: not asked)
    # Absent at some successful scrape of its target while present at both ends of the window:
    # the counter was created anew, so its value at the end is calls since then (a TF Serving
    # counter is created by a call, a Triton one at 0), even when it ends where it started.
    recreated: bool = False


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
    # Whether its holes are holes in the data, after which a series may look born (not so for
    # the rollups' heartbeat: a rollup missed leaves the raw series and the fine rules as they were).
    in_data: bool = True


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
    # (model, version) labels of series that only the selector's matchers on the model or version
    # label leave out: the scope checks (served names with no directory, version labels no directory
    # can have, labels that name no version) read them too, so such matchers cannot hide a doubt.
    hidden: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Unlabelled:
    """Series of the metric (with the --selector) in the window that lack the model or the version
    label. Prometheus stores an empty label as none, and the other queries ask for both labels, so
    these series' calls are seen nowhere else: they may have reached any version of their model,
    or of any model. The metric, matchers and labels are kept for reasons that say how to check."""

    no_version: dict[str, int] = field(default_factory=dict)  # model -> its series with no version label
    no_model: int = 0  # series with no model label
    metric: str = ""
    matchers: str = ""  # the --selector's fleet matchers (none on the model or version label), rendered
    model_label: str = "model_name"
    version_label: str = "model_version"


@dataclass(frozen=True)
class Evidence:
    source: str
    evaluated_at: float
    window: float
    step: float
    queries: tuple[PlannedQuery, ...]
    # Records as `Columns` from gather(), or any sequence of records (hand-built evidence).
    max_qps: Sequence[VersionValue]
    last_step_qps: Sequence[VersionValue]
    series: Sequence[SeriesFacts]
    coverage: Coverage
    warnings: tuple[str, ...] = ()
    infos: tuple[str, ...] = ()
    partial: bool = False
    stats: dict[str, dict[str, object]] = field(default_factory=dict)
    split_models: int = 0  # > 0: the queries were run once per model, for this many models
    notes: tuple[str, ...] = ()
    hourly: tuple[VersionSeries, ...] | None = None  # only when sparklines were asked for
    recorded: Sequence[VersionFacts] | None = None  # from recording rules, instead of `series`
    checks: tuple[Coverage, ...] = ()  # more completeness checks (the recording rules' heartbeats)
    scope: Scope = field(default_factory=Scope)
    selector: str = ""  # the metric's full selector, for reasons that name it
    unlabelled: Unlabelled = field(default_factory=Unlabelled)
    # The targets that could hold calls and whether their samples reach the window's end (None:
    # not asked, as in hand-built evidence).
    targets: Targets | None = None
    # With --threshold above 0: each version's busiest step, counted from counter differences at
    # the step boundaries (README "How verdicts are made"); None: not asked.
    steps: Mapping[tuple[str, str], StepBounds] | None = None
    instrument: Instrument | None = None  # what the server says of how its data was made
    # Why the recording rules cannot be relied on (each makes every would-be-safe row unknown):
    # the rules the server runs differ from these options', or cannot cover them.
    rule_problems: tuple[str, ...] = ()

    @property
    def window_start(self) -> float:
        return self.evaluated_at - self.window

    def per_version(self) -> pd.DataFrame:
        """The evidence as one frame, one row per (model, version) any query answered for,
        whatever its source: `model` and `version` (Categoricals, categories in the order the
        answers first named them), the rates `max_qps` and `last_qps` (NaN where not answered;
        `*_seen` says which were), `calls` (NaN: unknown) and the columns of PER_VERSION_FILL."""
        return _per_version(self)

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
        return self.from_rules and _holes_longer(self.step, (self.coverage, *self.checks))


def _holes_longer(step: float, checks: Iterable[Coverage]) -> bool:
    """Whether the data had a hole longer than the step, after which a series looks born."""
    return any(g.seconds > step for c in checks if c.in_data for g in c.gaps)


def _versions(result: QueryResult, params: QueryParams) -> Columns[VersionValue]:
    """Straight into columns: one list per field, no record per series."""
    models, versions, values = [], [], []
    for s in result.series:
        models.append(s.labels.get(params.model_label, ""))
        versions.append(params.canonical(s.labels.get(params.version_label, "")))
        values.append(s.value if s.value is not None else float("nan"))
    return Columns(
        VersionValue, {"model": categorical(models), "version": categorical(versions), "value": values}
    )


def _unlabelled(result: QueryResult, params: QueryParams) -> Unlabelled:
    """The unlabelled_series answer: a count per model, the series with no model label under none."""
    no_version: dict[str, int] = {}
    no_model = 0
    for s in result.series:
        # A count is at least 1; anything else (NaN) still says such series exist.
        n = int(s.value) if s.value is not None and math.isfinite(s.value) and s.value >= 1 else 1
        model = s.labels.get(params.model_label, "")
        if model:
            no_version[model] = no_version.get(model, 0) + n
        else:
            no_model += n
    return Unlabelled(
        no_version,
        no_model,
        params.metric,
        ",".join(m.render() for m in params.fleet),
        params.model_label,
        params.version_label,
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
    last: QueryResult,
    start: QueryResult,
    resets: QueryResult,
    now: QueryResult,
    count: QueryResult,
    params: QueryParams,
    targets: Targets,
) -> Columns[SeriesFacts]:
    """Straight into columns: one list per field, no record per series."""
    starts = {series_key(s.labels): s.value for s in start.series}
    current = {series_key(s.labels) for s in now.series}
    downs = {series_key(s.labels): s.value for s in resets.series}
    counts = {series_key(s.labels): s.value for s in count.series}
    cols: dict[str, list[Any]] = {
        n: []
        for n in ("model", "version", "series", "start", "last", "resets", "gone", "samples", "recreated")
    }
    for s in last.series:
        key = series_key(s.labels)
        cols["model"].append(s.labels.get(params.model_label, ""))
        cols["version"].append(params.canonical(s.labels.get(params.version_label, "")))
        cols["series"].append(key)
        cols["start"].append(starts.get(key))
        cols["last"].append(s.value if s.value is not None else float("nan"))
        # No answer for a series that has samples: nothing proves it never went down.
        cols["resets"].append(_or_nan(downs.get(key)))
        cols["gone"].append(key not in current)
        samples = counts.get(key)
        scrapes = targets.scrapes.get(targets.owner.get(key, ()))
        cols["samples"].append(_or_nan(samples))
        cols["recreated"].append(
            key in starts
            and key in current
            and samples is not None
            and scrapes is not None
            and samples < scrapes
        )
    return Columns(
        SeriesFacts, {**cols, "model": categorical(cols["model"]), "version": categorical(cols["version"])}
    )


def _recreated(series: Sequence[SeriesFacts]) -> dict[SeriesKey, float]:
    """Series created anew in the window, with their last value."""
    cols = columns_of(series, ("series", "last", "recreated"))
    return {k: v for k, v, r in zip(cols["series"], cols["last"], cols["recreated"], strict=True) if r}


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


# Counters that went down are re-read sample by sample, one small query each (8 at a time); past
# this many the rest keep the lower bound (calls since the reset) and their doubt.
MAX_RECOUNT = 1000


SERIES_FIELDS = (
    "model",
    "version",
    "series",
    "start",
    "last",
    "counted",
    "blind",
    "resets",
    "gone",
    "interval",
    "blind_missed",
    "recreated",
)


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
        drops = []
        for t, v in points:
            if not (math.isfinite(v) and v >= 0):
                return f, result  # the advisor reads the bad value from `last` or refuses it
            if v >= previous[1]:
                calls += v - previous[1]
            else:
                calls += v
                blind = max(blind, t - previous[0])
                drops.append((previous[0], t))
            previous = (t, v)
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


Aspects = dict[tuple[str, str], dict[str, float]]  # (model, version) -> aspect -> highest value


def _recorded_aspects(parts: Iterable[QueryResult], params: QueryParams) -> Aspects:
    """Per version, each aspect's highest value over the rollups, the span since the last one and
    the rule evaluated raw at the instant (NaN wins: it is evidence of a problem)."""
    facts: Aspects = {}
    for result in parts:
        for s in result.series:
            aspect = s.labels.get("aspect", "")
            if aspect not in VERSION_ASPECTS:
                continue  # `present` is the heartbeat, checked over the window separately
            version = params.canonical(s.labels.get(params.version_label, ""))
            key = (s.labels.get(params.model_label, ""), version)
            seen = facts.setdefault(key, {})
            seen[aspect] = _worst(seen.get(aspect), float("nan") if s.value is None else s.value)
    return facts


def _recorded_facts(
    facts: Aspects, step: float, returns: bool
) -> tuple[Sequence[VersionValue], Sequence[VersionFacts]]:
    """The busiest step's rate per version, as a bound no call escapes, and the other facts.

    The largest growth over the rule's lookback holds every step-long span of samples (README
    "Recording rules"), so it divided by the step bounds the busiest step's rate from above;
    first calls of born series (which no growth shows) are added, unless a series may be one back
    after a gap (`returns`). The recorded rate itself (the raw queries' measure) is never less."""
    max_qps = []
    for (model, version), f in facts.items():
        seen = [a for a in ("rate", "increase", "born") if a in f]
        if not seen:
            continue
        first = 0.0 if returns else f.get("born", 0.0)
        parts = [f.get("rate", 0.0), (f.get("increase", 0.0) + first) / step]
        value = math.nan if any(math.isnan(v) for v in (*parts, first)) else max(parts)
        max_qps.append(VersionValue(model, version, value))
    recorded = tuple(
        VersionFacts(m, v, f.get("series", 0.0), f.get("born", 0.0), f.get("resets", 0.0))
        for (m, v), f in facts.items()
    )
    return tuple(max_qps), recorded


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
    from retire.sources.prometheus.recording import check_loaded, parse_lookback

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
    lookbacks = [parse_lookback(s.labels.get(LOOKBACK_LABEL, "")) for s in recorded]
    if None in lookbacks:
        problems.append(
            f"recorded series lack a readable {LOOKBACK_LABEL} label (rules made by an older retire or by "
            "hand), so what they cover cannot be checked: load the rules `retire rules` prints"
        )
        return tuple(dict.fromkeys(problems)), notes
    lookback = min(v for v in lookbacks if v is not None)
    gap = tolerated_gap(params.window, max_gap, spec.interval)
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
    return tuple(dict.fromkeys(problems)), notes


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
    """The fine heartbeat stands for metric_presence; the rollup heartbeat tolerates nothing:
    two rollups further apart than one rollup's range leave fine samples that neither read.
    `steps`: each heartbeat query's resolution, as planned."""
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
    return _coverage(results["coverage"], params, at, max_gap, exporters), (fine, rollups)


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


def _run(
    client: PrometheusClient,
    planned: Iterable[PlannedQuery],
    params: QueryParams,
    at: float,
    pool: ThreadPoolExecutor,
) -> dict[str, QueryResult]:
    def one(q: PlannedQuery) -> QueryResult:
        if q.kind == "range":
            result = client.query_range(q.promql, at - (q.span or params.window), at, q.step)
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


_UNSPLIT = ("coverage", "unlabelled_series")  # run once, not per model


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
    per-model counts are merged by presence; coverage (about targets, not models) runs once, and so
    does unlabelled_series (cheap: it reads only series lacking a label, which a matcher on the
    model label would hide).
    """
    seen = client.label_values(params.model_label, params.series_selector, at - params.window, at)
    models = sorted(set(seen) | set(models_hint()))  # models on disk: asked only when splitting
    per_name: dict[str, list[QueryResult]] = {}
    for done, model in enumerate(models):
        only = Matcher(params.model_label, "=", model)
        scoped = replace(params, selector=(*params.selector, only), coverage=None)
        planned = [q for q in report_queries(scoped, sparklines) if q.name not in _UNSPLIT]
        try:
            for name, result in _run(client, planned, scoped, at, pool).items():
                per_name.setdefault(name, []).append(result)
        except QueryTooBig as e:
            raise PrometheusError(
                f"even split by model, the queries for model {model!r} are too big: {e.message}"
            ) from e
        if progress:
            progress(done + 1, len(models))
    once = [q for q in report_queries(params) if q.name in _UNSPLIT]
    per_name.update({k: [v] for k, v in _run(client, once, params, at, pool).items()})
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
    # What the server says of its own data, asked once while the queries run.
    side = ThreadPoolExecutor(max_workers=1)
    learning = side.submit(learn, client, at)
    side.shutdown(wait=False)  # its one task ends within the timeout; an error here does not wait
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
    instrument = learning.result()
    notes += instrument.notes

    warnings: list[str] = [f"series index: {w}" for w in index_warnings]
    infos: list[str] = []
    for name, result in results.items():
        warnings += [f"{name}: {w}" for w in result.warnings]
        infos += [f"{name}: {i}" for i in result.infos]
    series: Sequence[SeriesFacts] = ()
    step_bounds: Mapping[tuple[str, str], StepBounds] | None = None
    recount_partial = False
    recorded: Sequence[VersionFacts] | None = None
    checks: tuple[Coverage, ...] = ()
    rule_problems: tuple[str, ...] = ()
    hourly = None
    max_qps: Sequence[VersionValue]
    if params.rules is None:
        newest = {series_key(s.labels): s.value for s in results["series_now"].series if s.value is not None}
        in_window = [s.labels for s in results["series_last"].series]
        grid = StepGrid.ending(at, params.window, params.step)
        targets = gather_targets(
            client,
            params,
            at,
            in_window,
            newest,
            grid if params.per_step else None,
            _configured(instrument),
            instrument.lookback,
            instrument.scraped,
            instrument.own_jobs,
        )
        max_qps = _versions(results["max_hourly_qps"], params)
        series = _series_facts(
            results["series_last"],
            results["series_start"],
            results["series_resets"],
            results["series_now"],
            results["series_count"],
            params,
            targets,
        )
        recount = _recount_resets(
            client, params, at, series, lambda key, t, span: scraped_after(client, targets, key, t, span)
        )
        series = recount.facts
        warnings += recount.warnings
        recount_partial = recount.partial
        if params.per_step:
            step_bounds = per_version_bounds(
                results["step_values"].series,
                results["step_times"].series,
                grid,
                lambda labels: (
                    labels.get(params.model_label, ""),
                    params.canonical(labels.get(params.version_label, "")),
                ),
                lambda key: targets.owner.get(key, ()),
                targets.interval,
                targets.up_steps,
                recount.points,
                _recreated(series),
                targets.step_counts,
                {series_key(s.labels): on_grid(s.points, grid) for s in results["step_counts"].series},
                targets.step_successes,
            )
        coverage = _presence(results["metric_presence"], params, at, max_gap)
        if params.coverage is not None:
            coverage, checks = _coverage(results["coverage"], params, at, max_gap, exporters), (coverage,)
        if sparklines:
            hourly = _hourly(results["hourly_qps"], params, at)
    else:
        targets = gather_targets(
            client,
            params,
            at,
            configured=_configured(instrument),
            lookback=instrument.lookback,
            scraped=instrument.scraped,
            own_jobs=instrument.own_jobs,
        )
        aspects = _recorded_aspects(
            (results["recorded_window"], results["recorded_recent"], results["rule_tail"]), params
        )
        steps = {q.name: q.step for q in planned}
        coverage, checks = _recorded_coverage(results, steps, params, at, max_gap, exporters)
        # A series back after a gap longer than the step looks born (README): then first calls
        # are only a doubt, and are left out of the bound on the busiest step.
        returns = _holes_longer(params.step, (coverage, *checks))
        max_qps, recorded = _recorded_facts(aspects, params.step, returns)
        found, more = _rule_checks(params, results, instrument, exporters, at, max_gap)
        rule_problems, notes = found, [*notes, *more]
        if sparklines:
            hourly = _hourly(results["recorded_hourly"], params, at)
    warnings += [f"targets' up series: {w}" for w in targets.warnings]
    notes += _gone_notes(targets)
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
        partial=index_partial
        or recount_partial
        or targets.partial
        or any(r.partial for r in results.values()),
        stats={name: r.stats for name, r in results.items() if r.stats},
        split_models=split_models,
        notes=tuple(notes),
        hourly=hourly,
        recorded=recorded,
        checks=checks,
        scope=scope,
        selector=params.series_selector,
        unlabelled=_unlabelled(results["unlabelled_series"], params),
        targets=targets,
        steps=step_bounds,
        instrument=instrument,
        rule_problems=rule_problems,
    )


def _configured(instrument: Instrument) -> Callable[[str, str], float | None]:
    """A target's scrape interval as the server's configuration names it for that target or its
    job; not the global default, which a server with no such job (remote-written data) names too."""

    def interval(job: str, instance: str) -> float | None:
        found = instrument.target_intervals.get((job, instance))
        return found if found is not None else instrument.job_intervals.get(job)

    return interval


def _gone_notes(targets: Targets) -> list[str]:
    """Targets taken as replaced: said in the header, since their calls stop counting there."""
    gone = targets.where("gone")
    if not gone:
        return []
    first = gone[0]
    more = f" and {len(gone) - 1} more" if len(gone) > 1 else ""
    return [
        f"target {{{first.text}}}{more} stopped being scraped before the window's end (last scrape "
        f"{iso(first.ended or 0)}; Prometheus marked its series stale, or others were still scraped "
        "right after): taken as replaced"
    ]


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

    fleet = params.fleet

    def in_fleet(labels: dict[str, str]) -> bool:
        return all(m.matches(labels.get(m.name, "")) for m in fleet)

    scope = Scope(
        selector=",".join(m.render() for m in params.selector),
        model_matchers=tuple(m for m in params.selector if m.name == params.model_label),
        version_matchers=tuple(m for m in params.selector if m.name == params.version_label),
        outside=frozenset(version(labels) for labels in unscoped.series if series_key(labels) not in inside),
        unscoped_models=frozenset(labels.get(params.model_label, "") for labels in unscoped.series),
        unscoped_count=len(unscoped.series),
        hidden=frozenset(
            version(labels)
            for labels in unscoped.series
            if series_key(labels) not in inside and in_fleet(labels)
        ),
    )
    return exporters, scope, [*scoped.warnings, *unscoped.warnings], scoped.partial or unscoped.partial


# --------------------------------------------------------------------------------------------
# The per-version frame: what the advisor joins, whatever the source (raw series or the rules)

# Each per-version column and its value for a version no query answered for, with its dtype.
PER_VERSION_FILL: dict[str, tuple[Any, Any]] = {
    "max_qps_seen": (False, "bool"),
    "last_qps_seen": (False, "bool"),
    "series": (0, "int64"),
    "born": (0, "int64"),
    "resets": (0, "int64"),  # series whose reset may hide calls: a doubt
    "resets_seen": (0, "int64"),  # series that reset at all (the wording says so)
    "nan_series": (0, "int64"),
    "gone": (0, "int64"),
    "blind": (0.0, "float64"),
    "blind_over": (0.0, "float64"),
}


def went_down(cols: dict[str, Any]) -> Any:
    """Which series' counters went down in the window (a reload, a restart): `resets()` says so
    or could not say, or it ended below where it started. The one place this is decided: evidence
    re-reads those series, the advisor counts their calls across the reset or doubts them."""
    import numpy as np

    start, has_start = _optional(cols["start"])
    last = np.asarray(cols["last"], dtype=float)
    resets = np.asarray(cols["resets"], dtype=float)
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(resets) & (resets <= 0)) | (has_start & (last < start))


def _optional(column: Any) -> tuple[Any, Any]:
    """A column of numbers or None, as floats (None: NaN) and where it had a number."""
    import numpy as np

    values = np.asarray(column)
    if values.dtype != object:
        return values.astype(float), np.ones(len(values), dtype=bool)
    has = values != None  # noqa: E711 (elementwise, on an object array)
    out = np.full(len(values), np.nan)
    out[has] = values[has].astype(float)
    return out, has


def _per_version(evidence: Evidence) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    qcols = columns_of(evidence.max_qps, ("model", "version", "value"))
    lcols = columns_of(evidence.last_step_qps, ("model", "version", "value"))
    if evidence.recorded is not None:  # with recording rules: per-version facts, not per-series
        scols = columns_of(evidence.recorded, ("model", "version", "series", "born_calls", "resets"))
    else:
        names = (
            "model",
            "version",
            "start",
            "last",
            "counted",
            "blind",
            "resets",
            "gone",
            "blind_missed",
            "recreated",
        )
        scols = columns_of(evidence.series, names)
    steps = evidence.steps or {}
    stcols: dict[str, Any] = {
        "model": categorical([m for m, _ in steps]),
        "version": categorical([v for _, v in steps]),
        "low": [b.low for b in steps.values()],
        "high": [b.high for b in steps.values()],
    }
    parts = (qcols, lcols, scols, stcols)
    mcode, mnames = factorize(*(p["model"] for p in parts))
    vcode, vnames = factorize(*(p["version"] for p in parts))
    pair_codes, inverse = pairs(mcode, vcode, len(mnames), len(vnames))
    width = max(len(vnames), 1)
    bounds = np.cumsum([0, *(len(p["model"]) for p in parts)])
    qk, lk, sk, stk = (inverse[bounds[i] : bounds[i + 1]] for i in range(len(parts)))

    def values(cols: dict[str, Any], k: Any, name: str) -> pd.DataFrame:
        frame = pd.DataFrame({"k": k, name: np.asarray(cols["value"], dtype=float)})
        frame[name + "_seen"] = True
        if frame["k"].duplicated().any():  # a `sum by` answer has none, but "007" and "7" meet here
            frame = frame.groupby("k", as_index=False, sort=False).agg({name: "max", name + "_seen": "any"})
        return frame

    per_series = (
        _per_version_series(scols, sk, evidence.coverage.max_gap)
        if evidence.recorded is None
        else _per_version_recorded(scols, sk)
    )
    n = len(pair_codes)
    out: dict[str, Any] = {
        "model": pd.Categorical.from_codes(pair_codes // width, pd.Index(mnames, dtype=object)),
        "version": pd.Categorical.from_codes(pair_codes % width, pd.Index(vnames, dtype=object)),
    }
    # Each part has one row per key: its values are placed at their keys, the rest filled.
    step_part = pd.DataFrame(
        {
            "k": stk,
            "step_low": np.asarray(stcols["low"], dtype=float),
            "step_high": np.asarray(stcols["high"], dtype=float),
        }
    )
    for part in (values(qcols, qk, "max_qps"), values(lcols, lk, "last_qps"), per_series, step_part):
        k = part["k"].to_numpy()
        for col in part.columns.drop("k"):
            fill, dtype = PER_VERSION_FILL.get(col, (np.nan, "float64"))
            column = np.full(n, fill, dtype=dtype)
            column[k] = part[col].to_numpy(dtype=dtype)
            out[col] = column
    order = (
        "model",
        "version",
        "max_qps",
        "max_qps_seen",
        "last_qps",
        "last_qps_seen",
        "calls",
        "step_low",
        "step_high",
    )
    columns = {c: out[c] for c in (*order, *PER_VERSION_FILL)}  # the same columns from every source
    return pd.DataFrame(columns, copy=False)  # fresh arrays: no copy into blocks


def _per_version_series(scols: dict[str, Any], sk: Any, max_gap: float) -> pd.DataFrame:
    """Per version from per-series start and last values: calls, births, resets, NaNs.

    A counter that went down reset (a reload, a restart). Where evidence re-read its samples,
    its calls are counted across the reset, and only the span with no sample before the reset
    stays blind: one scrape interval (plus grace) of it is what no query could see, and is
    tolerated; longer (scrapes were missed before the reset, or longer than --max-gap where the
    interval is not known), or not re-read, the reset is a doubt (calls before it may be lost)."""
    import numpy as np
    import pandas as pd

    start, has_start = _optional(scols["start"])
    s = pd.DataFrame(
        {
            "k": sk,
            "start": start,
            "has_start": has_start,
            "last": np.asarray(scols["last"], dtype=float),
            "counted": _optional(scols["counted"])[0],
            "blind": np.asarray(scols["blind"], dtype=float),
            "gone": np.asarray(scols["gone"], dtype=bool),
        }
    )
    born = ~s["has_start"]
    reset = went_down(scols)
    recounted = reset & np.isfinite(s["counted"])
    # Calls in the window per series. Born in the window: TF Serving creates the series on the
    # first call, so its whole value is calls in the window. After a reset, at least the new value,
    # or all of them where the samples were re-read.
    s["calls"] = np.where(recounted, s["counted"], np.where(born | reset, s["last"], s["last"] - s["start"]))
    # Recreated in the window (absent at a successful scrape): at least its value since then.
    recreated = np.asarray(scols["recreated"], dtype=bool)
    s["calls"] = np.where(recreated, np.fmax(s["calls"], s["last"]), s["calls"])
    # A counter is a finite, non-negative number; anything else (NaN, +Inf, where Inf - Inf would
    # read as "0 calls") is evidence of a problem, never of no traffic.
    last_ok = np.isfinite(s["last"]) & (s["last"] >= 0)
    start_ok = np.isfinite(s["start"]) & (s["start"] >= 0)
    s["nan"] = ~last_ok | (s["has_start"] & ~start_ok)
    s.loc[s["nan"], "calls"] = np.nan
    s["born"] = born
    missed = np.asarray(scols["blind_missed"], dtype=float)
    # Where the target's scrapes were checked, only spans it missed are blind; else --max-gap.
    checked = np.isfinite(missed)
    blind_doubt = np.where(checked, missed, np.where(s["blind"] > max_gap, s["blind"], 0.0))
    s["reset"] = reset & ~(recounted & (blind_doubt <= 0))  # a doubt
    s["reset_seen"] = reset | recreated
    # Shown in the reasons: the blind span of a reset that is a doubt because of it, else the
    # longest tolerated one.
    s["blind"] = np.where(reset, s["blind"], 0.0)
    s["blind_over"] = np.where(recounted, blind_doubt, 0.0)
    s["one"] = 1
    per = s.groupby("k", as_index=False, sort=False).agg(
        series=("one", "sum"),
        calls=("calls", "sum"),
        born=("born", "sum"),
        resets=("reset", "sum"),
        resets_seen=("reset_seen", "sum"),
        blind=("blind", "max"),
        blind_over=("blind_over", "max"),
        nan_series=("nan", "sum"),
        gone=("gone", "sum"),
    )
    # Calls of the readable series still count (positive evidence); none counted and some series
    # unreadable is "calls unknown", not "0 calls".
    per.loc[(per["nan_series"] > 0) & (per["calls"] == 0), "calls"] = np.nan
    return per


def _per_version_recorded(rcols: dict[str, Any], rk: Any) -> pd.DataFrame:
    """Per version from the recording rules: the calls counted are the first calls of series born
    in the window (the rate covers the rest); the number of born series is not recorded (0)."""
    import numpy as np
    import pandas as pd

    series = np.asarray(rcols["series"], dtype=float)
    born_calls = np.asarray(rcols["born_calls"], dtype=float)
    resets = np.asarray(rcols["resets"], dtype=float)
    nan = ~(np.isfinite(series) & np.isfinite(born_calls) & np.isfinite(resets))
    frame = pd.DataFrame(
        {
            "k": rk,
            "series": np.nan_to_num(series, nan=0.0, posinf=0.0, neginf=0.0).astype("int64"),
            "calls": born_calls,
            "born": np.zeros(len(rk), dtype="int64"),
            "resets": (np.nan_to_num(resets, nan=0.0, posinf=0.0, neginf=0.0) > 0).astype("int64"),
            "nan_series": nan.astype("int64"),
        }
    )
    frame["resets_seen"] = frame["resets"]
    frame["blind"] = 0.0
    frame["blind_over"] = 0.0
    frame["gone"] = 0
    if frame["k"].duplicated().any():  # one fact per version from evidence; be safe if not
        frame = frame.groupby("k", as_index=False, sort=False).agg(
            {
                "series": "max",
                "calls": "max",
                "born": "max",
                "resets": "max",
                "resets_seen": "max",
                "blind": "max",
                "blind_over": "max",
                "nan_series": "sum",
                "gone": "max",
            }
        )
    return frame

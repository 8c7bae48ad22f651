"""The scrape targets behind the metric, and whether their samples reach the window's end.

A hole in the middle of the window hides no call of a counter that is still there after it: the
next sample holds the calls. A hole at the end hides them for good (ingestion lag, a target down
or unreachable at the end), and so does a target that stops being scraped while it still serves.
So at the evaluation instant every target that could hold calls must have a stored scrape within
one scrape interval (plus a little grace, `grace`) or be shown gone; calls made after that last
scrape cannot be seen by any query, and README "How verdicts are made" says so.

What a target is, and its interval, come from the `up` series Prometheus writes for every scrape:

- a target is an `up` series whose labels are all on some series of the metric (target labels are
  attached to both; else the one `up` of the series' job and instance), or, with --coverage, any
  series of its selector; a series of the metric with no such `up` series stands for a target of
  its own (federated or remote-written data);
- its scrape interval is the spacing of its recent `up` samples (else its job's, else the fleet's);
- its newest stored scrape is its newest sample of the metric or `up` = 1;
- it is *gone* when its `up` series ended on a successful scrape while another target was scraped
  right after: service discovery dropped it (a replaced pod), so nothing after that scrape was a
  call it could still count. A target that ends any other way (`up` = 0 at the end, no `up` at
  all, everything stopping together) makes would-be-safe versions unknown.

Pure functions over query answers, plus `gather_targets`, which asks for them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from retire.durations import promql_duration
from retire.sources.prometheus.answers import QueryResult, Series, SeriesKey, series_key
from retire.sources.prometheus.buckets import StepGrid, on_grid
from retire.sources.prometheus.client import PrometheusClient
from retire.sources.prometheus.promql import Matcher
from retire.sources.prometheus.queries import QueryParams, render

# Raw `up` samples read back from the instant, to learn each target's scrape interval (it must
# hold two scrapes: intervals up to half of it are learned).
RECENT = 600.0
# Targets whose end is checked sample by sample (one small query each); past this many, the rest
# cannot be shown gone.
MAX_ENDED = 50

FRESH, GONE, DOWN, STALE, BLIND = "fresh", "gone", "down", "stale", "blind"


def grace(interval: float) -> float:
    """Slack on top of one scrape interval for a scrape still being written at the instant: half
    an interval, between 1 s and 5 s. Calls after the last scrape before `instant - grace` are not
    in any answer (the oracle's truth says the same)."""
    return min(max(interval / 2, 1.0), 5.0)


# A gap this much shorter than the interval still counts as "one scrape missed": scrape times
# jitter by milliseconds, and a learned interval is only as exact as the samples.
def _jitter(interval: float) -> float:
    return min(0.5, interval / 20)


LabelSet = SeriesKey  # a target's or a series' labels, as data


@dataclass(frozen=True)
class TargetState:
    """One target at the window's end. `labels`: its `up` series' labels (or, for a target known
    only from the metric, its job and instance); `last`: its newest stored scrape at or before the
    instant (None: none in the last RECENT seconds); `ended`: the time of its last `up` sample when
    it ended before the instant."""

    labels: LabelSet
    state: str  # FRESH, GONE, DOWN, STALE or BLIND (its scrape interval could not be learned)
    interval: float | None
    last: float | None
    ended: float | None = None
    has_up: bool = True

    @property
    def text(self) -> str:
        shown = {k: v for k, v in self.labels if k in ("job", "instance")} or dict(self.labels)
        return ",".join(f'{k}="{v}"' for k, v in shown.items())


@dataclass(frozen=True)
class Targets:
    """Every target that could hold calls, with its state at the window's end."""

    checked: bool  # False: not asked (no series of the metric in the window)
    selector: str  # the `up` selector read ("" when none)
    instant: float
    states: tuple[TargetState, ...] = ()
    warnings: tuple[str, ...] = ()
    partial: bool = False
    # Each series of the metric (its label set) -> its target's labels.
    owner: Mapping[LabelSet, LabelSet] = field(default_factory=dict)
    # With per-step evidence: each `up` target's newest successful scrape at or before each step
    # boundary (None: none within 5 minutes, or that scrape failed).
    up_steps: Mapping[LabelSet, tuple[float | None, ...]] = field(default_factory=dict)
    # Each `up` target's successful scrapes in the window (a series of it present throughout has
    # a sample at every one).
    scrapes: Mapping[LabelSet, float] = field(default_factory=dict)
    recent: float = RECENT  # how far back from the instant recent scrapes were read
    # With per-step evidence: each `up` target's samples in each step (index k: the step ending
    # at boundary k; 0 unused), so a scrape interval shorter earlier in the window is seen.
    step_counts: Mapping[LabelSet, tuple[float | None, ...]] = field(default_factory=dict)
    # ... and its successful scrapes in each step (a series of it present throughout has a sample
    # at every one).
    step_successes: Mapping[LabelSet, tuple[float | None, ...]] = field(default_factory=dict)

    @property
    def up_targets(self) -> set[LabelSet]:
        """The targets known by an `up` series of their own."""
        return {t.labels for t in self.states if t.has_up}

    def interval(self, target: LabelSet) -> float | None:
        for t in self.states:
            if t.labels == target:
                return t.interval
        return None

    def where(self, *states: str) -> list[TargetState]:
        return [t for t in self.states if t.state in states]

    @property
    def newest(self) -> float | None:
        """The newest stored scrape of any target: where the data ends."""
        lasts = [t for s in self.states for t in (s.last, s.ended) if t is not None]
        return max(lasts) if lasts else None


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
    metric_series: Sequence[dict[str, str]] | None = None,
    newest: dict[LabelSet, float] | None = None,
    steps: StepGrid | None = None,
    configured: Callable[[str, str], float | None] = lambda job, instance: None,
    lookback: float | None = None,
    scraped: Sequence[Mapping[str, str]] | None = None,
    own_jobs: frozenset[str] | None = None,
) -> Targets:
    """Ask Prometheus for the `up` series of the metric's targets and judge each at the instant.
    `metric_series`: the label sets of the metric's series in the window; `newest`: each one's
    newest sample at or before the instant (the `series_now` query). Asked for here when not given
    (with recording rules, which read no raw series: the index and one instant lookup).
    `configured`: a target's scrape interval as the server's configuration names it (job and
    instance), used where its `up` samples do not show it. `lookback`: the server's query lookback,
    `scraped`: the labels of the targets it scrapes itself, and `own_jobs`: its job_names without
    honor_labels, if known, so that staleness markers can be read (`_confirm_gone`)."""
    if metric_series is None:
        metric_series = client.series(params.series_selector, at - params.window, at).series
    if newest is None:
        now = client.query(render("series_now", params), at)
        newest = {series_key(s.labels): s.value for s in now.series if s.value is not None}
    # A sample's time is at or before the instant: any other answer (NaN, +Inf, the future) is
    # no proof of a scrape.
    newest = {k: t for k, t in newest.items() if _plausible(t, at)}
    resolution = params.resolution
    if not metric_series and params.coverage is None:
        return Targets(False, "", at)
    selector = up_selector(params, metric_series)
    if not selector:
        states, owner = _judge(at, metric_series, newest, (), (), (), lambda _: False, configured)
        return Targets(True, "", at, states, owner=owner)
    start = at - params.window
    # The boundaries of the steps are points of the grid when the step is a multiple of it.
    own_grid = steps is not None and bool(steps.step % resolution or steps.start != start)
    with ThreadPoolExecutor(max_workers=5) as pool:
        recent_f = pool.submit(client.samples, f"{selector}[{promql_duration(RECENT)}]", at)
        times_f = pool.submit(client.query_range, f"timestamp({selector})", start, at, resolution)
        values_f = pool.submit(client.query_range, selector, start, at, resolution)
        scrapes_f = pool.submit(
            client.query, f"sum_over_time({selector}[{promql_duration(params.window)}])", at
        )
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
        step_times, step_values = (
            (step_times_f.result(), step_values_f.result()) if own_grid else (times, values)
        )
    answers: tuple[QueryResult, ...] = (recent, times, values, step_times, step_values, scrapes)
    up_steps = {} if steps is None else _up_at_steps(step_times.series, step_values.series, steps)
    step_counts, step_successes = {}, {}
    if steps is not None:
        counts, sums = counts_f.result(), sums_f.result()
        answers = (*answers, counts, sums)
        step_counts = {series_key(s.labels): tuple(on_grid(s.points, steps)) for s in counts.series}
        step_successes = {series_key(s.labels): tuple(on_grid(s.points, steps)) for s in sums.series}
    # --coverage's series are all targets of the fleet; `up` of the metric's jobs are those that
    # exported it, and the others that pass the --selector's matchers on labels they carry (a
    # pod that took no call yet; not another service sharing the job).
    fleet = params.fleet

    def declared(target: LabelSet) -> bool:
        if params.coverage is not None:
            return True
        labels = dict(target)
        # Another service sharing the job name carries none of the selector's labels: not ours.
        return all(m.name in labels and m.matches(labels[m.name]) for m in fleet)

    states, owner = _judge(
        at, metric_series, newest, recent.series, times.series, values.series, declared, configured
    )
    ended = [t for t in states if t.state == GONE]
    fleet_targets = {t.labels for t in states}
    confirmed = _confirm_gone(
        client, selector, ended[:MAX_ENDED], fleet_targets, at, lookback, (scraped, own_jobs)
    )
    states = tuple(t if t.state != GONE or t.labels in confirmed else replace(t, state=STALE) for t in states)
    return Targets(
        True,
        selector,
        at,
        states,
        tuple(dict.fromkeys(w for a in answers for w in a.warnings)),
        any(a.partial for a in answers),
        owner,
        up_steps,
        {series_key(s.labels): s.value for s in scrapes.series if s.value is not None},
        step_counts=step_counts,
        step_successes=step_successes,
    )


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
            and _plausible(t, steps.boundary(k))
            and k < len(ok)
            and ok[k] is not None
            and ok[k] >= 1  # type: ignore[operator]
            else None
            for k, t in enumerate(when)
        )
    return out


def _plausible(t: float, at: float) -> bool:
    return math.isfinite(t) and 0 < t <= at + 1e-3


def _interval(points: Sequence[tuple[float, float]]) -> float | None:
    """The smallest spacing between consecutive samples: one scrape interval, even with a missed
    scrape among them. Rounded to the millisecond."""
    times = sorted({t for t, _ in points})
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return round(min(gaps), 3) if gaps else None


def _judge(
    at: float,
    metric_series: Sequence[dict[str, str]],
    newest: dict[LabelSet, float],
    recent: Sequence[Series],
    times: Sequence[Series],
    values: Sequence[Series],
    declared: Callable[[LabelSet], bool],
    configured: Callable[[str, str], float | None] = lambda job, instance: None,
) -> tuple[tuple[TargetState, ...], dict[LabelSet, LabelSet]]:
    """Each target's state at the instant (before gone targets are confirmed sample by sample),
    and each metric series' target. `declared`: whether an `up` series that exported no series
    of the metric is a target of the fleet all the same."""

    def series(items: Sequence[Series]) -> dict[LabelSet, Series]:
        return {series_key(s.labels): s for s in items}

    recent_by, times_by, values_by = series(recent), series(times), series(values)
    ups = set(recent_by) | set(times_by)
    # Each metric series to the `up` series whose labels it carries (its target), else a target
    # of its own named by its job and instance.
    by_target: dict[LabelSet, list[float]] = {u: [] for u in ups if declared(u)}
    orphans: set[LabelSet] = set()
    by_job_instance: dict[tuple[str, str], list[LabelSet]] = {}
    for u in ups:
        d = dict(u)
        by_job_instance.setdefault((d.get("job", ""), d.get("instance", "")), []).append(u)
    owner: dict[LabelSet, LabelSet] = {}
    for labels in metric_series:
        key = series_key(labels)
        candidates = by_job_instance.get((labels.get("job", ""), labels.get("instance", "")), [])
        owners = [u for u in candidates if all(labels.get(k) == v for k, v in u)]
        if not owners and len(candidates) == 1:
            # The one `up` of its job and instance, with a label the series lacks (dropped from the
            # metric by a metric_relabel_config, which `up` never goes through).
            owners = candidates
        if owners:
            target = max(owners, key=len)
        else:
            target = tuple((k, labels[k]) for k in ("instance", "job") if k in labels)
            orphans.add(target)
        owner[key] = target
        by_target.setdefault(target, [])
        if key in newest:
            by_target[target].append(newest[key])
    intervals: dict[LabelSet, float] = {}
    for u, s in recent_by.items():
        interval = _interval(s.points)
        if interval is not None:
            intervals[u] = interval
    fallback = _fallback_intervals(intervals)
    out = []
    for target, metric_times in by_target.items():
        has_up = target not in orphans
        d = dict(target)
        interval = (
            intervals.get(target) or configured(d.get("job", ""), d.get("instance", "")) or fallback(target)
        )
        up_points = recent_by[target].points if target in recent_by else ()
        ok = [t for t, v in up_points if v >= 1 and t <= at] + [t for t in metric_times if t <= at]
        last = max(ok) if ok else None
        if interval is not None:
            if last is not None and at - last < interval + grace(interval) - _jitter(interval):
                out.append(TargetState(target, FRESH, interval, last, has_up=has_up))
                continue
        elif last is not None and at - last < RECENT / 2:
            # Scraped in the last minutes, at an interval not learned: no telling if on time.
            out.append(TargetState(target, BLIND, None, last, has_up=has_up))
            continue
        newest_up = max(up_points, default=None)
        if newest_up is not None and newest_up[1] < 1 and (last is None or newest_up[0] > last):
            out.append(TargetState(target, DOWN, interval, last, has_up=has_up))
            continue
        ended, ended_up = _ended(times_by.get(target), values_by.get(target))
        if has_up and ended is not None and ended_up:
            out.append(TargetState(target, GONE, interval, last, ended=ended, has_up=has_up))
        else:
            out.append(TargetState(target, STALE, interval, last, ended=ended, has_up=has_up))
    return tuple(sorted(out, key=lambda t: t.labels)), owner


def _ended(times: Series | None, values: Series | None) -> tuple[float | None, bool]:
    """A target's last `up` sample in the window and whether it was a successful scrape, from the
    range queries of `timestamp(up)` and `up` (each point: the newest sample at or before it)."""
    if times is None:
        return None, False
    points = [(t, v) for t, v in times.points if _plausible(v, t)]
    if not points:
        return None, False
    t_end = max(v for _, v in points)
    if values is None:
        return t_end, False
    at_point = dict(values.points)
    # The grid point that first saw the last sample holds its value.
    first_seen = min(t for t, v in points if v == t_end)
    value = at_point.get(first_seen)
    return t_end, value is not None and value >= 1 and math.isfinite(value)


def _fallback_intervals(known: dict[LabelSet, float]) -> Callable[[LabelSet], float | None]:
    """For a target whose own interval is unknown: its job's smallest, else the fleet's smallest."""
    by_job: dict[str, float] = {}
    for labels, interval in known.items():
        job = dict(labels).get("job", "")
        by_job[job] = min(interval, by_job.get(job, math.inf))
    fleet = min(known.values(), default=None)

    def fallback(target: LabelSet) -> float | None:
        return by_job.get(dict(target).get("job", ""), fleet)

    return fallback


# Labels that name one pod (or its host) rather than where its data flows: a replaced pod's
# successor differs in them. Every other label (job, cluster, region, replica, namespace, the
# external labels each Prometheus adds to what it remote-writes) must be the same for a target to
# vouch that another's data would have arrived: two clusters may differ in nothing but job names.
POD_LABELS = frozenset(
    {
        "instance", "pod", "pod_name", "kubernetes_pod_name", "pod_ip", "node",
        "kubernetes_node", "node_name", "host", "hostname", "container_id", "pod_template_hash",
        "controller_revision_hash", "statefulset_kubernetes_io_pod_name",
    }
)  # fmt: skip


def same_pipeline(a: dict[str, str], b: dict[str, str]) -> bool:
    """Whether two targets' data may be taken to travel the same way: the same value (or none)
    of every label but those naming a pod (and the metric name, which answers may carry)."""
    return all(a.get(k, "") == b.get(k, "") for k in (a.keys() | b.keys()) - POD_LABELS - {"__name__"})


def _confirm_gone(
    client: PrometheusClient,
    selector: str,
    ended: Sequence[TargetState],
    fleet: set[LabelSet],
    at: float,
    lookback: float | None,
    own: tuple[Sequence[Mapping[str, str]] | None, frozenset[str] | None] = (None, None),
) -> set[LabelSet]:
    """The targets among `ended` after whose last `up` sample another target of the fleet was
    scraped within one interval plus grace: the scraping went on, so service discovery dropped
    them. Only the fleet's own targets whose labels say their data travels the same way count
    (`same_pipeline`): another cluster's data arriving on time says nothing of this one's (each
    remote-writes on its own). Or Prometheus said so itself: when service discovery drops a
    target, Prometheus ends each of its series with a staleness marker at its next scrape time
    (not when it shuts down, nor for data lost on the way), so an instant query just after that
    finds no `up` although its last sample is within the query lookback (`marked`). Only for a
    target this server scrapes itself (`own`: its job label is a job_name of the server's without
    honor_labels, or an active target of the same pipeline has it): a series it only receives
    (federated with honor_labels, remote-written) is marked stale whenever the scrape or write
    that carries it fails, while the pod behind it may serve on."""
    scraped, own_jobs = own
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

    def confirmed(t: TargetState) -> bool:
        if t.ended is None or t.interval is None:
            return False
        # Its last scrape: `ended` is read on the range queries' grid, `last` from raw samples.
        end = max(t.ended, t.last or t.ended)
        span = t.interval + grace(t.interval)
        if marked(t, end, span):
            return True
        answer: QueryResult = client.samples(f"{selector}[{promql_duration(span)}]", end + span)
        if answer.partial or answer.warnings:
            return False
        return any(
            series_key(s.labels) != t.labels
            and series_key(s.labels) in fleet
            and same_pipeline(dict(t.labels), s.labels)
            and any(end < when <= end + span for when, _ in s.points)
            for s in answer.series
        )

    with ThreadPoolExecutor(max_workers=min(8, len(ended))) as pool:
        return {t.labels for t, ok in zip(ended, pool.map(confirmed, ended), strict=True) if ok}


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

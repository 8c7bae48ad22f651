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

Pure functions over query answers; `up.py` asks for them (`gather_targets`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from retire.sources.prometheus.answers import Series, SeriesKey, series_key
from retire.sources.prometheus.gaps import Gap

# Raw `up` samples read back from the instant, to learn each target's scrape interval (it must
# hold two scrapes: intervals up to half of it are learned).
RECENT = 600.0
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
    # The `up` targets scraped in the day (or window) before this one (a hole at its start is theirs).
    before: frozenset[LabelSet] = frozenset()
    # Without --coverage: each target's holes longer than --max-gap, from its `up` series (None:
    # not judged here; with --coverage its selector's holes are the coverage's).
    holes: tuple[Gap, ...] | None = None

    @property
    def up_targets(self) -> set[LabelSet]:
        """The targets known by an `up` series of their own."""
        return {t.labels for t in self.states if t.has_up}

    def scrapes_of(self, series: LabelSet) -> float | None:
        """The successful scrapes in the window of the `up` target that owns `series` (None: it
        has no `up` series, or none was read): a series present throughout has a sample at each."""
        return self.scrapes.get(self.owner.get(series, ()))

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


def plausible(t: float, at: float) -> bool:
    return math.isfinite(t) and 0 < t <= at + 1e-3


def _interval(points: Sequence[tuple[float, float]]) -> float | None:
    """The smallest spacing between consecutive samples: one scrape interval, even with a missed
    scrape among them. Rounded to the millisecond."""
    times = sorted({t for t, _ in points})
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return round(min(gaps), 3) if gaps else None


def judge(
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
    by_target, orphans, owner = _owners(metric_series, set(recent_by) | set(times_by), newest, declared)
    intervals: dict[LabelSet, float] = {}
    for u, s in recent_by.items():
        interval = _interval(s.points)
        if interval is not None:
            intervals[u] = interval
    fallback = _fallback_intervals(intervals)
    out = []
    for target, metric_times in by_target.items():
        d = dict(target)
        interval = (
            intervals.get(target) or configured(d.get("job", ""), d.get("instance", "")) or fallback(target)
        )
        up_points = recent_by[target].points if target in recent_by else ()
        ok = [t for t, v in up_points if v >= 1 and t <= at] + [t for t in metric_times if t <= at]
        ended = _ended(times_by.get(target), values_by.get(target))
        out.append(_state(at, target, interval, up_points, ok, ended, has_up=target not in orphans))
    return tuple(sorted(out, key=lambda t: t.labels)), owner


def _owners(
    metric_series: Sequence[dict[str, str]],
    ups: set[LabelSet],
    newest: dict[LabelSet, float],
    declared: Callable[[LabelSet], bool],
) -> tuple[dict[LabelSet, list[float]], set[LabelSet], dict[LabelSet, LabelSet]]:
    """Each metric series to the `up` series whose labels it carries (its target), else a target
    of its own named by its job and instance (an orphan): every target with the newest samples of
    its series, the orphans, and each series' target."""
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
    return by_target, orphans, owner


def _state(
    at: float,
    target: LabelSet,
    interval: float | None,
    up_points: Sequence[tuple[float, float]],
    ok: list[float],
    ended: tuple[float | None, bool],
    has_up: bool,
) -> TargetState:
    """One target at the instant: `ok`, its stored scrapes (`up` = 1 or a sample of the metric);
    `ended`, its last `up` sample in the window and whether that scrape succeeded."""
    last = max(ok) if ok else None
    if interval is not None:
        if last is not None and at - last < interval + grace(interval) - _jitter(interval):
            return TargetState(target, FRESH, interval, last, has_up=has_up)
    elif last is not None and at - last < RECENT / 2:
        # Scraped in the last minutes, at an interval not learned: no telling if on time.
        return TargetState(target, BLIND, None, last, has_up=has_up)
    newest_up = max(up_points, default=None)
    if newest_up is not None and newest_up[1] < 1 and (last is None or newest_up[0] > last):
        return TargetState(target, DOWN, interval, last, has_up=has_up)
    end, ended_up = ended
    if has_up and end is not None and ended_up:
        return TargetState(target, GONE, interval, last, ended=end, has_up=has_up)
    return TargetState(target, STALE, interval, last, ended=end, has_up=has_up)


def _ended(times: Series | None, values: Series | None) -> tuple[float | None, bool]:
    """A target's last `up` sample in the window and whether it was a successful scrape, from the
    range queries of `timestamp(up)` and `up` (each point: the newest sample at or before it)."""
    if times is None:
        return None, False
    points = [(t, v) for t, v in times.points if plausible(v, t)]
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

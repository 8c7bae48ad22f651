"""Random but seeded worlds of model-serving traffic whose exact calls are known.

A world is what one fleet of model servers did around an evaluation instant T: models with version
directories on disk, pods (each with a job and instance label, a scrape interval and offset, a
lifetime, restarts and scrape outages) and streams of calls, each counted by one exported counter
series but reaching one real version directory (its *target*; a series may carry the wrong labels:
none, another model name, TorchServe's "default"). `generate(seed)` builds one from a numpy
Generator, so a seed is a world (for this version of the generator). All times are integer
milliseconds (Unix epoch), so rendering and truth never disagree through rounding.

The truth, computed exactly from the world (`truth()`), is what a perfect reader of a scraping
Prometheus could know:

- For each pod p let s_p(t) be the last *scheduled* scrape of p at or before t (scheduled whether or
  not it succeeded or was stored; before p's first scrape, p's birth). A call at time c on pod p is
  *observable* if s_p(T - W) < c <= s_p(min(T - g, death_p)) with g = clamp(I_p / 2, 1 s, 5 s)
  (I_p: p's scrape interval), and it is not in (s_p(r), r] for a restart r of p (those calls die
  with the old counter before any scrape could see them). Calls after the last scheduled scrape
  before T - g are invisible to any Prometheus and are not in the truth.
- At threshold 0 a version directory is truly *called* if it has any observable call, under
  whatever labels its calls were counted (another served name, no version or model label,
  "default": all count for the real version).
- At threshold X > 0 (req/s) the window is split into the step buckets ending at T,
  B_k = (T - W + (k-1)S, T - W + kS], k = 1..W/S. A call on pod p belongs to the bucket of the first
  scheduled scrape of p at or after it: bucket k holds the observable calls in
  (s_p(b_{k-1}), s_p(b_k)] with b_k = T - W + kS. A version is truly *busy* if some bucket holds
  more than X*S observable calls, summed over pods.
- A *false safe* is retire saying `safe` for a version that is truly called (X = 0) or busy
  (X > 0): the one thing the oracle asserts never happens. The *price* is what retire says about
  the versions on disk that are truly idle (not called, not busy): the share it left `unknown`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

X = TypeVar("X")

SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
# Evaluation instants fall within the day after this (2026-09-21T00:00:00Z): fixed, so that a
# seed is a world whatever the date, and a multiple of a day, so epoch alignment is the seed's too.
BASE_T = 1_789_948_800 * SEC
HISTORY_BEFORE_WINDOW = 2 * HOUR  # stored history runs from T - W - 2h to T
FAR = 40 * DAY  # a pod alive "forever" was born this long before T
MODEL_NAMES = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
    "kilo", "lima", "mike", "november", "oscar", "papa",
)  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """What a kind of model server exports (README "Deployments and presets"; retire/servers)."""

    name: str
    model_label: str
    version_label: str
    zero_init: bool  # the counter exists at 0 from the pod's start (Triton), not from a first call
    store: bool  # versions are .mar archives in one model store (TorchServe)
    default_label: str | None  # version label of calls that name no version
    version_regex: str  # a selector regex matching every version on disk (PromQL string text)

    def version_name(self, number: int) -> str:
        return f"{number}.0" if self.store else str(number)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tfserving-patched", "model_name", "model_version", False, False, None, "[0-9]+"),
        Preset("triton", "model", "version", True, False, None, "[0-9]+"),
        Preset("torchserve", "model_name", "model_version", False, True, "default", "[0-9.]+"),
    )
}


@dataclass(frozen=True)
class Steady:
    """Calls at a steady rate: one every 1/qps seconds after `start`, until `stop`."""

    start: int
    stop: int
    qps: float


@dataclass(frozen=True)
class Stream:
    """Calls that reach one version directory (`model`/`version`, the truth's target)."""

    model: str
    version: str
    kind: str  # the pattern, for reports: steady, single, burst, old, late, ...
    steady: tuple[Steady, ...] = ()
    calls: tuple[int, ...] = ()  # single calls, sorted

    def until(self, t: np.ndarray) -> np.ndarray:
        """How many calls happened at or before each time in t."""
        t = np.asarray(t, dtype=np.int64)
        out = np.searchsorted(np.asarray(self.calls, dtype=np.int64), t, side="right").astype(np.int64)
        for s in self.steady:
            span = (np.clip(t, s.start, s.stop) - s.start).astype(np.float64)
            out = out + np.floor(span * s.qps / SEC).astype(np.int64)
        return out


@dataclass(frozen=True)
class Pod:
    """One pod (one instance label) of a slot; a replaced pod is a new Pod with a new instance."""

    instance: str
    job: str
    slot: int
    interval: int
    offset: int  # scheduled scrapes are at offset + k * interval, strictly inside (birth, death)
    birth: int
    death: int
    restarts: tuple[int, ...] = ()
    outages: tuple[tuple[int, int], ...] = ()  # [start, stop): scrapes fail: up 0, no samples

    @property
    def grace(self) -> int:
        return int(min(max(self.interval // 2, SEC), 5 * SEC))

    def sched(self, t: np.ndarray | int) -> np.ndarray:
        """The last scheduled scrape at or before each t (the birth when there was none yet)."""
        t = np.asarray(t, dtype=np.int64)
        s = self.offset + np.floor_divide(t - self.offset, self.interval) * self.interval
        return np.where(s > self.birth, s, self.birth)

    def scrapes(self, lo: int, hi: int) -> np.ndarray:
        """Scheduled scrapes in [lo, hi] while the pod lives."""
        lo, hi = max(lo, self.birth + 1), min(hi, self.death - 1)
        first = self.offset + -((self.offset - lo) // self.interval) * self.interval
        return np.arange(first, hi + 1, self.interval, dtype=np.int64)

    def on_grid(self, t: int) -> bool:
        return (t - self.offset) % self.interval == 0

    def boot(self, t: np.ndarray) -> np.ndarray:
        """When the process counting at each t started: the last restart before t, else birth."""
        r = np.asarray(sorted(self.restarts), dtype=np.int64)
        i = np.searchsorted(r, t, side="left") - 1
        return np.where(i >= 0, r[np.clip(i, 0, None)] if r.size else self.birth, self.birth)


@dataclass(frozen=True)
class Series:
    """One exported counter series: the pod's labels plus the model and version labels as the
    server wrote them (None: the label is missing), summing its streams' calls."""

    pod: Pod
    model_label: str | None
    version_label: str | None
    streams: tuple[Stream, ...]
    zero_init: bool

    def value(self, t: np.ndarray) -> np.ndarray:
        """The counter at scrapes t: calls since the process (re)started."""
        boot = self.pod.boot(t)
        total = np.zeros(len(t), dtype=np.int64)
        for s in self.streams:
            total += s.until(t) - s.until(boot)
        return total


@dataclass(frozen=True)
class World:
    seed: int
    wid: int
    preset: Preset
    T: int
    W: int
    S: int
    disk: tuple[tuple[str, str], ...]  # version directories (model, version)
    served: dict[str, str]  # model directory -> the name the server exports, where different
    defaults: dict[str, str]  # model -> its default version (where "default" calls go)
    pods: tuple[Pod, ...]
    series: tuple[Series, ...]
    global_outages: tuple[tuple[int, int], ...] = ()  # nothing stored at all, not even `up`
    lag: int = 0  # ingestion lag: nothing stored from T - lag on
    rules: bool = False  # also judged from recording rules
    rule_outage: tuple[int, int] | None = None  # rule evaluations missing in [start, stop)
    threshold: float = 0.0  # the --threshold of the threshold modes
    at: int = 0  # the earlier instant of the `at` mode
    features: tuple[str, ...] = ()
    recipe: str = ""  # the generate() call that rebuilds it
    # Prometheus scraping itself (interval, offset in ms; None: it does not): its
    # prometheus_target_scrape_pool_targets per job, the pods alive then, through the same
    # pipeline (nothing in global outages or after the lag cut).
    self_scrape: tuple[int, int] | None = None

    @property
    def metric(self) -> str:
        return f"w{self.wid}_calls"

    @property
    def jobs(self) -> list[str]:
        return sorted({p.job for p in self.pods})

    @property
    def history_start(self) -> int:
        return self.T - self.W - HISTORY_BEFORE_WINDOW

    def pool_samples(self, job: str) -> tuple[np.ndarray, np.ndarray]:
        """(times, targets) of the job's scrape pool as Prometheus scraping itself stored them."""
        if self.self_scrape is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        interval, offset = self.self_scrape
        first = self.history_start + (offset - self.history_start) % interval
        t = np.arange(first, self.T, interval, dtype=np.int64)
        keep = t < self.T - self.lag if self.lag else np.ones(len(t), dtype=bool)
        for s, e in self.global_outages:
            keep &= (t < s) | (t >= e)
        t = t[keep]
        alive = np.zeros(len(t), dtype=np.int64)
        for pod in self.pods:
            if pod.job == job:
                alive += (t > pod.birth) & (t < pod.death)
        return t, alive

    def stored(self, pod: Pod) -> tuple[np.ndarray, np.ndarray]:
        """(times, up) of the pod's stored scrapes: scheduled ones in the history, minus global
        outages and the ingestion-lag cut; up is 0 during the pod's own outages."""
        t = pod.scrapes(self.history_start, self.T)
        keep = t < self.T - self.lag if self.lag else np.ones(len(t), dtype=bool)
        for s, e in self.global_outages:
            keep &= (t < s) | (t >= e)
        t = t[keep]
        up = np.ones(len(t), dtype=bool)
        for s, e in pod.outages:
            up &= (t < s) | (t >= e)
        return t, up

    def without(self, *, lag: bool = False, global_outages: bool = False, pod_outages: bool = False) -> World:
        """The same world less some faults (to ask which one hid a call)."""
        import dataclasses

        world = self
        if lag:
            world = dataclasses.replace(world, lag=0)
        if global_outages:
            world = dataclasses.replace(world, global_outages=())
        if pod_outages:
            pods = {p.instance: dataclasses.replace(p, outages=()) for p in world.pods}
            series = tuple(dataclasses.replace(s, pod=pods[s.pod.instance]) for s in world.series)
            world = dataclasses.replace(world, pods=tuple(pods.values()), series=series)
        return world

    def faults(self) -> str:
        """The world's features, with the times of its pipeline-wide faults."""
        parts = list(self.features)
        parts += [f"nothing stored {_rel(a, self.T)}..{_rel(b, self.T)}" for a, b in self.global_outages]
        if self.lag:
            parts.append(f"samples stop at T-{_ago(self.lag)}")
        if self.rule_outage is not None:
            parts.append(
                f"no rule evaluations {_rel(self.rule_outage[0], self.T)}..{_rel(self.rule_outage[1], self.T)}"
            )
        return ", ".join(parts) or "no faults"

    def disguises(self, model: str, version: str) -> list[str]:
        """How this version's calls were labelled when not as itself (renamed, unlabelled, ...)."""
        found = []
        for s in self.series:
            if any((st.model, st.version) == (model, version) for st in s.streams):
                if s.model_label is None:
                    found.append("no-model-label")
                elif s.version_label is None:
                    found.append("no-version-label")
                elif s.version_label == self.preset.default_label:
                    found.append("default-label")
                elif s.model_label != model:
                    found.append("renamed")
        return sorted(set(found))

    def describe(self, model: str, version: str) -> str:
        """What carries this version's calls, for reading a false safe."""
        parts = []
        for s in self.series:
            for st in s.streams:
                if (st.model, st.version) != (model, version):
                    continue
                labels = f"{s.model_label or '-'}/{s.version_label or '-'}"
                pod = s.pod.instance
                facts = [f"{s.pod.interval // SEC}s"]
                if s.pod.birth > self.history_start:
                    facts.append(f"born {_rel(s.pod.birth, self.T)}")
                if s.pod.death < self.T:
                    facts.append(f"died {_rel(s.pod.death, self.T)}")
                facts += [f"restart {_rel(r, self.T)}" for r in s.pod.restarts]
                facts += [f"down {_rel(a, self.T)}..{_rel(b, self.T)}" for a, b in s.pod.outages]
                parts.append(f"{st.kind} as {labels} on {pod} ({', '.join(facts)})")
        return "; ".join(parts) or "no calls"


def _rel(t: int, T: int) -> str:
    """A time as seen from T: T-1.25h, T+5.0m."""
    return f"T-{_ago(T - t)}" if t <= T else f"T+{_ago(t - T)}"


def _ago(ms: int) -> str:
    if ms >= HOUR:
        return f"{ms / HOUR:.2f}h"
    if ms >= MIN:
        return f"{ms / MIN:.1f}m"
    return f"{ms / SEC:.1f}s"


# --- The truth.


@dataclass(frozen=True)
class Truth:
    """Observable calls per version (on disk or not) in each step bucket ending at `at`."""

    at: int
    window: int
    step: int
    buckets: dict[tuple[str, str], np.ndarray]

    def calls(self, key: tuple[str, str]) -> int:
        b = self.buckets.get(key)
        return int(b.sum()) if b is not None else 0

    def busy(self, key: tuple[str, str], threshold: float) -> bool:
        """Called (threshold 0) or some bucket above threshold * step calls."""
        b = self.buckets.get(key)
        if b is None:
            return False
        if threshold <= 0:
            return bool(b.sum() > 0)
        return bool((b > threshold * self.step / SEC).any())


def truth(
    world: World,
    at: int | None = None,
    window: int | None = None,
    step: int | None = None,
    *,
    seen: bool = False,
) -> Truth:
    """The exact observable calls per version and bucket (module docstring).

    seen=True: only the observable calls that some stored sample shows (a later stored scrape of
    their pod, while up, with no restart in between): not those after the pod's last stored scrape
    (ingestion lag, an outage at the end) nor those in a gap that a restart ended. For sorting
    false safes into "retire missed stored evidence" and "the evidence was never stored"."""
    at = world.T if at is None else at
    window = world.W if window is None else window
    step = world.S if step is None else step
    n = max(1, math.ceil(window / step))
    bounds = at - window + step * np.arange(n + 1, dtype=np.int64)
    bounds[-1] = at
    out: dict[tuple[str, str], np.ndarray] = {}
    for series in world.series:
        pod = series.pod
        lo = int(pod.sched(at - window))
        hi = int(pod.sched(min(at - pod.grace, pod.death)))
        if hi <= lo or not series.streams:
            continue
        edges = pod.sched(bounds)
        restarts = np.asarray(pod.restarts, dtype=np.int64)
        if seen:
            t, up = world.stored(pod)
            u = t[up & (t > lo) & (t <= hi)]
            hi = int(u[-1]) if len(u) else lo
            before = np.concatenate([[lo], u])[np.searchsorted(u, restarts, side="left")]
            removed = list(zip(before.tolist(), restarts.tolist(), strict=True))
        else:
            removed = list(zip(pod.sched(restarts).tolist(), restarts.tolist(), strict=True))
        kept = _subtract(lo, hi, removed)
        for st in series.streams:
            counts = np.zeros(n, dtype=np.int64)
            for a, b in kept:
                counts += np.diff(st.until(np.clip(edges, a, b)))
            key = (st.model, st.version)
            out[key] = out.get(key, np.zeros(n, dtype=np.int64)) + counts
    return Truth(at, window, step, out)


def _subtract(lo: int, hi: int, removed: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(lo, hi] minus the union of the intervals (a, b]: disjoint intervals, in order."""
    kept = []
    cursor = lo
    for a, b in sorted(removed):
        if b <= cursor or a >= hi:
            continue
        if a > cursor:
            kept.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < hi:
        kept.append((cursor, hi))
    return kept


# --- Generation.


def _pick(rng: np.random.Generator, options: Iterable[X], p: Sequence[float] | None = None) -> X:
    opts = list(options)
    weights = None if p is None else np.asarray(p, dtype=float) / sum(p)
    return opts[int(rng.choice(len(opts), p=weights))]


def _uniform(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, max(hi, lo + 1)))


@dataclass
class _Slot:
    index: int
    job: str
    interval: int
    pods: list[Pod]


def generate(
    seed: int,
    wid: int | None = None,
    *,
    preset: str | None = None,
    window: int | None = None,
    rules: bool | None = None,
) -> World:
    """A random world from `seed`; `wid` (default: the seed) only names it (metric, jobs,
    instances, and so the rule files whose names set promtool's evaluation offsets). The keyword
    arguments force a property (the draws happen anyway, so the rest of the world stays the same)."""
    wid = seed if wid is None else wid
    rng = np.random.default_rng(seed)
    features: list[str] = []
    # Size, shape and instant.
    drawn_preset = _pick(rng, PRESETS, [0.45, 0.3, 0.25])
    drawn_rules = bool(rng.random() < 0.2)
    is_rules = drawn_rules if rules is None else rules
    w_raw = _pick(rng, [24 * HOUR, 6 * HOUR, 2 * HOUR], [0.7, 0.2, 0.1])
    w_rules = _pick(rng, [6 * HOUR, 2 * HOUR], [0.6, 0.4])
    W = window if window is not None else (w_rules if is_rules else w_raw)
    S = _pick(rng, [HOUR, 30 * MIN, 15 * MIN], [0.8, 0.1, 0.1])
    T = BASE_T + int(rng.integers(0, 86400)) * SEC + 500
    P = PRESETS[preset or drawn_preset]
    hist = T - W - HISTORY_BEFORE_WINDOW

    def moment(kind: str, interval: int = MIN) -> int:
        """A time of interest: anywhere, the last minutes, near a step boundary (ending at T, or
        aligned to the epoch as Prometheus's subqueries are), near the window's start."""
        if kind == "late":
            return T - _uniform(rng, 0, 15 * MIN)
        if kind == "boundary":
            j = _uniform(rng, 1, W // S + 1)
            return T - j * S + _uniform(rng, -2 * interval, 2 * interval)
        if kind == "epoch":
            j = _uniform(rng, 0, W // S + 1)
            return (T // S - j) * S + _uniform(rng, -2 * interval, 2 * interval)
        if kind == "start":
            return T - W + _uniform(rng, -3 * interval, 3 * interval)
        return _uniform(rng, T - W - HOUR, T)

    # Models and versions on disk.
    n_models = _uniform(rng, 2, 6)
    models = [str(m) for m in rng.choice(MODEL_NAMES, n_models, replace=False)]
    versions: dict[str, list[str]] = {}
    for m in models:
        first = _uniform(rng, 1, 20)
        steps = rng.integers(1, 3, _uniform(rng, 2, 6))
        versions[m] = [P.version_name(first + int(x)) for x in np.cumsum(steps) - steps[0]]
    served = {}
    if rng.random() < 0.2:
        renamed = _pick(rng, models)
        served[renamed] = f"{renamed}-prod"
        features.append("renamed")
    defaults = {m: _pick(rng, v) for m, v in versions.items()}

    # Slots (a deployment's replicas), their pods over time, and which models each serves.
    n_slots = _uniform(rng, 1, 5)
    two_jobs = n_slots >= 2 and rng.random() < 0.5
    slots: list[_Slot] = []
    for i in range(n_slots):
        job = f"w{wid}-{'canary' if two_jobs and i % 2 else 'serving'}"
        interval = _pick(rng, [15 * SEC, 30 * SEC, 60 * SEC])
        slots.append(_Slot(i, job, interval, []))
    for slot in slots:
        birth = T - FAR
        if rng.random() < 0.15:
            birth = T - _uniform(rng, 5 * MIN, W)  # scaled up mid-window
            features.append("pod-born")
        gen = 0
        while True:
            death = T + DAY
            replaced = False
            u = rng.random()
            if u < 0.3 and (u >= 0.12 or slot.index > 0):  # slot 0 lives on: never all gone at T
                death = T - _uniform(rng, 2 * MIN, W)
                replaced = u >= 0.12
                if death <= birth + MIN:
                    death, replaced = T + DAY, False
                else:
                    features.append("pod-replaced" if replaced else "pod-died")
            offset = _uniform(rng, 0, slot.interval)
            pod = Pod(f"w{wid}-pod{slot.index}{'abcdefgh'[gen]}:8500", slot.job, slot.index, slot.interval,
                      offset, birth, death)  # fmt: skip
            restarts: list[int] = []
            if rng.random() < 0.25:
                for _ in range(_uniform(rng, 1, 3)):
                    lo, hi = max(birth, hist) + MIN, min(death, T) - MIN
                    r = T - _uniform(rng, 10 * SEC, 20 * MIN) if rng.random() < 0.3 else _uniform(rng, lo, hi)
                    if lo < r < hi:
                        restarts.append(r)
                if restarts:
                    features.append("restart")
            outages: list[tuple[int, int]] = []
            if rng.random() < 0.15:
                if rng.random() < 0.4:
                    outages.append((T - _uniform(rng, 2 * MIN, 90 * MIN), T + HOUR))
                    features.append("pod-outage-end")
                else:
                    start = _uniform(rng, hist, T - 10 * MIN)
                    outages.append((start, start + _uniform(rng, 2 * MIN, 3 * HOUR)))
                    features.append("pod-outage")
            pod = _off_grid(pod, sorted(set(restarts)), outages, T)
            slot.pods.append(pod)
            if not replaced or gen >= 3:
                break
            gen += 1
            birth = death + _uniform(rng, SEC, 90 * SEC)
    serving = {m: [int(x) for x in rng.choice(n_slots, _uniform(rng, 1, n_slots + 1), replace=False)]
               for m in models}  # fmt: skip
    if any(len(s) > 1 for s in serving.values()):
        features.append("replicas")

    # Streams of calls per (version, slot).
    streams: dict[tuple[int, str | None, str | None], list[Stream]] = {}

    def add(slot: int, model_label: str | None, version_label: str | None, stream: Stream | None) -> None:
        key = (slot, model_label, version_label)
        streams.setdefault(key, [])
        if stream is not None:
            streams[key].append(stream)

    def pattern(model: str, version: str, interval: int, kinds: list[str], p: list[float]) -> Stream | None:
        kind = _pick(rng, kinds, p)
        if kind == "idle":
            return None
        if kind == "steady":
            qps = float(math.exp(rng.uniform(math.log(0.0005), math.log(3.0))))
            start = T - FAR if rng.random() < 0.6 else moment("any")
            u = rng.random()
            stop = (
                T + DAY if u < 0.5 else (moment("any") if u < 0.8 else T - W - _uniform(rng, MIN, 10 * HOUR))
            )
            if stop <= start:
                start = stop - _uniform(rng, MIN, 5 * HOUR)
            return Stream(model, version, "steady", steady=(Steady(start, stop, round(qps, 6)),))
        if kind == "single":
            where = [
                _pick(rng, ["any", "late", "boundary", "epoch", "start"]) for _ in range(_uniform(rng, 1, 4))
            ]
            calls = sorted(moment(w, interval) for w in where)
            return Stream(model, version, "single@" + "+".join(where), calls=tuple(calls))
        if kind == "burst":
            spot = _pick(rng, ["any", "late", "boundary", "epoch", "start"])
            t0 = moment(spot, interval)
            n = _uniform(rng, 5, 400)
            calls = sorted(int(t0 + x) for x in rng.integers(0, interval, n))
            return Stream(model, version, f"burst{n}@{spot}", calls=tuple(calls))
        if kind == "old":
            if rng.random() < 0.5:
                calls = [T - W - _uniform(rng, MIN, 10 * HOUR)]
            else:
                calls = [T - W - _uniform(rng, 0, interval)]  # may land after the last scrape before T-W
            return Stream(model, version, "old", calls=tuple(calls))
        calls = sorted(T - _uniform(rng, 0, 10 * MIN) for _ in range(_uniform(rng, 1, 6)))
        return Stream(model, version, "late", calls=tuple(calls))

    kinds = ["idle", "steady", "single", "burst", "old", "late"]
    weights = [0.32, 0.22, 0.16, 0.1, 0.12, 0.08]
    for m in models:
        name = served.get(m, m)
        for v in versions[m]:
            for s in serving[m]:
                add(s, name, v, pattern(m, v, slots[s].interval, kinds, weights))
    # Calls counted under labels that name no version directory.
    busy_kinds, busy_p = kinds[1:], weights[1:]
    if rng.random() < 0.12:
        m = _pick(rng, models)
        s = _pick(rng, serving[m])
        add(
            s,
            served.get(m, m),
            None,
            pattern(m, _pick(rng, versions[m]), slots[s].interval, busy_kinds, busy_p),
        )
        features.append("no-version-label")
    if rng.random() < 0.08:
        m = _pick(rng, models)
        s = _pick(rng, serving[m])
        v = _pick(rng, versions[m])
        add(s, None, v, pattern(m, v, slots[s].interval, busy_kinds, busy_p))
        features.append("no-model-label")
    if P.default_label is not None and rng.random() < 0.4:
        m = _pick(rng, models)
        s = _pick(rng, serving[m])
        add(
            s,
            served.get(m, m),
            P.default_label,
            pattern(m, defaults[m], slots[s].interval, busy_kinds, busy_p),
        )
        features.append("default-label")
    if rng.random() < 0.1:
        m = _pick(rng, models)
        s = _pick(rng, serving[m])
        gone = P.version_name(int(float(versions[m][-1])) + 1)
        add(s, served.get(m, m), gone, pattern(m, gone, slots[s].interval, busy_kinds, busy_p))
        features.append("not-on-disk")

    series: list[Series] = []
    for (s, ml, vl), sts in sorted(streams.items(), key=lambda kv: str(kv[0])):
        if not sts and not P.zero_init:
            continue  # TF Serving and TorchServe create a series on its first call
        for pod in slots[s].pods:
            series.append(Series(pod, ml, vl, tuple(sts), P.zero_init))

    # Faults of the whole scrape pipeline.
    global_outages: list[tuple[int, int]] = []
    if rng.random() < 0.12:
        start = _uniform(rng, T - W - HOUR, T - 10 * MIN)
        stop = T + HOUR if rng.random() < 0.2 else start + _uniform(rng, 3 * MIN, 2 * HOUR)
        global_outages.append((start, stop))
        features.append("global-outage")
    lag = 0
    if rng.random() < 0.12:
        lag = _uniform(rng, 1, 21) * MIN - _uniform(rng, 0, 60) * SEC
        features.append("ingestion-lag")
    rule_outage = None
    if rng.random() < 0.5 and is_rules:
        start = _uniform(rng, T - W + 10 * MIN, T - 30 * MIN)
        rule_outage = (start, min(start + _uniform(rng, 10 * MIN, 2 * HOUR), T - 5 * MIN))
        features.append("rule-outage")
    at = T - _uniform(rng, 5 * 60, 2 * 3600) * SEC
    pods = tuple(p for slot in slots for p in slot.pods)

    world = World(
        seed=seed, wid=wid, preset=P, T=T, W=W, S=S,
        disk=tuple((m, v) for m in models for v in versions[m]),
        served=served, defaults=defaults, pods=pods, series=tuple(series),
        global_outages=tuple(global_outages), lag=lag, rules=is_rules, rule_outage=rule_outage,
        at=at, features=tuple(dict.fromkeys(features)),
    )  # fmt: skip
    # Drawn apart, so that the worlds of earlier generators stay the same: most Prometheus servers
    # scrape themselves (the default configuration does).
    side = np.random.default_rng([seed, 21])
    if side.random() < 0.85:
        interval = _pick(side, [15 * SEC, 30 * SEC])
        world = _replace(world, self_scrape=(interval, _uniform(side, 0, interval)))
    forced = {"preset": preset, "window": window, "rules": rules}
    recipe = ", ".join([str(seed), *(f"{k}={v!r}" for k, v in forced.items() if v is not None)])
    return _replace(world, threshold=_threshold(rng, world), recipe=f"generate({recipe})")


def _off_grid(pod: Pod, restarts: list[int], outages: list[tuple[int, int]], T: int) -> Pod:
    """The pod with no birth, death or restart exactly on one of its scrapes (which side of it
    the scrape falls would be a guess), and no scrape exactly at an instant judged."""
    offset = pod.offset
    while offset % SEC == T % SEC:  # every instant judged (T, T - k*S, the `at` instant) is T's ms
        offset = (offset + 1) % pod.interval
    pod = Pod(pod.instance, pod.job, pod.slot, pod.interval, offset, pod.birth, pod.death)

    def nudge(t: int) -> int:
        return t + 1 if pod.on_grid(t) else t

    return Pod(
        pod.instance, pod.job, pod.slot, pod.interval, offset, nudge(pod.birth), nudge(pod.death),
        tuple(sorted({nudge(r) for r in restarts})), tuple(outages),
    )  # fmt: skip


def _threshold(rng: np.random.Generator, world: World) -> float:
    """A --threshold that some version straddles: around the busiest bucket of a called version."""
    t = truth(world)
    peaks = sorted(int(t.buckets[k].max()) for k in world.disk if k in t.buckets and t.buckets[k].max() > 0)
    if not peaks:
        return 0.01
    peak = peaks[int(rng.integers(0, len(peaks)))]
    x = peak * float(rng.uniform(0.6, 1.4)) / (world.S / SEC)
    return float(f"{max(x, 1e-6):.6g}")


def _replace(world: World, **changes: object) -> World:
    import dataclasses

    return dataclasses.replace(world, **changes)  # type: ignore[arg-type]

"""Calls per step, counted so that every increase of every series falls into a step.

With `--threshold` above 0 a version is idle only if no step of the window (the buckets
`(T - window + (k-1)*step, T - window + k*step]`, ending at the evaluated instant T) held more than
`threshold * step` calls. A `rate()` over hourly windows cannot say so: the increase between the
last sample before a boundary and the first after it falls in no window (a cron job's burst just
before the hour reads as 0 req/s), and a series born inside one scrape has no rate at all. Here a
step's calls are counter differences at its boundaries instead: per series, its last sample at or
before each boundary (`last_over_time(metric[step])` at each boundary), so every increase is in
exactly one difference, across resets (a drop counts the new value, and series whose counter went
down are counted from their raw samples).

A call is counted in the step of the first scrape that saw it, as a perfect scraper would. That
holds only where the scrape at or before a boundary was stored: when it was missed (a target down,
a hole), calls before the boundary show up after it, and the two steps cannot be told apart. So
each increase is placed in a *span* of steps: one step where the boundary before it was scraped on
time, more where it was not (or where the series has no value at a boundary). Per version:

- `low`: a lower bound of its busiest step: the largest sum of one-step increases, or of a span's
  increase divided by its length (some step of the span held at least that much);
- `high`: an upper bound: the largest sum, over a step, of the increases of every span that holds
  it. A version whose `low` is above the threshold is in use; one whose `high` is above it cannot
  be shown idle (unknown); below both, every step was at or below it.

Pure functions: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from retire.sources.prometheus.answers import Series, SeriesKey, series_key

LabelSet = SeriesKey


@dataclass(frozen=True)
class StepGrid:
    """The boundaries b_0 = start, b_k = start + k*step, b_n = end (the instant). The steps end at
    the instant; a window that is no whole number of steps starts its first step before it."""

    @classmethod
    def ending(cls, at: float, window: float, step: float) -> StepGrid:
        n = max(math.ceil(window / step - 1e-9), 1)
        return cls(at - n * step, step, n)

    start: float
    step: float
    n: int

    def boundary(self, k: int) -> float:
        return self.start + k * self.step

    def index(self, t: float) -> int | None:
        """The boundary a range-query point at t is (to the millisecond), else None: a finer
        grid's points between boundaries are not boundaries."""
        k = round((t - self.start) / self.step)
        return k if 0 <= k <= self.n and abs(t - self.boundary(k)) < 1e-3 else None

    def bucket(self, t: float) -> int:
        """The step (1..n) holding time t: (b_{k-1}, b_k]; earlier times in step 1."""
        return min(max(math.ceil((t - self.start) / self.step - 1e-9), 1), self.n)


def on_grid(points: Sequence[tuple[float, float]], grid: StepGrid) -> list[float | None]:
    out: list[float | None] = [None] * (grid.n + 1)
    for t, v in points:
        k = grid.index(t)
        if k is not None:
            out[k] = v
    return out


Span = tuple[int, int, float]  # first step, last step (1-based, inclusive), calls


def series_spans(
    values: Sequence[float | None],
    exact: Sequence[bool],
) -> list[Span]:
    """One series' increases between its values at the boundaries, each with the steps it may
    belong to. `values[k]`: its last sample at or before b_k within the step before (None: none);
    `exact[k]`: its target's scrape at or before b_k was stored (so calls before b_k were seen by
    b_k)."""
    n = len(values) - 1
    spans: list[Span] = []
    prev: int | None = 0 if values[0] is not None else None
    for k in range(1, n + 1):
        v = values[k]
        if v is None:
            continue
        if prev is None:
            # Born in the window: its whole value counts (a TF Serving counter is created by its
            # first call, a Triton one at 0). Created after the last boundary at which its target
            # was scraped without it.
            lo = next((j + 1 for j in range(k - 1, 0, -1) if exact[j]), 1)
            spans.append((lo, k, v))
        else:
            before = values[prev]
            assert before is not None
            calls = v - before if v >= before else v
            lo = prev + 1 if exact[prev] or prev == 0 else prev
            spans.append((lo, k, calls))
        prev = k
    return spans


def raw_spans(
    points: Sequence[tuple[float, float]], start_value: float | None, grid: StepGrid, interval: float | None
) -> list[Span]:
    """One series' increases between its raw samples (a counter that went down, re-read): each in
    the step of the later sample, or, after a gap longer than a scrape, every step since the earlier."""
    spans: list[Span] = []
    previous: tuple[float | None, float] = (None, 0.0 if start_value is None else start_value)
    for t, v in sorted(points):
        t0, v0 = previous
        calls = v - v0 if v >= v0 else v
        hi = grid.bucket(t)
        if t0 is None:
            lo = 1 if start_value is None or t - grid.start > (interval or math.inf) else hi
        elif interval is not None and t - t0 < 1.5 * interval:
            lo = hi
        else:
            lo = grid.bucket(t0)
        spans.append((lo, hi, calls))
        previous = (t, v)
    return spans


def went_away(
    times: Sequence[float | None],
    counts: Sequence[float | None],
    successes: Sequence[float | None],
) -> bool:
    """Whether a series was absent at some successful scrape of its target inside its life (a
    restart, then a call, created it anew): in a step it spans whole (it has a sample at or before
    the step's start and one in a later step or at its end), it has fewer samples than its target
    has successful scrapes (`up` = 1). `times[k]`: its newest sample at or before boundary b_k
    (None: none within the lookback); `counts[k]`, `successes[k]`: in the step ending at b_k, where
    no point means none. A series born and created anew within its first step is not seen."""
    n = len(times) - 1

    def at(values: Sequence[float | None], k: int) -> float:
        v = values[k] if k < len(values) else None
        return 0.0 if v is None else v

    has = [at(counts, k) > 0 for k in range(n + 1)]
    for k in range(1, n + 1):
        before = times[k - 1] is not None or any(has[1:k])
        after = times[k] is not None or any(has[k + 1 :])
        if before and after and at(counts, k) < at(successes, k) - 0.5:
            return True
    return False


@dataclass(frozen=True)
class StepBounds:
    """A version's busiest step, in calls per second: at least `low`, at most `high`."""

    low: float
    high: float


def version_bounds(spans: Sequence[Span], grid: StepGrid) -> StepBounds:
    """Bounds of a version's busiest step from the spans of all its series."""
    import numpy as np

    if not spans:
        return StepBounds(0.0, 0.0)
    single = np.zeros(grid.n + 2)
    upper = np.zeros(grid.n + 2)
    pigeon = 0.0
    for lo, hi, calls in spans:
        if not math.isfinite(calls) or calls < 0:
            return StepBounds(math.nan, math.inf)
        if lo == hi:
            single[lo] += calls
        else:
            pigeon = max(pigeon, calls / (hi - lo + 1))
        upper[lo : hi + 1] += calls
    return StepBounds(max(float(single.max()), pigeon) / grid.step, float(upper.max()) / grid.step)


def exact_at(
    grid: StepGrid,
    interval: float | None,
    scraped: Sequence[float | None],
    counts: Sequence[float | None] | None = None,
) -> list[bool]:
    """At each boundary, whether the target's scrape at or before it was stored: its newest
    stored scrape (`scraped[k]`) is less than one interval before the boundary. b_0 counts as
    exact: calls before the window are not in it, whichever step they would be in. `counts`:
    the target's samples in each step, which show an interval shorter than the learned one."""
    if interval is None:
        return [True] + [False] * grid.n

    def on_time(k: int, s: float | None) -> bool:
        # The interval where the step ending at b_k held more samples than the learned one
        # allows: it was shorter then (a scrape 47 s before b_k is late at 15 s scrapes).
        n = counts[k] if counts is not None and k < len(counts) else None
        i = min(interval, grid.step / n) if n is not None and n >= 2 else interval
        return s is not None and grid.boundary(k) - s < i - min(0.5, i / 20)

    return [True] + [on_time(k, s) for k, s in enumerate(scraped) if k > 0]


def per_version_bounds(
    values: Sequence[Series],
    times: Sequence[Series],
    grid: StepGrid,
    version_of: Callable[[dict[str, str]], tuple[str, str]],
    target_of: Callable[[LabelSet], LabelSet],
    interval_of: Callable[[LabelSet], float | None],
    up_scraped: Mapping[LabelSet, Sequence[float | None]],
    recounted: Mapping[LabelSet, tuple[Sequence[tuple[float, float]], float | None]],
    recreated: Mapping[LabelSet, float] | None = None,
    up_counts: Mapping[LabelSet, Sequence[float | None]] | None = None,
    series_counts: Mapping[LabelSet, Sequence[float | None]] | None = None,
    up_successes: Mapping[LabelSet, Sequence[float | None]] | None = None,
) -> dict[tuple[str, str], StepBounds]:
    """Each version's busiest-step bounds.

    `values`/`times`: per series, its last value and the time of its newest sample at each
    boundary; `target_of`: a series' target; `up_scraped`: per target, its newest successful `up`
    scrape at or before each boundary; `recounted`: raw samples (and the value at the window's
    start) of series whose counter went down; `recreated`: the last value of series created anew
    in the window where no boundary shows it (its calls since may be in any step); `up_counts`: per
    target, its `up` samples in each step (`exact_at`); `series_counts` and `up_successes`: per
    series its samples, per target its successful scrapes, in each step, so that a series created
    anew between two boundaries that show it is found too (`went_away`), born in the window or not."""

    series_times = {series_key(s.labels): on_grid(s.points, grid) for s in times}
    scraped, owner = _scraped_at_boundaries(values, series_times, grid, target_of, up_scraped)
    counts = up_counts or {}
    exact = {t: exact_at(grid, interval_of(t), row, counts.get(t)) for t, row in scraped.items()}
    spans: dict[tuple[str, str], list[Span]] = {}
    for s in values:
        k = series_key(s.labels)
        if k in recounted:
            points, start = recounted[k]
            found = raw_spans(points, start, grid, interval_of(owner[k]))
        else:
            found = series_spans(on_grid(s.points, grid), exact[owner[k]])
        if recreated and k in recreated:
            found = [*found, (1, grid.n, recreated[k])]
        elif (
            series_counts is not None
            and up_successes is not None
            and k in series_counts
            and owner[k] in up_successes
            and went_away(series_times.get(k, []), series_counts[k], up_successes[owner[k]])
        ):
            last = [v for v in on_grid(s.points, grid) if v is not None]
            found = [*found, (1, grid.n, last[-1] if last else math.inf)]
        spans.setdefault(version_of(s.labels), []).extend(found)
    return {v: version_bounds(sp, grid) for v, sp in spans.items()}


def _scraped_at_boundaries(
    values: Sequence[Series],
    series_times: Mapping[LabelSet, Sequence[float | None]],
    grid: StepGrid,
    target_of: Callable[[LabelSet], LabelSet],
    up_scraped: Mapping[LabelSet, Sequence[float | None]],
) -> tuple[dict[LabelSet, list[float | None]], dict[LabelSet, LabelSet]]:
    """A target's newest stored scrape at each boundary: any of its series' samples, or `up` = 1;
    and each series' target."""
    scraped: dict[LabelSet, list[float | None]] = {
        t: list(p) + [None] * (grid.n + 1 - len(p)) for t, p in up_scraped.items()
    }
    owner: dict[LabelSet, LabelSet] = {}
    for s in values:
        k = series_key(s.labels)
        target = owner[k] = target_of(k)
        row = scraped.setdefault(target, [None] * (grid.n + 1))
        for i, t in enumerate(series_times.get(k, [])):
            if t is not None and (row[i] is None or t > row[i]):  # type: ignore[operator]
                row[i] = t
    return scraped, owner

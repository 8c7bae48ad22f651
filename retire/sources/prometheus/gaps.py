"""Finding holes in the data: intervals where evidence is missing, which must never read as "no calls".

Input is a range-query matrix on a regular grid (`start`, `start + resolution`, ... `end`); the point
at `t` speaks for the interval `(t - resolution, t]`. A run of bad points is a gap. The samples
on either side of it may lie anywhere in the intervals next to it, so the time between them is
more than the run but less than the run plus those two intervals (`Gap.at_most`); a gap that may
be longer than `max_gap` is reported. Two kinds:

- global: intervals where no series at all had a sample (Prometheus down, scrapes failing
  everywhere, data not yet retained), including at the window's edges;
- per target (from the targets' `up` series, or --coverage's): inside a target's lifetime (first
  to last point seen, or from the window's start for a target scraped before it), intervals where
  it was down (`up` = 0) or had no samples, one run whichever it was (a hole is a time without a
  successful scrape). A target that appears mid-window with no scrape in the
  window before it is a new pod, not a gap; one that vanishes is a pod that went away (the end
  checks, `targets.py`, judge that).

Pure functions: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from retire.sources.prometheus.answers import Series, SeriesKey, series_key


@dataclass(frozen=True)
class Gap:
    target: str  # label text of the target, or "" for a gap across every series
    start: float
    end: float
    kind: str  # "no samples", "down", or "down or no samples"
    # The longest the time between the samples on either side may be (the intervals next to the
    # run may hold them anywhere); at least `seconds`.
    longest: float = 0.0

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def at_most(self) -> float:
        return max(self.longest, self.seconds)


def _grid(start: float, end: float, resolution: float) -> int:
    return round((end - start) / resolution) + 1


def _runs(bad: Sequence[bool]) -> list[tuple[int, int]]:
    """Maximal runs [i, j] of True."""
    runs, i = [], 0
    while i < len(bad):
        if bad[i]:
            j = i
            while j + 1 < len(bad) and bad[j + 1]:
                j += 1
            runs.append((i, j))
            i = j + 1
        else:
            i += 1
    return runs


def _index(series: Series, start: float, resolution: float, n: int) -> dict[int, float]:
    out = {}
    for t, v in series.points:
        k = round((t - start) / resolution)
        if 0 <= k < n:
            out[k] = v
    return out


def label_text(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")


def global_gaps(
    series: Sequence[Series],
    start: float,
    end: float,
    resolution: float,
    max_gap: float,
    min_value: float = 0.0,
    excused: Sequence[bool] = (),
) -> list[Gap]:
    """Intervals where no series had any sample. A point counts only if it is a finite number of
    at least `min_value` (a count of series is at least 1; `up` is 0 or 1): anything else is not
    evidence of data. `excused[k]`: the step needs no data (`no_targets.py`: nothing to scrape)."""
    n = _grid(start, end, resolution)
    present = [False] * n
    for s in series:
        for k, v in _index(s, start, resolution, n).items():
            if v >= min_value and v != float("inf"):
                present[k] = True
    bad = [not p for p in present]
    for i, j in _runs(bad):
        # Excused steps may only trim a hole to one stretch (a deployment created mid-window: no
        # pool before it, then its first scrape); a hole they would cut into pieces had targets
        # in the pieces, unscraped: it stays whole.
        left = [k for k in range(i, j + 1) if not (k < len(excused) and excused[k])]
        if not left or left[-1] - left[0] == len(left) - 1:
            for k in range(i, j + 1):
                bad[k] = k in left
    return _gaps_from(bad, "", "no samples", start, resolution, max_gap)


def target_gaps(
    series: Sequence[Series],
    start: float,
    end: float,
    resolution: float,
    max_gap: float,
    before: Collection[SeriesKey] = (),
) -> list[Gap]:
    """Per target, within its lifetime: intervals down (value 0) or without samples. `before`:
    the targets scraped in the window before `start`, whose lifetime starts at `start` (one that
    shows up late after a hole there is no new pod)."""
    n = _grid(start, end, resolution)
    gaps: list[Gap] = []
    for s in series:
        points = _index(s, start, resolution, n)
        if not points:
            continue
        first, last = min(points), max(points)
        if series_key(s.labels) in before:
            first = 0
        target = label_text(s.labels)
        absent = [first <= k <= last and k not in points for k in range(n)]
        # `up` is 1 or 0; NaN or any other value is no proof the target was up.
        down = [not (points.get(k, 1.0) >= 1) for k in range(n)]
        kinds = ["down" if d else "no samples" for d in down]
        bad = [a or d for a, d in zip(absent, down, strict=True)]
        gaps += _gaps_from(bad, target, kinds, start, resolution, max_gap)
    return sorted(gaps, key=lambda g: (g.start, g.target))


def _gaps_from(
    bad: Sequence[bool],
    target: str,
    kinds: Sequence[str] | str,
    start: float,
    resolution: float,
    max_gap: float,
) -> list[Gap]:
    """The runs of `bad` that may be longer than `max_gap`, each of its points' kind (one kind,
    or "down or no samples" where they differ)."""
    out = []
    n = len(bad)
    for i, j in _runs(bad):
        found = {kinds} if isinstance(kinds, str) else set(kinds[i : j + 1])
        kind = found.pop() if len(found) == 1 else "down or no samples"
        # The sample before may be as early as the start of the interval before the run's first,
        # the one after as late as the end of the interval after its last (not past the window).
        lo = max(start, start + (i - 2) * resolution)
        hi = start + (j + 1 if j + 1 < n else j) * resolution
        gap = Gap(target, max(start, start + (i - 1) * resolution), start + j * resolution, kind, hi - lo)
        if gap.at_most > max_gap:
            out.append(gap)
    return out

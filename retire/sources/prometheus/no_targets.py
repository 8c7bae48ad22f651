"""Holes that Prometheus itself explains: times when the jobs behind the metric had no target.

A hole in the metric is a doubt because calls may have been served and never stored. But a job
whose pods were created mid-window (a new deployment) leaves a hole before them that no pipeline
fault made. Prometheus, scraping itself, stores `prometheus_target_scrape_pool_targets{scrape_job=
"<job>"}`: how many targets each job's scrape pool holds (after relabelling: what it scrapes).
Where those samples are there, and 0, through part of a hole for every job that exports the
metric, Prometheus was running and storing, and there was no server of those jobs to call. Only
that part of the hole is excused; the rest is judged against --max-gap as before.

Not `prometheus_sd_discovered_targets`: it drops to 0 for a few seconds on every configuration
reload while the pool keeps scraping (seen on Prometheus 2.42). A pool's series appears when the
pool is made, so right after Prometheus starts it may not count what discovery has not listed
yet: a step is excused only if the witness was also there through the SETTLE seconds before it.

What this trusts is what every verdict already trusts: that service discovery lists the pods
that serve (a pod it never lists is never scraped, in or out of a hole). What it refuses:

- a job of the metric without such a series, or any of its series lacking a sample (or above 0)
  in a step: that step stays a hole;
- a series of the metric whose labels do not carry the witness's own labels (the external labels
  that tell Prometheus servers apart in a central store, e.g. `cluster`): another Prometheus
  scraped it, which says nothing of this one; then nothing is excused;
- a series of the metric without a `job` label, or with an empty one: nothing is excused.

Pure functions over one answer; `witness_promql` is the query, run by the source.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from retire.durations import promql_duration
from retire.sources.prometheus.answers import Series
from retire.sources.prometheus.promql import Matcher

WITNESS = "prometheus_target_scrape_pool_targets"
JOB = "scrape_job"  # the witness's label naming the job it counts
# Labels of the witness that name the Prometheus scraping itself or the job, not where its data
# flows: every other label of it (external labels) must be on the series it vouches for.
_OWN_LABELS = frozenset({"__name__", "job", "instance", JOB})
SETTLE = 300.0  # seconds the witness must have been there before a step it excuses


def witness_promql(resolution: float) -> str:
    """Per job, the largest target count in each step (no point: no sample in the step)."""
    return f"max_over_time({WITNESS}[{promql_duration(resolution)}])"


def lead_steps(resolution: float) -> int:
    """Steps before the window's start the witness is read from (SETTLE of them)."""
    return math.ceil(SETTLE / resolution)


@dataclass(frozen=True)
class Empty:
    """Which steps of the window are shown to have had no target of the jobs, and the jobs."""

    steps: tuple[bool, ...]  # index k: the step ending at start + k * resolution
    jobs: tuple[str, ...]

    def any(self) -> bool:
        return any(self.steps)

    def stretches(self, start: float, resolution: float) -> list[tuple[float, float]]:
        """The excused time spans (step k speaks for (start + (k-1)·resolution, start + k·resolution])."""
        out: list[tuple[float, float]] = []
        for k, empty in enumerate(self.steps):
            lo, hi = max(start, start + (k - 1) * resolution), start + k * resolution
            if not empty:
                continue
            if out and out[-1][1] == lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
        return out


def up_promql(resolution: float) -> str:
    """Per job, the lowest `up` of any of its targets in each step (no point: no scrape stored)."""
    return f"min by (job) (min_over_time(up[{promql_duration(resolution)}]))"


def _on_grid(s: Series, start: float, resolution: float, lead: int, n: int) -> list[float | None]:
    """A range answer's points by step, index lead + k for step k (None: no point)."""
    out: list[float | None] = [None] * (lead + n)
    for t, v in s.points:
        i = lead + round((t - start) / resolution)
        if 0 <= i < lead + n:
            out[i] = v
    return out


def _prometheus(witness: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Which Prometheus stored a witness: its labels but the job it counts."""
    return tuple(sorted((k, v) for k, v in witness.items() if k not in (JOB, "__name__")))


def no_target_steps(
    witness: Sequence[Series],
    exporters: Iterable[Mapping[str, str]],
    start: float,
    end: float,
    resolution: float,
    up: Sequence[Series] = (),
) -> Empty | None:
    """Steps in which no scrape pool of a job of the metric's series (`exporters`: their labels)
    held a target; None when the witness cannot vouch for every one of those series. `witness`
    and `up` (`up_promql`: each job's lowest `up` per step) are read from `lead_steps` steps
    before `start` on the same grid. The server queried need not be the one that scraped (a
    central store holds every Prometheus's series, the witness too): what ties a witness to a
    series is their job and the witness's other labels, and that it counts the job's targets
    wherever they were scraped (a pool of the same name elsewhere, or one the job label was
    relabelled away from, shows 0 while they are: then nothing is excused). A step is not
    excused either where another pool of the same Prometheus held targets whose scrapes failed
    or were not stored: they may have served the metric and never exported it."""
    n = round((end - start) / resolution) + 1
    lead = lead_steps(resolution)
    by_job: dict[str, list[Series]] = {}
    for s in witness:
        by_job.setdefault(s.labels.get(JOB, ""), []).append(s)
    jobs: set[str] = set()
    for labels in exporters:
        job = labels.get("job", "")
        if not job:
            return None
        if not any(vouches(w.labels, labels) for w in by_job.get(job, ())):
            return None
        jobs.add(job)
    if not jobs:
        return None
    up_of = {s.labels.get("job", ""): _on_grid(s, start, resolution, lead, n) for s in up}
    empty = [True] * n
    for job in jobs:
        scraped = up_of.get(job, [None] * (lead + n))
        for s in by_job[job]:
            counts = _on_grid(s, start, resolution, lead, n)
            if any(
                u is not None and not (c is not None and c > 0) for u, c in zip(scraped, counts, strict=True)
            ):
                return None  # its targets were scraped while this pool held none: not their pool
            for k in range(n):
                settled = all(counts[lead + k - j] is not None for j in range(1, lead + 1))
                empty[k] = empty[k] and counts[lead + k] == 0 and settled
    # Other pools of the same Prometheus holding targets not all scraped well in a step.
    mine = {_prometheus(w.labels) for job in jobs for w in by_job[job]}
    for s in witness:
        other = s.labels.get(JOB, "")
        if other in jobs or _prometheus(s.labels) not in mine:
            continue
        counts = _on_grid(s, start, resolution, lead, n)
        scraped = up_of.get(other, [None] * (lead + n))
        for k in range(n):
            held = counts[lead + k]
            if held is not None and held > 0 and scraped[lead + k] != 1:
                empty[k] = False
    return Empty(tuple(empty), tuple(sorted(jobs)))


def vouches(witness: Mapping[str, str], series: Mapping[str, str]) -> bool:
    """Whether a witness series speaks for a series of the metric (or a target): the same job,
    and every label of the witness but its own on the series with the same value."""
    return witness.get(JOB) == series.get("job") and all(
        series.get(k) == v for k, v in witness.items() if k not in _OWN_LABELS
    )


def witness_of(job: str) -> str:
    """The selector of one job's witness series."""
    return f"{WITNESS}{{{Matcher(JOB, '=', job).render()}}}"

"""Gathering the traffic evidence: run every planned query at one instant, concurrently.

All queries are evaluated at the same instant `at` (pinned before the first query is sent), so the
pieces of evidence describe the same window. The result is plain data for the advisor; nothing
here decides a verdict.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from retire.coverage import Gap, global_gaps, target_gaps
from retire.inventory import canonical_version
from retire.prometheus import PrometheusClient, QueryResult, Series
from retire.queries import PlannedQuery, QueryParams, plan


@dataclass(frozen=True)
class VersionValue:
    """One aggregated value for a (model, version), e.g. its busiest-hour QPS."""

    model: str
    version: str
    value: float


@dataclass(frozen=True)
class SeriesFacts:
    """One counter series (a pod or replica serving a version): its value at the window's start
    (None when it had no sample then) and its last value in the window."""

    model: str
    version: str
    series: str
    start: float | None
    last: float


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

    @property
    def window_start(self) -> float:
        return self.evaluated_at - self.window


def _versions(result: QueryResult, params: QueryParams) -> tuple[VersionValue, ...]:
    return tuple(
        VersionValue(
            s.labels.get(params.model_label, ""),
            canonical_version(s.labels.get(params.version_label, "")),
            s.value if s.value is not None else float("nan"),
        )
        for s in result.series
    )


def _series_key(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__")


def _series_facts(last: QueryResult, start: QueryResult, params: QueryParams) -> tuple[SeriesFacts, ...]:
    starts = {_series_key(s.labels): s.value for s in start.series}
    facts = []
    for s in last.series:
        key = _series_key(s.labels)
        facts.append(
            SeriesFacts(
                s.labels.get(params.model_label, ""),
                canonical_version(s.labels.get(params.version_label, "")),
                key,
                starts.get(key),
                s.value if s.value is not None else float("nan"),
            )
        )
    return tuple(facts)


def _coverage(result: QueryResult, params: QueryParams, at: float, max_gap: float) -> Coverage:
    start = at - params.window
    series: tuple[Series, ...] = result.series
    if params.coverage is None:
        selector = f"{params.metric}{{{params.matchers}}}"
        gaps = global_gaps(series, start, at, params.resolution, max_gap)
        return Coverage(False, selector, max_gap, tuple(gaps), 0)
    selector = params.coverage.render()
    if not series:
        return Coverage(True, selector, max_gap, (), 0,
                        problem=f"--coverage {selector} matched no series in the window")  # fmt: skip
    gaps = global_gaps(series, start, at, params.resolution, max_gap)
    gaps += target_gaps(series, start, at, params.resolution, max_gap)
    return Coverage(True, selector, max_gap, tuple(gaps), len(series))


def gather(client: PrometheusClient, params: QueryParams, at: float, max_gap: float) -> Evidence:
    """Run the planned queries concurrently and package their answers."""
    planned = plan(params)

    def run(q: PlannedQuery) -> QueryResult:
        if q.kind == "range":
            return client.query_range(q.promql, at - params.window, at, params.resolution)
        return client.query(q.promql, at)

    with ThreadPoolExecutor(max_workers=len(planned)) as pool:
        results = dict(zip((q.name for q in planned), pool.map(run, planned), strict=True))

    warnings: list[str] = []
    infos: list[str] = []
    for name, result in results.items():
        warnings += [f"{name}: {w}" for w in result.warnings]
        infos += [f"{name}: {i}" for i in result.infos]
    coverage_name = "coverage" if params.coverage else "metric_presence"
    return Evidence(
        source=client.display_url,
        evaluated_at=at,
        window=params.window,
        step=params.step,
        queries=tuple(planned),
        max_qps=_versions(results["max_hourly_qps"], params),
        last_step_qps=_versions(results["last_step_qps"], params),
        series=_series_facts(results["series_last"], results["series_start"], params),
        coverage=_coverage(results[coverage_name], params, at, max_gap),
        warnings=tuple(warnings),
        infos=tuple(infos),
        partial=any(r.partial for r in results.values()),
        stats={name: r.stats for name, r in results.items() if r.stats},
    )

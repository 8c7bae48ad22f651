"""The query runner: a plan of queries sent at one instant, concurrently, and their answers.

What the queries mean is not known here (`queries.py` plans them, each evidence source reads their
answers); how they are sent is: all at once, one thread each; every answer refused if it holds one
series twice; and when the server refuses one as too big (sample limit, timeout), or with
--split-by-model, the whole plan once per model instead (a matcher on the model label), the
answers merged. Each request ends by the run's deadline (the client's); the server's own cost of
each (`stats=all`) is kept for the benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from retire.errors import PrometheusError
from retire.sources.prometheus.answers import QueryResult, SeriesKey, series_key
from retire.sources.prometheus.client import PrometheusClient, QueryTooBig
from retire.sources.prometheus.evidence import Progress, Request
from retire.sources.prometheus.promql import Matcher
from retire.sources.prometheus.queries import UNSPLIT, PlannedQuery, QueryParams

Plan = Callable[[QueryParams], list[PlannedQuery]]  # the queries for these parameters


@dataclass(frozen=True)
class Answers:
    """Every planned query's answer, by name, and how they were run."""

    planned: tuple[PlannedQuery, ...]
    results: dict[str, QueryResult]
    split_models: int = 0  # > 0: the queries were run once per model, for this many models
    notes: tuple[str, ...] = ()  # why and how they were split

    def __getitem__(self, name: str) -> QueryResult:
        return self.results[name]

    @property
    def warnings(self) -> list[str]:
        return [f"{name}: {w}" for name, r in self.results.items() for w in r.warnings]

    @property
    def infos(self) -> list[str]:
        return [f"{name}: {i}" for name, r in self.results.items() for i in r.infos]

    @property
    def partial(self) -> bool:
        return any(r.partial for r in self.results.values())

    @property
    def stats(self) -> dict[str, dict[str, object]]:
        return {name: r.stats for name, r in self.results.items() if r.stats}


def run_plan(
    client: PrometheusClient, params: QueryParams, request: Request, plan: Plan, too_big: str | None = None
) -> Answers:
    """Run the plan concurrently at the request's instant. A query the server refuses as too big
    makes the whole plan run once per model (as `request.split` asks from the start), unless
    `too_big` says why that cannot help: then it fails with that and the server's message."""
    at = request.at
    planned = plan(params)
    notes: list[str] = []
    split_models = 0
    with ThreadPoolExecutor(max_workers=len(planned)) as pool:
        results: dict[str, QueryResult] | None = None
        if not request.split:
            try:
                results = _run(client, planned, params, at, pool)
            except QueryTooBig as e:
                if too_big is not None:
                    raise PrometheusError(f"{too_big}: {e.message}") from e
                notes.append(f"split by model after: {e.message}")
        if results is None:
            results, split_models = _run_split(
                client, params, at, plan, request.models_hint, pool, request.progress
            )
            notes.append(f"queries were run per model ({split_models} models)")
    return Answers(tuple(planned), results, split_models, tuple(notes))


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
    plan: Plan,
    models_hint: Callable[[], Iterable[str]],
    pool: ThreadPoolExecutor,
    progress: Progress | None,
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
        planned = [q for q in plan(scoped) if q.name not in UNSPLIT]
        try:
            for name, result in _run(client, planned, scoped, at, pool).items():
                per_name.setdefault(name, []).append(result)
        except QueryTooBig as e:
            raise PrometheusError(
                f"even split by model, the queries for model {model!r} are too big: {e.message}"
            ) from e
        if progress:
            progress(done + 1, len(models))
    once = [q for q in plan(params) if q.name in UNSPLIT]
    per_name.update({k: [v] for k, v in _run(client, once, params, at, pool).items()})
    kinds = {q.name: "matrix" if q.kind == "range" else "vector" for q in plan(params)}
    merged = {name: _merge(per_name.get(name) or [QueryResult(kind, ())]) for name, kind in kinds.items()}
    return merged, len(models)

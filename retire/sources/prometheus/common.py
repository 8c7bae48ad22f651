"""What both evidence sources do alike: what they ask besides their queries, the answers every
source reads the same way, and the `Evidence` they make of it all.

Each source's `gather` is `begin` (the server's instrument, asked on the side while the queries
run; the series index), its queries through the runner, its own reading of their answers (a
`Reading`), then `finish`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from retire.durations import iso
from retire.sources.columns import Columns, categorical
from retire.sources.prometheus.answers import QueryResult, Series, series_key
from retire.sources.prometheus.buckets import StepBounds
from retire.sources.prometheus.client import PrometheusClient
from retire.sources.prometheus.coverage import Target, target_of
from retire.sources.prometheus.evidence import Coverage, Evidence, Scope, Unlabelled, VersionSeries
from retire.sources.prometheus.instrument import Instrument, learn
from retire.sources.prometheus.queries import QueryParams
from retire.sources.prometheus.raw_facts import SeriesFacts
from retire.sources.prometheus.rules_facts import VersionFacts
from retire.sources.prometheus.runner import Answers
from retire.sources.prometheus.table import VersionValue
from retire.sources.prometheus.targets import Targets


@dataclass(frozen=True)
class Start:
    """What every source asks first: the server's instrument (being learned on the side) and what
    the series index says (which targets export the metric, the --selector's reach)."""

    learning: Future[Instrument]
    exporters: dict[Target | None, str]
    scope: Scope
    index_warnings: tuple[str, ...]
    index_partial: bool

    def instrument(self) -> Instrument:
        """The instrument, once learned (within the client's timeout)."""
        return self.learning.result()


def begin(client: PrometheusClient, params: QueryParams, at: float) -> Start:
    """Ask for the instrument on the side, and the index now (both before the queries)."""
    side = ThreadPoolExecutor(max_workers=1)
    learning = side.submit(learn, client, at)
    side.shutdown(wait=False)  # its one task ends within the timeout; an error here does not wait
    exporters, scope, index_warnings, index_partial = _index(client, params, at)
    return Start(learning, exporters, scope, tuple(index_warnings), index_partial)


@dataclass(frozen=True)
class Reading:
    """What a source made of its own answers, beyond what every source reads."""

    max_qps: Sequence[VersionValue]
    coverage: Coverage
    targets: Targets
    checks: tuple[Coverage, ...] = ()
    series: Sequence[SeriesFacts] = ()
    recorded: Sequence[VersionFacts] | None = None
    steps: Mapping[tuple[str, str], StepBounds] | None = None
    hourly: tuple[VersionSeries, ...] | None = None
    rule_problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    partial: bool = False


def finish(
    client: PrometheusClient,
    params: QueryParams,
    at: float,
    start: Start,
    answers: Answers,
    reading: Reading,
) -> Evidence:
    """The Evidence: the source's reading with what every source reads (the last step's rate,
    the unlabelled series, the answers' warnings, infos and stats) and says (notes)."""
    instrument = start.instrument()
    targets = reading.targets
    warnings = [f"series index: {w}" for w in start.index_warnings]
    warnings += [
        *answers.warnings,
        *reading.warnings,
        *(f"targets' up series: {w}" for w in targets.warnings),
    ]
    unlabelled = _unlabelled(answers["unlabelled_series"], params, targets)
    notes = [*answers.notes, *instrument.notes, *reading.notes, *_gone_notes(targets)]
    if unlabelled.flat:
        notes.append(
            f"{unlabelled.flat} series lacking the {params.model_label} or {params.version_label} label "
            "were flat all window: they hide no call (their targets must reach the window's end too)"
        )
    return Evidence(
        source=client.display_url,
        evaluated_at=at,
        window=params.window,
        step=params.step,
        queries=answers.planned,
        max_qps=reading.max_qps,
        last_step_qps=version_values(answers["last_step_qps"], params),
        failed=version_values(answers["failed_calls"], params) if "failed_calls" in answers.results else None,
        series=reading.series,
        coverage=reading.coverage,
        warnings=tuple(warnings),
        infos=tuple(answers.infos),
        partial=start.index_partial or reading.partial or targets.partial or answers.partial,
        stats=answers.stats,
        split_models=answers.split_models,
        notes=tuple(notes),
        hourly=reading.hourly,
        recorded=reading.recorded,
        checks=reading.checks,
        scope=start.scope,
        selector=params.series_selector,
        unlabelled=unlabelled,
        targets=targets,
        steps=reading.steps,
        instrument=instrument,
        rule_problems=reading.rule_problems,
    )


def version_values(result: QueryResult, params: QueryParams) -> Columns[VersionValue]:
    """One value per version (a `sum by` answer: the busiest step's rate, the last step's),
    straight into columns: one list per field, no record per series."""
    models, versions, values = [], [], []
    for s in result.series:
        models.append(s.labels.get(params.model_label, ""))
        versions.append(params.canonical(s.labels.get(params.version_label, "")))
        values.append(s.value if s.value is not None else float("nan"))
    return Columns(
        VersionValue, {"model": categorical(models), "version": categorical(versions), "value": values}
    )


def _unlabelled(result: QueryResult, params: QueryParams, targets: Targets) -> Unlabelled:
    """The unlabelled_series answer: per model, its series lacking the version label that may hide
    calls; those lacking the model label under none. A series whose counter was flat all window
    hides none if it also had a sample at exactly each successful scrape of its target: one
    missing may be a restart that created it anew at the value it had, or ended it, its calls
    lost (a labelled series that ends is read by its own queries; this one has none); one too
    many, a series its `up` does not stand for. Those are only counted (`flat`); the target
    checks judge their targets (`flat_unlabelled`)."""
    no_version: dict[str, int] = {}
    no_model = flat = 0
    for s in result.series:
        if _flat(s, targets):
            flat += 1
        elif model := s.labels.get(params.model_label, ""):
            no_version[model] = no_version.get(model, 0) + 1
        else:
            no_model += 1
    return Unlabelled(
        no_version,
        no_model,
        params.metric,
        ",".join(m.render() for m in params.fleet),
        params.model_label,
        params.version_label,
        flat,
    )


def _flat(s: Series, targets: Targets) -> bool:
    """Flat all window, with a sample at exactly each successful scrape of its target (an `up`
    series: else nothing shows it)."""
    samples = _flat_samples(s)
    return samples is not None and samples == targets.scrapes_of(series_key(s.labels))


def _flat_samples(s: Series) -> float | None:
    """unlabelled_series gives a series' samples in the window, positive if its counter was flat
    all window, negative if not; anything else (NaN, no value) proves nothing."""
    v = s.value
    return v if v is not None and math.isfinite(v) and v > 0 else None


def flat_unlabelled(result: QueryResult) -> list[dict[str, str]]:
    """The series lacking a label whose counters were flat all window. They hide no call only if
    they had a sample at each of their targets' successful scrapes and those targets' samples
    reach the window's end, so their targets are judged like the metric's (`up.gather_targets`)."""
    return [s.labels for s in result.series if _flat_samples(s) is not None]


def hourly(result: QueryResult, params: QueryParams, at: float) -> tuple[VersionSeries, ...]:
    """Each version's rate at each step of the window, for sparklines (None: no point then)."""
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
        exporters.setdefault(target_of(labels), "{" + shown + "}")
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

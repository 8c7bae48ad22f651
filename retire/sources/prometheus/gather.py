"""Gathering the traffic evidence: every planned query at one instant, from one of two sources.

An evidence source is a module with one function, `gather`, of the signature below: it runs its
queries (through `runner.py`) and reads their answers into one `Evidence`, whose per-version
table is the same whatever the source (`table.py`). Raw series (`raw_source.py`) read every
scrape of the window; recording rules (`rules_source.py`, with --use-recording-rules) read what
`retire rules` recorded. `SOURCES` is the only list of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from retire.sources.prometheus import raw_source, rules_source
from retire.sources.prometheus.client import PrometheusClient
from retire.sources.prometheus.evidence import Evidence
from retire.sources.prometheus.queries import QueryParams
from retire.sources.prometheus.runner import Progress


class EvidenceSource(Protocol):
    """Where evidence comes from: one function, the same for every source."""

    def gather(
        self,
        client: PrometheusClient,
        params: QueryParams,
        at: float,
        max_gap: float,
        *,
        split: bool = ...,
        models_hint: Callable[[], Iterable[str]] = ...,
        progress: Progress | None = ...,
        sparklines: bool = ...,
    ) -> Evidence: ...


SOURCES: Mapping[str, EvidenceSource] = {"raw": raw_source, "rules": rules_source}


def source_for(params: QueryParams) -> EvidenceSource:
    """The recording rules when the parameters name them (`QueryParams.rules`), else raw series."""
    return SOURCES["rules" if params.rules is not None else "raw"]


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
    queries are run once per model instead and merged; the report says so. `models_hint`: the
    models on disk, asked only when splitting; `progress(done, total)`: called as each model's
    queries finish; `sparklines`: also read the traffic per step.
    """
    return source_for(params).gather(
        client,
        params,
        at,
        max_gap,
        split=split,
        models_hint=models_hint,
        progress=progress,
        sparklines=sparklines,
    )

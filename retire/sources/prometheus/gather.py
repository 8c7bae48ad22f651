"""Gathering the traffic evidence: every planned query at one instant, from one of two sources.

An evidence source is a module with one function, `gather(client, params, request)`: it runs its
queries (through `runner.py`) and reads their answers into one `Evidence`, whose per-version
table is the same whatever the source (`table.py`). Raw series (`raw_source.py`) read every
scrape of the window; recording rules (`rules_source.py`, with --use-recording-rules) read what
`retire rules` recorded. `SOURCES` is the only list of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from retire.sources.prometheus import raw_source, rules_source
from retire.sources.prometheus.client import PrometheusClient
from retire.sources.prometheus.evidence import Evidence, Request
from retire.sources.prometheus.queries import QueryParams


class EvidenceSource(Protocol):
    """Where evidence comes from: one function, the same for every source."""

    def gather(self, client: PrometheusClient, params: QueryParams, request: Request) -> Evidence: ...


SOURCES: Mapping[str, EvidenceSource] = {"raw": raw_source, "rules": rules_source}


def source_for(params: QueryParams) -> EvidenceSource:
    """The recording rules when the parameters name them (`QueryParams.rules`), else raw series."""
    return SOURCES["rules" if params.rules is not None else "raw"]


def gather(client: PrometheusClient, params: QueryParams, request: Request) -> Evidence:
    """Run the planned queries concurrently at `request.at` and package their answers.

    When the server refuses a query as too big (sample limit, timeout), or with `request.split`,
    the queries are run once per model instead and merged; the report says so.
    """
    return source_for(params).gather(client, params, request)

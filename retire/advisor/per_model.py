"""Evidence per model, spread over the model's versions on disk (stock TF Serving).

A counter with no version label (`--version-label ''`, as `--preset tfserving`) says how often a
model was called, not which version served the calls. The queries then group by the model label
alone and every answer comes back under the version "". Before the join, each such answer is
copied to every version of that model on disk, so each version carries its whole model's evidence:
one call to the model makes every version in-use, and a version is safe only when its model had no
call all window under every check of reach a per-version counter gets. The rules that follow
(doubts, protections, verdicts) are the same; only what a version's evidence means changes, which
the reasons say (wording.PER_MODEL).

Answers for models with no version on disk stay under "", as `not-on-disk` rows of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from retire.sources.disk.inventory import Inventory
    from retire.sources.prometheus.evidence import Evidence

R = TypeVar("R")


def spread(evidence: Evidence, inventory: Inventory) -> Evidence:
    """The evidence with every per-model answer copied to each of the model's versions on disk."""
    versions: dict[str, list[str]] = {}
    for v in inventory.versions:
        versions.setdefault(v.model, []).append(v.version)

    def keys(model: str, version: str) -> Sequence[str]:
        return versions.get(model, [version]) if version == "" else [version]

    def records(items: Iterable[R] | None) -> list[R]:
        return [
            replace(r, version=v)  # type: ignore[type-var]
            for r in items or ()
            for v in keys(r.model, r.version)  # type: ignore[attr-defined]
        ]

    def pairs(found: Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
        return frozenset((m, v) for m, version in found for v in keys(m, version))

    def by_key(mapping: Mapping[tuple[str, str], Any] | None) -> dict[tuple[str, str], Any] | None:
        if mapping is None:
            return None
        return {(m, v): value for (m, version), value in mapping.items() for v in keys(m, version)}

    scope = evidence.scope
    return replace(
        evidence,
        max_qps=records(evidence.max_qps),
        last_step_qps=records(evidence.last_step_qps),
        failed=records(evidence.failed) if evidence.failed is not None else None,
        series=records(evidence.series),
        hourly=tuple(records(evidence.hourly)) if evidence.hourly is not None else None,
        recorded=records(evidence.recorded) if evidence.recorded is not None else None,
        steps=by_key(evidence.steps),
        scope=replace(scope, outside=pairs(scope.outside), hidden=pairs(scope.hidden)),
    )

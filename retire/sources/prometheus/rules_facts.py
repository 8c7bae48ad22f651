"""The recording rules' facts: what the recorded series say per version, and what they make of it.

`retire rules` records, per version, each `aspect` (the rate, the growth over the lookback, first
calls of born series, resets, the series count); a report reads each one's highest value over the
rollups, the span since the last one and the rule evaluated raw at the instant. Per version they
become the busiest step's bound and the source's part of the per-version table
(`table.SOURCE_COLUMNS`). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retire.sources.columns import columns_of
from retire.sources.prometheus import table as t
from retire.sources.prometheus.answers import QueryResult
from retire.sources.prometheus.queries import VERSION_ASPECTS, QueryParams
from retire.sources.prometheus.table import SourcePart, VersionValue

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class VersionFacts:
    """A version's recorded facts (with --use-recording-rules), in place of per-series facts:
    the most series at once, first calls of series born or created anew in the window, counter
    resets."""

    model: str
    version: str
    series: float
    born_calls: float
    resets: float


def _worst(old: float | None, new: float) -> float:
    """The larger value, but NaN wins: a NaN answer is evidence of a problem, not a small number."""
    if old is None or new != new:
        return new
    return old if old != old else max(old, new)


Aspects = dict[tuple[str, str], dict[str, float]]  # (model, version) -> aspect -> highest value


def recorded_aspects(parts: Iterable[QueryResult], params: QueryParams) -> Aspects:
    """Per version, each aspect's highest value over the rollups, the span since the last one and
    the rule evaluated raw at the instant (NaN wins: it is evidence of a problem)."""
    facts: Aspects = {}
    for result in parts:
        for s in result.series:
            aspect = s.labels.get("aspect", "")
            if aspect not in VERSION_ASPECTS:
                continue  # `present` is the heartbeat, checked over the window separately
            version = params.canonical(s.labels.get(params.version_label, ""))
            key = (s.labels.get(params.model_label, ""), version)
            seen = facts.setdefault(key, {})
            seen[aspect] = _worst(seen.get(aspect), float("nan") if s.value is None else s.value)
    return facts


def recorded_facts(
    facts: Aspects, step: float, returns: bool
) -> tuple[Sequence[VersionValue], Sequence[VersionFacts]]:
    """The busiest step's rate per version, as a bound no call escapes, and the other facts.

    The largest growth over the rule's lookback holds every step-long span of samples (README
    "Recording rules"), so it divided by the step bounds the busiest step's rate from above;
    first calls of born series (which no growth shows) are added, unless a series may be one back
    after a gap (`returns`). The recorded rate itself (the raw queries' measure) is never less."""
    max_qps = []
    for (model, version), f in facts.items():
        seen = [a for a in ("rate", "increase", "born") if a in f]
        if not seen:
            continue
        # Created anew (absent at a scrape): its value since is calls no growth shows.
        first = (0.0 if returns else f.get("born", 0.0)) + f.get("recreated", 0.0)
        parts = [f.get("rate", 0.0), (f.get("increase", 0.0) + first) / step]
        value = math.nan if any(math.isnan(v) for v in (*parts, first)) else max(parts)
        max_qps.append(VersionValue(model, version, value))
    recorded = tuple(
        VersionFacts(
            m, v, f.get("series", 0.0), f.get("born", 0.0) + f.get("recreated", 0.0), f.get("resets", 0.0)
        )
        for (m, v), f in facts.items()
    )
    return tuple(max_qps), recorded


def per_version(recorded: Sequence[VersionFacts]) -> SourcePart:
    """The recording rules' part of the per-version table."""
    rcols = columns_of(recorded, ("model", "version", "series", "born_calls", "resets"))
    return SourcePart(rcols["model"], rcols["version"], lambda rk: _per_version(rcols, rk))


def _per_version(rcols: dict[str, Any], rk: Any) -> pd.DataFrame:
    """Per version from the recording rules: the calls counted are the first calls of series born
    in the window (the rate covers the rest); the number of born series is not recorded (0)."""
    import numpy as np
    import pandas as pd

    series = np.asarray(rcols["series"], dtype=float)
    born_calls = np.asarray(rcols["born_calls"], dtype=float)
    resets = np.asarray(rcols["resets"], dtype=float)
    nan = ~(np.isfinite(series) & np.isfinite(born_calls) & np.isfinite(resets))
    frame = pd.DataFrame(
        {
            "k": rk,
            t.SERIES.name: np.nan_to_num(series, nan=0.0, posinf=0.0, neginf=0.0).astype("int64"),
            t.CALLS.name: born_calls,
            t.BORN.name: np.zeros(len(rk), dtype="int64"),
            t.RESETS.name: (np.nan_to_num(resets, nan=0.0, posinf=0.0, neginf=0.0) > 0).astype("int64"),
            t.NAN_SERIES.name: nan.astype("int64"),
        }
    )
    frame[t.RESETS_SEEN.name] = frame[t.RESETS.name]
    frame[t.BLIND.name] = 0.0
    frame[t.BLIND_OVER.name] = 0.0
    frame[t.GONE.name] = 0
    frame[t.UNSAMPLED.name] = 0  # no raw series read
    if frame["k"].duplicated().any():  # one fact per version from evidence; be safe if not
        most = {c.name: "max" for c in t.SOURCE_COLUMNS}
        frame = frame.groupby("k", as_index=False, sort=False).agg({**most, t.NAN_SERIES.name: "sum"})
    return frame

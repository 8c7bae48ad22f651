"""The raw series' facts: one record per counter series, and what they make per version.

Each series (a pod or replica serving a version) is read from the raw queries' answers at the
instant: its value at the window's start and its last value, its resets, whether it is still there
at the end, its samples. Per version they become the source's part of the per-version table
(`table.SOURCE_COLUMNS`): calls counted across resets, births, doubts. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retire.sources.columns import Columns, categorical, columns_of
from retire.sources.prometheus import table as t
from retire.sources.prometheus.answers import QueryResult, SeriesKey, series_key
from retire.sources.prometheus.queries import QueryParams
from retire.sources.prometheus.table import SourcePart
from retire.sources.prometheus.targets import Targets

if TYPE_CHECKING:
    import pandas as pd

# The first counter value a float64 cannot add one call to: 2^53 + 1 is stored as 2^53.
COUNTABLE = 2.0**53


@dataclass(frozen=True)
class SeriesFacts:
    """One counter series (a pod or replica serving a version): its value at the window's start
    (None when it had no sample then) and its last value in the window."""

    model: str
    version: str
    series: SeriesKey
    start: float | None
    last: float
    # After a counter reset (reload, restart): calls counted from the raw samples across it, and
    # the longest span between the last sample before a reset and the first after it (calls made
    # then cannot be seen). None/0 when the series did not go down or its samples were not read.
    counted: float | None = None
    blind: float = 0.0
    resets: float = 0.0  # how many times the counter went down in the window (NaN: not known)
    gone: bool = False  # no sample at the instant: the series ended before the window's end
    # Its scrape interval, the smallest spacing of its re-read samples (NaN: not re-read): a
    # blind span of one scrape (plus grace) is what no query could see; longer, scrapes were
    # missed before the reset, and calls then were countable had they been stored.
    interval: float = math.nan
    # The longest blind span before a reset during which its target's scrapes were missed (0:
    # none; NaN: not checked, and --max-gap decides). While the target is scraped and the series
    # is absent, the old counter was already gone: only the moment before the first such scrape
    # is blind, as for every scrape.
    blind_missed: float = math.nan
    samples: float = math.nan  # its samples in the window (NaN: not asked)
    # Absent at some successful scrape of its target while present at both ends of the window:
    # the counter was created anew, so its value at the end is calls since then (a TF Serving
    # counter is created by a call, a Triton one at 0), even when it ends where it started.
    recreated: bool = False
    # More samples in the window than its target's successful scrapes (pushed or federated with
    # the target's labels at another interval): `recreated` cannot be told, a doubt.
    unsampled: bool = False


SERIES_FIELDS = (
    "model",
    "version",
    "series",
    "start",
    "last",
    "counted",
    "blind",
    "resets",
    "gone",
    "interval",
    "blind_missed",
    "recreated",
    "unsampled",
)


def series_facts(
    last: QueryResult,
    start: QueryResult,
    resets: QueryResult,
    now: QueryResult,
    count: QueryResult,
    params: QueryParams,
    targets: Targets,
) -> Columns[SeriesFacts]:
    """Straight into columns: one list per field, no record per series."""
    starts = {series_key(s.labels): s.value for s in start.series}
    current = {series_key(s.labels) for s in now.series}
    downs = {series_key(s.labels): s.value for s in resets.series}
    counts = {series_key(s.labels): s.value for s in count.series}
    names = ("model", "version", "series", "start", "last", "resets", "gone", "samples", "recreated")
    cols: dict[str, list[Any]] = {n: [] for n in (*names, "unsampled")}
    for s in last.series:
        key = series_key(s.labels)
        cols["model"].append(s.labels.get(params.model_label, ""))
        cols["version"].append(params.canonical(s.labels.get(params.version_label, "")))
        cols["series"].append(key)
        cols["start"].append(starts.get(key))
        cols["last"].append(s.value if s.value is not None else float("nan"))
        # No answer for a series that has samples: nothing proves it never went down.
        cols["resets"].append(_or_nan(downs.get(key)))
        cols["gone"].append(key not in current)
        samples = counts.get(key)
        scrapes = targets.scrapes_of(key)
        cols["samples"].append(_or_nan(samples))
        cols["recreated"].append(
            key in starts
            and key in current
            and samples is not None
            and scrapes is not None
            and samples < scrapes
        )
        # A NaN among its target's `up` samples (never written by Prometheus) makes the count NaN.
        cols["unsampled"].append(
            samples is not None and scrapes is not None and (samples > scrapes or math.isnan(scrapes))
        )
    return Columns(
        SeriesFacts, {**cols, "model": categorical(cols["model"]), "version": categorical(cols["version"])}
    )


def recreated(series: Sequence[SeriesFacts]) -> dict[SeriesKey, float]:
    """Series created anew in the window, with their last value."""
    cols = columns_of(series, ("series", "last", "recreated"))
    return {k: v for k, v, r in zip(cols["series"], cols["last"], cols["recreated"], strict=True) if r}


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def went_down(cols: dict[str, Any]) -> Any:
    """Which series' counters went down in the window (a reload, a restart): `resets()` says so
    or could not say, or it ended below where it started. The one place this is decided: evidence
    re-reads those series, the advisor counts their calls across the reset or doubts them."""
    import numpy as np

    start, has_start = _optional(cols["start"])
    last = np.asarray(cols["last"], dtype=float)
    resets = np.asarray(cols["resets"], dtype=float)
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(resets) & (resets <= 0)) | (has_start & (last < start))


def _optional(column: Any) -> tuple[Any, Any]:
    """A column of numbers or None, as floats (None: NaN) and where it had a number."""
    import numpy as np

    values = np.asarray(column)
    if values.dtype != object:
        return values.astype(float), np.ones(len(values), dtype=bool)
    has = values != None  # noqa: E711 (elementwise, on an object array)
    out = np.full(len(values), np.nan)
    out[has] = values[has].astype(float)
    return out, has


def per_version(series: Sequence[SeriesFacts], max_gap: float) -> SourcePart:
    """The raw series' part of the per-version table."""
    scols = columns_of(series, SERIES_FIELDS)
    return SourcePart(scols["model"], scols["version"], lambda sk: _per_version(scols, sk, max_gap))


def _per_version(scols: dict[str, Any], sk: Any, max_gap: float) -> pd.DataFrame:
    """Per version from per-series start and last values: calls, births, resets, NaNs."""
    import numpy as np

    s = _per_series(scols, sk, max_gap)
    per = s.groupby("k", as_index=False, sort=False).agg(
        **{
            t.SERIES.name: ("one", "sum"),
            t.CALLS.name: ("calls", "sum"),
            t.BORN.name: ("born", "sum"),
            t.RESETS.name: ("reset", "sum"),
            t.RESETS_SEEN.name: ("reset_seen", "sum"),
            t.BLIND.name: ("blind", "max"),
            t.BLIND_OVER.name: ("blind_over", "max"),
            t.NAN_SERIES.name: ("nan", "sum"),
            t.UNSAMPLED.name: ("unsampled", "sum"),
            t.GONE.name: ("gone", "sum"),
        }
    )
    # Calls of the readable series still count (positive evidence); none counted and some series
    # unreadable is "calls unknown", not "0 calls".
    per.loc[(per[t.NAN_SERIES.name] > 0) & (per[t.CALLS.name] == 0), t.CALLS.name] = np.nan
    return per


def _per_series(scols: dict[str, Any], sk: Any, max_gap: float) -> pd.DataFrame:
    """Per series (`k`: its version's number): its calls in the window, and whether it was born,
    reset (a doubt, or at all), unreadable, and blind before a reset.

    A counter that went down reset (a reload, a restart). Where evidence re-read its samples,
    its calls are counted across the reset, and only the span with no sample before the reset
    stays blind: one scrape interval (plus grace) of it is what no query could see, and is
    tolerated; longer (scrapes were missed before the reset, or longer than --max-gap where the
    interval is not known), or not re-read, the reset is a doubt (calls before it may be lost)."""
    import numpy as np
    import pandas as pd

    start, has_start = _optional(scols["start"])
    s = pd.DataFrame(
        {
            "k": sk,
            "start": start,
            "has_start": has_start,
            "last": np.asarray(scols["last"], dtype=float),
            "counted": _optional(scols["counted"])[0],
            "blind": np.asarray(scols["blind"], dtype=float),
            "gone": np.asarray(scols["gone"], dtype=bool),
        }
    )
    born = ~s["has_start"]
    reset = went_down(scols)
    recounted = reset & np.isfinite(s["counted"])
    # Calls in the window per series. Born in the window: TF Serving creates the series on the
    # first call, so its whole value is calls in the window. After a reset, at least the new value,
    # or all of them where the samples were re-read.
    s["calls"] = np.where(recounted, s["counted"], np.where(born | reset, s["last"], s["last"] - s["start"]))
    # Recreated in the window (absent at a successful scrape): at least its value since then.
    recreated = np.asarray(scols["recreated"], dtype=bool)
    s["calls"] = np.where(recreated, np.fmax(s["calls"], s["last"]), s["calls"])
    # A counter is a finite, non-negative number; anything else (NaN, +Inf, where Inf - Inf would
    # read as "0 calls") is evidence of a problem, never of no traffic. From 2^53 on a float64
    # cannot add one call (2^53 + 1 is stored as 2^53): no count there is evidence either.
    last_ok = np.isfinite(s["last"]) & (s["last"] >= 0) & (s["last"] < COUNTABLE)
    start_ok = np.isfinite(s["start"]) & (s["start"] >= 0) & (s["start"] < COUNTABLE)
    s["nan"] = ~last_ok | (s["has_start"] & ~start_ok)
    s.loc[s["nan"], "calls"] = np.nan
    s["born"] = born
    missed = np.asarray(scols["blind_missed"], dtype=float)
    # Where the target's scrapes were checked, only spans it missed are blind; else --max-gap.
    checked = np.isfinite(missed)
    blind_doubt = np.where(checked, missed, np.where(s["blind"] > max_gap, s["blind"], 0.0))
    s["reset"] = reset & ~(recounted & (blind_doubt <= 0))  # a doubt
    s["reset_seen"] = reset | recreated
    # Shown in the reasons: the blind span of a reset that is a doubt because of it, else the
    # longest tolerated one.
    s["blind"] = np.where(reset, s["blind"], 0.0)
    s["blind_over"] = np.where(recounted, blind_doubt, 0.0)
    s["unsampled"] = np.asarray(scols["unsampled"], dtype=bool)
    s["one"] = 1
    return s

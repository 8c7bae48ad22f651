"""The per-version table: what every evidence source hands the advisor, declared once.

One row per (model, version) any query answered for, whatever the source (raw series or recording
rules): `Evidence.per_version()`. Each column is one entry below: its name, its type, its value for
a version no query answered for (the join gives it to versions seen only on disk) and what it
means. The advisor reads the columns through these entries (`SERIES.of(frame)`), never by a name of
its own.

Where the values come from: the rates and the busiest-step bounds from what every source answers
(`Evidence.max_qps`, `last_step_qps`, `steps`); the rest (`SOURCE_COLUMNS`) from each source's own
part, per series (`raw_facts.per_version`) or as recorded (`rules_facts.per_version`). A column
that needs new evidence is its entry here, its values in both parts, then the advisor's use of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retire.sources.columns import categorical, columns_of, factorize, pairs

if TYPE_CHECKING:
    import pandas as pd

    from retire.sources.prometheus.buckets import StepBounds


@dataclass(frozen=True)
class VersionValue:
    """One aggregated value for a (model, version), e.g. its busiest-hour QPS."""

    model: str
    version: str
    value: float


@dataclass(frozen=True)
class Column:
    """One column of the per-version table."""

    name: str
    dtype: str  # numpy's ("float64", "int64", "bool"); "category" for the two keys
    fill: float | int | bool | None  # for a version no query answered for (None: the keys)
    means: str

    def of(self, frame: pd.DataFrame) -> Any:
        """This column of a frame (the joined one too) as a numpy array of its type, NaN where a
        number is missing."""
        if self.dtype == "float64":
            column = frame[self.name]
            if column.dtype == "float64":  # NaN already marks what is missing: a view, no copy
                view = column.to_numpy()
                view.flags.writeable = False  # a reader that wrote to it would change the frame
                return view
            return column.to_numpy(dtype=float, na_value=math.nan)
        if self.dtype == "category":
            return frame[self.name].to_numpy(dtype=object)
        return frame[self.name].to_numpy(dtype=self.dtype)


NAN = math.nan

MODEL = Column("model", "category", None, "the model label: the name the model is served under")
VERSION = Column("version", "category", None, "the version label, read by the server's rule (the join key)")
MAX_QPS = Column(
    "max_qps",
    "float64",
    NAN,
    "the busiest step's rate in req/s: from raw series the seed query's busiest step, from recording "
    "rules a bound no step exceeds (README); NaN: not answered",
)
MAX_QPS_SEEN = Column("max_qps_seen", "bool", False, "whether the busiest-step query answered for it")
LAST_QPS = Column(
    "last_qps", "float64", NAN, "the rate over the step ending at the instant; NaN: not answered"
)
LAST_QPS_SEEN = Column("last_qps_seen", "bool", False, "whether the last-step query answered for it")
CALLS = Column(
    "calls",
    "float64",
    NAN,
    "calls counted in the window, summed over its series (from recording rules only the first calls "
    "of series born in it: `Evidence.calls_are_first_calls`); NaN: unknown, never 0",
)
STEP_LOW = Column("step_low", "float64", NAN, "with --threshold: its busiest step is at least this (req/s)")
STEP_HIGH = Column(
    "step_high",
    "float64",
    NAN,
    "with --threshold: its busiest step is at most this (req/s); NaN: not counted",
)
SERIES = Column("series", "int64", 0, "its series (pods, replicas) with samples in the window")
BORN = Column("born", "int64", 0, "its series born in the window (no sample at its start)")
RESETS = Column("resets", "int64", 0, "its series whose counter reset in a way that may hide calls: a doubt")
RESETS_SEEN = Column(
    "resets_seen", "int64", 0, "its series whose counter went down or was created anew at all (the wording)"
)
NAN_SERIES = Column(
    "nan_series", "int64", 0, "its series with a value that is no counter (NaN, Inf, negative)"
)
UNSAMPLED = Column(
    "unsampled",
    "int64",
    0,
    "its series with more samples in the window than its target's successful scrapes, or ended and "
    "not re-read against them: a counter created anew cannot be told (a doubt)",
)
GONE = Column("gone", "int64", 0, "its series with no sample at the instant: ended before the window's end")
BLIND = Column("blind", "float64", 0.0, "the longest span with no sample before a reset, in seconds")
BLIND_OVER = Column(
    "blind_over",
    "float64",
    0.0,
    "the longest such span that is a doubt: scrapes missed, or longer than --max-gap where the "
    "scrape interval is not known (0: every reset's calls were counted)",
)

# In the frame's order. The keys first; the source's own part is SOURCE_COLUMNS.
COLUMNS: tuple[Column, ...] = (
    MODEL,
    VERSION,
    MAX_QPS,
    MAX_QPS_SEEN,
    LAST_QPS,
    LAST_QPS_SEEN,
    CALLS,
    STEP_LOW,
    STEP_HIGH,
    SERIES,
    BORN,
    RESETS,
    RESETS_SEEN,
    NAN_SERIES,
    UNSAMPLED,
    GONE,
    BLIND,
    BLIND_OVER,
)
VALUES: tuple[Column, ...] = COLUMNS[2:]  # every column but the keys
SOURCE_COLUMNS: tuple[Column, ...] = (
    SERIES,
    CALLS,
    BORN,
    RESETS,
    RESETS_SEEN,
    BLIND,
    BLIND_OVER,
    NAN_SERIES,
    UNSAMPLED,
    GONE,
)
BY_NAME: Mapping[str, Column] = {c.name: c for c in COLUMNS}


@dataclass(frozen=True)
class SourcePart:
    """A source's rows (per series, or per version) and how they become its per-version columns:
    `per_version(keys)` gets each row's version number and gives a frame with that number (`k`,
    one row per version) and the SOURCE_COLUMNS."""

    model: Any  # a column: each row's model
    version: Any  # ... and version
    per_version: Callable[[Any], pd.DataFrame]


def assemble(
    max_qps: Sequence[VersionValue],
    last_qps: Sequence[VersionValue],
    part: SourcePart,
    steps: Mapping[tuple[str, str], StepBounds],
) -> pd.DataFrame:
    """The table from the rates (as records or `Columns`), the source's part and
    the busiest-step bounds: `model` and `version` as Categoricals (categories in the order the
    answers first named them), every other column placed at its version and filled elsewhere."""
    import numpy as np
    import pandas as pd

    qcols = columns_of(max_qps, ("model", "version", "value"))
    lcols = columns_of(last_qps, ("model", "version", "value"))
    stcols: dict[str, Any] = {
        "model": categorical([m for m, _ in steps]),
        "version": categorical([v for _, v in steps]),
    }
    models = (qcols["model"], lcols["model"], part.model, stcols["model"])
    mcode, mnames = factorize(*models)
    vcode, vnames = factorize(qcols["version"], lcols["version"], part.version, stcols["version"])
    pair_codes, inverse = pairs(mcode, vcode, len(mnames), len(vnames))
    width = max(len(vnames), 1)
    bounds = np.cumsum([0, *(len(m) for m in models)])
    qk, lk, sk, stk = (inverse[bounds[i] : bounds[i + 1]] for i in range(len(models)))
    step_part = pd.DataFrame(
        {
            "k": stk,
            STEP_LOW.name: np.asarray([b.low for b in steps.values()], dtype=float),
            STEP_HIGH.name: np.asarray([b.high for b in steps.values()], dtype=float),
        }
    )
    n = len(pair_codes)
    out: dict[str, Any] = {
        MODEL.name: pd.Categorical.from_codes(pair_codes // width, pd.Index(mnames, dtype=object)),
        VERSION.name: pd.Categorical.from_codes(pair_codes % width, pd.Index(vnames, dtype=object)),
    }
    rates = (_rates(qcols, qk, MAX_QPS, MAX_QPS_SEEN), _rates(lcols, lk, LAST_QPS, LAST_QPS_SEEN))
    own = part.per_version(sk)
    missing = [c.name for c in SOURCE_COLUMNS if c.name not in own.columns]
    if missing:
        raise ValueError(f"the evidence source's part lacks the columns {', '.join(missing)}")
    # Each part has one row per key: its values are placed at their keys, the rest filled.
    for frame in (*rates, own, step_part):
        k = frame["k"].to_numpy()
        for name in frame.columns.drop("k"):
            column = BY_NAME[name]  # every column is declared above
            values = np.full(n, column.fill, dtype=column.dtype)
            values[k] = frame[name].to_numpy(dtype=column.dtype)
            out[name] = values
    return pd.DataFrame({c.name: out[c.name] for c in COLUMNS}, copy=False)  # fresh arrays: no copy


def _rates(cols: dict[str, Any], k: Any, rate: Column, seen: Column) -> pd.DataFrame:
    """One rate per version (the largest where two labels read as one version) and that it was seen."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"k": k, rate.name: np.asarray(cols["value"], dtype=float)})
    frame[seen.name] = True
    if frame["k"].duplicated().any():  # a `sum by` answer has none, but "007" and "7" meet here
        frame = frame.groupby("k", as_index=False, sort=False).agg({rate.name: "max", seen.name: "any"})
    return frame

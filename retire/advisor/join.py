"""The join: one row per (model, version) seen on disk or in any query, with all its evidence.

(model, version) pairs are numbered once in one vectorized pass and pandas joins on that integer
key, an order of magnitude faster than joining on two text columns at a million versions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from retire.sources.disk.inventory import Inventory
    from retire.sources.prometheus.evidence import Evidence


def _columns(items: Any, names: tuple[str, ...]) -> dict[str, list[Any]]:
    """Columns from a sequence of records in one pass (a million versions is the design size)."""
    import operator

    rows = list(map(operator.attrgetter(*names), items))
    if not rows:
        return {n: [] for n in names}
    return {n: list(col) for n, col in zip(names, zip(*rows, strict=True), strict=True)}


def join(inventory: Inventory, evidence: Evidence) -> pd.DataFrame:
    """One row per (model, version) seen on disk or in any query, with every piece of evidence.

    (model, version) pairs are first numbered in one vectorized pass (pandas factorizes each
    column, numpy numbers the pairs), then pandas joins and aggregates on that integer key, an
    order of magnitude faster than joining on two text columns at a million versions.
    """
    import numpy as np
    import pandas as pd

    dcols = _columns(
        inventory.versions, ("model", "version", "number", "path", "size_bytes", "mtime", "ctime")
    )
    qcols = _columns(evidence.max_qps, ("model", "version", "value"))
    lcols = _columns(evidence.last_step_qps, ("model", "version", "value"))
    if evidence.recorded is not None:  # with recording rules: per-version facts, not per-series
        scols = _columns(evidence.recorded, ("model", "version", "series", "born_calls", "resets"))
    else:
        names = ("model", "version", "start", "last", "counted", "blind", "resets", "gone")
        scols = _columns(evidence.series, names)
    parts = (dcols, qcols, lcols, scols)
    mcode, mnames = pd.factorize(np.array([m for p in parts for m in p["model"]], dtype=object))
    vcode, vnames = pd.factorize(np.array([v for p in parts for v in p["version"]], dtype=object))
    width = max(len(vnames), 1)
    pair_codes, inverse = np.unique(mcode.astype(np.int64) * width + vcode, return_inverse=True)
    bounds = np.cumsum([0, *(len(p["model"]) for p in parts)])
    dk, qk, lk, sk = (inverse[bounds[i] : bounds[i + 1]] for i in range(len(parts)))

    disk = pd.DataFrame(
        {"k": dk, **{c: dcols[c] for c in ("number", "path", "size_bytes", "mtime", "ctime")}}
    )
    disk["on_disk"] = True

    def values(cols: dict[str, list[Any]], k: Any, name: str) -> pd.DataFrame:
        frame = pd.DataFrame({"k": k, name: np.array(cols["value"], dtype=float)})
        frame[name + "_seen"] = True
        if frame["k"].duplicated().any():  # a `sum by` answer has none, but "007" and "7" meet here
            frame = frame.groupby("k", as_index=False, sort=False).agg({name: "max", name + "_seen": "any"})
        return frame

    qps = values(qcols, qk, "max_qps")
    last = values(lcols, lk, "last_qps")

    per_version = (
        _per_version_series(scols, sk, evidence.coverage.max_gap)
        if evidence.recorded is None
        else _per_version_recorded(scols, sk)
    )

    joined = pd.DataFrame(
        {
            "k": np.arange(len(pair_codes)),
            "model": mnames[pair_codes // width].astype(object) if len(pair_codes) else [],
            "version": vnames[pair_codes % width].astype(object) if len(pair_codes) else [],
        }
    )
    for part in (disk, qps, last, per_version):
        joined = joined.merge(part, on="k", how="left", sort=False)
    joined["on_disk"] = joined["on_disk"].fillna(False).astype(bool)
    for col in ("max_qps_seen", "last_qps_seen"):
        joined[col] = joined[col].fillna(False).astype(bool)
    for col in ("series", "born", "resets", "resets_seen", "nan_series", "gone"):
        joined[col] = joined[col].fillna(0).astype("int64")
    for col in ("blind", "blind_over"):
        joined[col] = joined[col].fillna(0.0).astype(float)
    return joined


def _per_version_series(scols: dict[str, list[Any]], sk: Any, max_gap: float) -> pd.DataFrame:
    """Per version from per-series start and last values: calls, births, resets, NaNs.

    A counter that went down reset (a reload, a restart). Where evidence re-read its samples,
    its calls are counted across the reset, and only the span with no sample before the reset
    stays blind: up to --max-gap it is tolerated like any short hole in the data; longer, or not
    re-read, the reset is a doubt (calls before it may be lost)."""
    import numpy as np
    import pandas as pd

    starts = scols["start"]
    s = pd.DataFrame(
        {
            "k": sk,
            "start": np.array([np.nan if x is None else x for x in starts], dtype=float),
            "has_start": np.array([x is not None for x in starts], dtype=bool),
            "last": np.array(scols["last"], dtype=float),
            "counted": np.array([np.nan if x is None else x for x in scols["counted"]], dtype=float),
            "blind": np.array(scols["blind"], dtype=float),
            "went_down": np.array(scols["resets"], dtype=float),
            "gone": np.array(scols["gone"], dtype=bool),
        }
    )
    born = ~s["has_start"]
    # The counter went down in the window: `resets()` says so (or could not say), or it ended
    # below where it started.
    with np.errstate(invalid="ignore"):
        reset = ~(s["went_down"] <= 0) | (s["has_start"] & (s["last"] < s["start"]))
    recounted = reset & np.isfinite(s["counted"])
    # Calls in the window per series. Born in the window: TF Serving creates the series on the
    # first call, so its whole value is calls in the window. After a reset, at least the new value,
    # or all of them where the samples were re-read.
    s["calls"] = np.where(recounted, s["counted"], np.where(born | reset, s["last"], s["last"] - s["start"]))
    # A counter is a finite, non-negative number; anything else (NaN, +Inf, where Inf - Inf would
    # read as "0 calls") is evidence of a problem, never of no traffic.
    last_ok = np.isfinite(s["last"]) & (s["last"] >= 0)
    start_ok = np.isfinite(s["start"]) & (s["start"] >= 0)
    s["nan"] = ~last_ok | (s["has_start"] & ~start_ok)
    s.loc[s["nan"], "calls"] = np.nan
    s["born"] = born
    s["reset"] = reset & ~(recounted & (s["blind"] <= max_gap))  # a doubt
    s["reset_seen"] = reset
    # Shown in the reasons: the blind span of a reset that is a doubt because of it, else the
    # longest tolerated one.
    s["blind"] = np.where(reset, s["blind"], 0.0)
    s["blind_over"] = np.where(recounted & (s["blind"] > max_gap), s["blind"], 0.0)
    s["one"] = 1
    per = s.groupby("k", as_index=False, sort=False).agg(
        series=("one", "sum"),
        calls=("calls", "sum"),
        born=("born", "sum"),
        resets=("reset", "sum"),
        resets_seen=("reset_seen", "sum"),
        blind=("blind", "max"),
        blind_over=("blind_over", "max"),
        nan_series=("nan", "sum"),
        gone=("gone", "sum"),
    )
    # Calls of the readable series still count (positive evidence); none counted and some series
    # unreadable is "calls unknown", not "0 calls".
    per.loc[(per["nan_series"] > 0) & (per["calls"] == 0), "calls"] = np.nan
    return per


def _per_version_recorded(rcols: dict[str, list[Any]], rk: Any) -> pd.DataFrame:
    """Per version from the recording rules: the calls counted are the first calls of series born
    in the window (the rate covers the rest); the number of born series is not recorded (0)."""
    import numpy as np
    import pandas as pd

    series = np.array(rcols["series"], dtype=float)
    born_calls = np.array(rcols["born_calls"], dtype=float)
    resets = np.array(rcols["resets"], dtype=float)
    nan = ~(np.isfinite(series) & np.isfinite(born_calls) & np.isfinite(resets))
    frame = pd.DataFrame(
        {
            "k": rk,
            "series": np.nan_to_num(series, nan=0.0, posinf=0.0, neginf=0.0).astype("int64"),
            "calls": born_calls,
            "born": np.zeros(len(rk), dtype="int64"),
            "resets": (np.nan_to_num(resets, nan=0.0, posinf=0.0, neginf=0.0) > 0).astype("int64"),
            "nan_series": nan.astype("int64"),
        }
    )
    frame["resets_seen"] = frame["resets"]
    frame["blind"] = 0.0
    frame["blind_over"] = 0.0
    frame["gone"] = 0
    if frame["k"].duplicated().any():  # one fact per version from evidence; be safe if not
        frame = frame.groupby("k", as_index=False, sort=False).agg(
            {
                "series": "max",
                "calls": "max",
                "born": "max",
                "resets": "max",
                "resets_seen": "max",
                "blind": "max",
                "blind_over": "max",
                "nan_series": "sum",
                "gone": "max",
            }
        )
    return frame

"""The join: one row per (model, version) seen on disk or in any query, with all its evidence.

The disk's versions and the evidence's per-version frame arrive as columns; (model, version)
pairs are numbered once in one vectorized pass and pandas joins on that integer key, an order of
magnitude faster than joining on two text columns at a million versions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retire.sources.columns import columns_of, factorize, pairs
from retire.sources.prometheus import table as pv

if TYPE_CHECKING:
    import pandas as pd

    from retire.sources.disk.inventory import Inventory
    from retire.sources.prometheus.evidence import Evidence

DISK_COLUMNS = ("number", "path", "size_bytes", "mtime", "ctime")


def join(inventory: Inventory, evidence: Evidence) -> pd.DataFrame:
    """One row per (model, version) seen on disk or in any query, with every piece of evidence:
    `on_disk`, the disk's columns (NaN where not on disk) and the evidence's per-version columns
    (`Evidence.per_version`, declared in `table.py`, with their no-evidence defaults)."""
    import numpy as np
    import pandas as pd

    dcols = columns_of(inventory.versions, ("model", "version", *DISK_COLUMNS))
    e = evidence.per_version()
    nd = len(dcols["model"])
    # Numbered in the order first seen: on disk, then in the evidence (its categories' order).
    mcode, mnames = factorize(dcols["model"], e["model"].array)
    vcode, vnames = factorize(dcols["version"], e["version"].array)
    pair_codes, inverse = pairs(mcode, vcode, len(mnames), len(vnames))
    width = max(len(vnames), 1)
    n = len(pair_codes)
    dk, ek = inverse[:nd], inverse[nd:]

    out: dict[str, Any] = {
        "model": pd.Series(mnames[pair_codes // width], dtype=object),
        "version": pd.Series(vnames[pair_codes % width], dtype=object),
    }
    seen = np.bincount(dk, minlength=n)
    if seen.max(initial=0) > 1:  # one version listed twice: joined as pandas would, one row each
        return _merged(out, dk, dcols, e, ek)
    out["on_disk"] = seen == 1
    everywhere = bool(out["on_disk"].all())
    for c in DISK_COLUMNS:
        values = np.asarray(dcols[c], dtype=object if c == "path" else None)
        if values.dtype == object:
            column = np.full(n, None, dtype=object)
        elif everywhere:  # as a join would: whole numbers stay whole unless a row has none
            column = np.zeros(n, dtype=values.dtype)
        else:
            column = np.full(n, np.nan)
        column[dk] = values
        out[c] = column
    for col in pv.VALUES:  # every pair the evidence named is in `e` once
        column = np.full(n, col.fill, dtype=col.dtype)
        column[ek] = e[col.name].to_numpy(dtype=col.dtype)
        out[col.name] = column
    return pd.DataFrame(out, copy=False)  # fresh arrays: no copy into blocks


def _merged(out: dict[str, Any], dk: Any, dcols: dict[str, Any], e: pd.DataFrame, ek: Any) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    joined = pd.DataFrame({"k": np.arange(len(out["model"])), **out})
    disk = pd.DataFrame({"k": dk, **{c: dcols[c] for c in DISK_COLUMNS}})
    disk["on_disk"] = True
    found = e.drop(columns=["model", "version"])
    found.insert(0, "k", ek)
    for part in (disk, found):
        joined = joined.merge(part, on="k", how="left", sort=False)
    joined["on_disk"] = joined["on_disk"].fillna(False).astype(bool)
    for col in pv.VALUES:  # no evidence for a version: its defaults
        dtype: Any = col.dtype
        joined[col.name] = joined[col.name].fillna(col.fill).astype(dtype)
    return joined.drop(columns="k")

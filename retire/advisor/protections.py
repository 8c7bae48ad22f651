"""Protections: why a version on disk is kept whatever its traffic. One table, one entry each.

An entry says which rows it keeps (`mask`, on disk only) and what their reason says (`row`), so a
new protection is one entry here plus its test. Rows' reasons list them in table order. Also here:
what is loaded (from the server or a server config's version policy) and the latest-N advice,
which read the same ranks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from retire.advisor.report import Status, human_bytes
from retire.durations import format_duration

if TYPE_CHECKING:
    from retire.advisor.facts import Facts


class Ranks:
    """Each row's rank among its model's versions on disk (1: newest), the N kept per model and
    the pins by (model, version), shared by the protections, `loaded` and the latest-N advice."""

    def __init__(self, x: Facts) -> None:
        import numpy as np
        import pandas as pd

        self.x = x
        self.rank: Any = (
            pd.Series(x.number).groupby(x.model_code).rank(ascending=False, method="first")
        ).to_numpy(dtype=float, na_value=np.nan)
        # The server config's latest N and --keep-latest: the larger wins (a config never lowers
        # what the user asked to keep).
        keep_latest = x.policy.keep_latest
        server_keep = x.f["model"].map(x.inventory.keep_latest).fillna(keep_latest).to_numpy(dtype=float)
        self.keep: Any = np.maximum(server_keep, keep_latest)
        self.pin_reasons: dict[tuple[str, str], str] = {
            **x.inventory.pins,
            **{p: f"pinned (--pin {p[0]}:{p[1]})" for p in x.policy.pins},
        }

    @cached_property
    def age(self) -> Any:
        x = self.x
        column = "ctime" if x.policy.age_source == "ctime" else "mtime"
        return x.evidence.evaluated_at - x.f[column].to_numpy(dtype=float, na_value=float("nan"))

    @cached_property
    def pinned(self) -> Any:
        import numpy as np

        if not self.pin_reasons:
            return np.zeros(self.x.n, dtype=bool)
        keys = zip(self.x.models, self.x.versions, strict=True)
        return self.x.on_disk & np.array([self.pin_reason(*k) is not None for k in keys], dtype=bool)

    def pin_reason(self, model: str, version: str) -> str | None:
        """Why (model, version) is pinned, or None. Pins are read by TF Serving's number rule
        whatever the preset (config: `m:01` pins m/1), so a version is looked up as written and by
        that rule: a pin matches more than the server loads, never less (TorchServe's `01`)."""
        from retire.servers import canonical_version  # the pins' rule, as config reads them

        found = self.pin_reasons.get((model, version))
        return found if found is not None else self.pin_reasons.get((model, canonical_version(version)))


@dataclass(frozen=True)
class Protection:
    name: str
    mask: Callable[[Ranks], Any]  # rows (a bool array, on disk only) this protection keeps
    row: Callable[[Ranks, int], str]  # its words in row i's reason


def _newest_row(r: Ranks, i: int) -> str:
    return _newest_words(r.x.inventory.keep_latest.get(r.x.models[i], 0), r.x.policy.keep_latest)


@functools.cache
def _newest_words(from_config: int, keep_latest: int) -> str:
    keep_n = max(from_config, keep_latest)
    rule = f"the server config keeps {keep_n}" if from_config == keep_n else f"--keep-latest {keep_n}"
    newest = "newest version on disk" if keep_n == 1 else f"among the newest {keep_n} on disk"
    return f"{newest} ({rule})"


def _young_row(r: Ranks, i: int) -> str:
    policy = r.x.policy
    return (
        f"directory {policy.age_source} {format_duration(round(max(r.age[i], 0)))} ago, younger than "
        f"--min-age {format_duration(policy.min_age)}"
    )


PROTECTIONS: tuple[Protection, ...] = (
    Protection("pinned", lambda r: r.pinned, lambda r, i: r.pin_reason(r.x.models[i], r.x.versions[i]) or ""),
    Protection("newest", lambda r: r.x.on_disk & (r.rank <= r.keep), _newest_row),
    Protection("young", lambda r: r.x.on_disk & (r.age < r.x.policy.min_age), _young_row),
)


def protections(r: Ranks) -> dict[str, Any]:
    """Each protection's rows, by name."""
    return {p.name: p.mask(r) for p in PROTECTIONS}


def row_words(r: Ranks, masks: dict[str, Any], i: int) -> list[str]:
    """Row i's protections, in table order."""
    return [p.row(r, i) for p in PROTECTIONS if masks[p.name][i]]


def loaded(
    r: Ranks, served: Mapping[tuple[str, str], bool] | None
) -> tuple[list[bool | None], list[str | None]]:
    """Per row: is it loaded, and who says so. The server, where asked and it answered for the
    model; else the model's version policy from a server config (latest N: the newest N on
    disk; all; specific: those listed); else nobody (None)."""
    x = r.x
    if served is None and not x.inventory.policies:
        return [None] * x.n, [None] * x.n
    answered = {m for m, _ in served} if served else set()
    out: list[bool | None] = []
    source: list[str | None] = []
    for model, version, disk, rank in zip(
        x.models, x.versions, x.on_disk.tolist(), r.rank.tolist(), strict=True
    ):
        if served is not None and model in answered:
            out.append(bool(served.get((model, version), False)))
            source.append("server")
            continue
        known = x.inventory.policies.get(model)
        if known is None or not disk:
            out.append(None)
            source.append(None)
            continue
        rule = known[0]
        if rule.kind == "all":
            out.append(True)
        elif rule.kind == "specific":
            out.append(version in {str(v) for v in rule.versions})
        else:
            out.append(bool(rank <= rule.num_versions))
        source.append("policy")
    return out, source


def latest_advice(r: Ranks, status: Any, kept: Any) -> tuple[dict[int, str], list[str]]:
    """Under a server's `latest N` policy the newest N versions are loaded, so they are protected;
    moving an idle one only makes the server load the next older one. What frees its memory is
    lowering N to K, the fewest newest versions that still keep every version that must stay.
    Returns the words for each such row and the advice per model."""
    import numpy as np

    x, rank = r.x, r.rank
    advice: dict[int, str] = {}
    per_model: list[str] = []
    models = x.f["model"].to_numpy()
    sizes = x.f["size_bytes"].to_numpy(dtype=float, na_value=0.0)
    for model, (rule, where) in x.inventory.policies.items():
        if rule.kind != "latest" or rule.num_versions <= 1:
            continue
        mine = np.flatnonzero((models == model) & x.on_disk & (rank <= rule.num_versions))
        must_stay = [int(rank[i]) for i in mine if kept[i]]
        k = max([*must_stay, 1])
        if k >= rule.num_versions:
            continue
        freed = [int(i) for i in mine if rank[i] > k and status[i] == Status.PROTECTED.value and not kept[i]]
        for i in freed:
            advice[i] = (
                f"idle and loaded: to free its memory lower num_versions to {k} in {where} (moving it "
                "alone makes the server load the next older version)"
            )
        if freed:
            versions = ", ".join(x.versions[i] for i in sorted(freed, key=lambda i: rank[i]))
            per_model.append(
                f"{model}: lower num_versions from {rule.num_versions} to {k} in {where} to unload its idle "
                f"version(s) {versions} (about {human_bytes(sum(sizes[i] for i in freed))} of memory)"
            )
    return advice, per_model

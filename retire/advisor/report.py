"""The report model: what the advisor hands to every format, mail, history and offload.

Plain frozen data plus the number formatting every renderer shares, so a renderer never needs
the advisor's internals (and a test can build a Report by hand).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from retire.durations import iso as iso  # re-exported: the advisor and formats import it from here

if TYPE_CHECKING:
    import pandas as pd


class Status(StrEnum):
    SAFE = "safe"
    IN_USE = "in-use"
    PROTECTED = "protected"
    UNKNOWN = "unknown"
    NOT_ON_DISK = "not-on-disk"
    # `retire unload` took it out of the server's memory and has not loaded it back: its counter
    # vanished or froze, so the calls since (they fail) are not evidence either way.
    UNLOADED = "unloaded"


@dataclass(frozen=True)
class Unloaded:
    """A version `retire unload` unloaded and has not loaded back (its journal says so)."""

    when: float  # Unix seconds the unload was confirmed (or begun, for one never finished)
    server: str  # the server's URL without credentials (or the TF Serving config file rewritten)
    undo: str  # the command that loads it back
    # The report's --server is the one server it was unloaded from: only then does that server
    # listing it loaded again clear it (another replica's word says nothing of this one).
    here: bool = False


@dataclass(frozen=True)
class Policy:
    threshold: float = 0.0
    keep_latest: int = 1
    min_age: float = 86400.0
    age_source: str = "mtime"
    pins: tuple[tuple[str, str], ...] = ()
    # Version labels that name no version (TorchServe's "default"): calls under them may have
    # reached any version of the model.
    unattributed: tuple[str, ...] = ()
    # Whether a version label could name a version directory (the server's rule); None: any could.
    label_is_version: Callable[[str], bool] | None = None
    # The counter has no version label (stock TF Serving): each model's evidence stands for all
    # its versions (advisor/per_model.py).
    per_model: bool = False

    def __post_init__(self) -> None:
        """The advisor decides "safe" by comparing with these: a NaN threshold compares false
        with every rate, which made every version idle. Refused for callers that skip config."""
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise ValueError(f"Policy.threshold must be a finite number >= 0, not {self.threshold!r}")
        if self.keep_latest < 0:
            raise ValueError(f"Policy.keep_latest must be >= 0, not {self.keep_latest!r}")
        if not self.min_age >= 0:  # NaN too
            raise ValueError(f"Policy.min_age must be >= 0 seconds, not {self.min_age!r}")


@dataclass(frozen=True)
class Row:
    model: str
    version: str
    path: str | None
    on_disk: bool
    size_bytes: int | None
    max_hourly_qps: float | None
    calls: float | None
    series: int
    status: Status
    reason: str
    hourly: tuple[float | None, ...] | None = None  # rate per step, when sparklines were asked for
    # Whether the server has it loaded (in memory): True/False, None when nobody says; and who
    # says: "server" (asked with --server) or "policy" (inferred from its version policy).
    loaded: bool | None = None
    loaded_from: str | None = None
    # With several --server replicas: each one's word ((server URL without credentials, loaded
    # or None), ...); `loaded` is True if any has it loaded. None with one server or none.
    loaded_on: tuple[tuple[str, bool | None], ...] | None = None


_ROW_FIELDS = tuple(Row.__dataclass_fields__)


@dataclass(frozen=True)
class Summary:
    counts: dict[str, int]
    safe_bytes: int
    safe_bytes_by_model: dict[str, int]
    unknown_causes: tuple[str, ...]  # the report-wide reasons would-be-safe rows became unknown
    # What retiring the safe versions frees, split: loaded versions free memory (their size on
    # disk is the estimate), the others only disk; unknown where nobody said what is loaded.
    safe_bytes_loaded: int = 0
    safe_bytes_disk_only: int = 0
    safe_bytes_loaded_unknown: int = 0
    # Per model under a server's latest N: what frees its idle loaded versions' memory.
    advice: tuple[str, ...] = ()
    # Protected rows per protection (pinned, newest, young; a row may have several): why nothing
    # is safe, when a plan has nothing to move. Wording only, so not compared: a report built by
    # hand from rows (tests/builders.py) cannot know it and is still the same report.
    protected_by: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def unknown(self) -> int:
        return self.counts.get(Status.UNKNOWN.value, 0)

    @property
    def safe(self) -> int:
        return self.counts.get(Status.SAFE.value, 0)


@dataclass(frozen=True)
class Header:
    generated_at: float
    evaluated_at: float
    window_start: float
    source: str
    queries: dict[str, str]
    window: float
    step: float
    threshold: float
    warnings: tuple[str, ...]
    infos: tuple[str, ...]
    coverage: str  # one sentence on what coverage was checked and found
    notes: tuple[str, ...]  # how the evidence was gathered, when it matters (e.g. split by model)
    policy: Policy
    model_roots: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    header: Header
    table: pd.DataFrame  # one row per (model, version), columns as Row's fields
    summary: Summary
    ignored: tuple[tuple[str, str], ...] = field(default=())

    def rows(self) -> Iterator[Row]:
        """The table as Row records, by column name (the table's columns are Row's fields)."""
        t = self.table
        columns = {c: t[c].tolist() for c in _ROW_FIELDS}
        for values in zip(*columns.values(), strict=True):
            cell = dict(zip(_ROW_FIELDS, values, strict=True))
            size, loaded = cell["size_bytes"], cell["loaded"]
            yield Row(
                model=cell["model"],
                version=cell["version"],
                path=cell["path"],
                on_disk=bool(cell["on_disk"]),
                size_bytes=None if size is None else int(size),
                max_hourly_qps=cell["max_hourly_qps"],
                calls=cell["calls"],
                series=int(cell["series"]),
                status=Status(cell["status"]),
                reason=cell["reason"],
                hourly=cell["hourly"],
                loaded=None if loaded is None else bool(loaded),
                loaded_from=cell["loaded_from"],
                loaded_on=cell["loaded_on"],
            )

    def safe_rows(self) -> list[Row]:
        return [r for r in self.rows() if r.status is Status.SAFE]


def fmt_qps(qps: float) -> str:
    if math.isnan(qps):
        return "NaN"
    if math.isinf(qps):
        return "+Inf" if qps > 0 else "-Inf"
    return "0" if qps == 0 else f"{qps:.3g}"


def human_bytes(n: float | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def fmt_calls(calls: float) -> str:
    if not math.isfinite(calls):  # evidence of a problem, shown as it came (never int(inf))
        return fmt_qps(calls)
    return f"{calls:,.0f}" if calls == int(calls) else f"{calls:,.1f}"

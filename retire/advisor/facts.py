"""What the evidence says of each joined row, computed once for the masks and the wording.

The joined frame has one row per (model, version); `Facts` holds its columns as arrays (the
evidence's read through their declarations in `sources/prometheus/table.py`) and the evidence
masks every rule reads (positive evidence of calls, bad values, resets), so that doubts,
protections and wording read names, not positions. What only some rules need is computed on
first use.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from retire.advisor.report import Policy
from retire.sources.prometheus import table as pv

if TYPE_CHECKING:
    import pandas as pd

    from retire.sources.disk.inventory import Inventory
    from retire.sources.prometheus.evidence import Evidence


class Facts:
    """The joined rows' columns (numpy arrays) and the evidence masks derived from them."""

    def __init__(self, f: pd.DataFrame, inventory: Inventory, evidence: Evidence, policy: Policy) -> None:
        import numpy as np

        self.f: pd.DataFrame = f
        self.inventory: Inventory = inventory
        self.evidence: Evidence = evidence
        self.policy: Policy = policy
        self.n = len(f)
        thr = policy.threshold
        self.on_disk: Any = f["on_disk"].to_numpy(dtype=bool)
        self.max_qps: Any = pv.MAX_QPS.of(f)
        self.last_qps: Any = pv.LAST_QPS.of(f)
        self.calls: Any = pv.CALLS.of(f)
        self.series: Any = pv.SERIES.of(f)
        max_seen = pv.MAX_QPS_SEEN.of(f)
        last_seen = pv.LAST_QPS_SEEN.of(f)
        # The busiest step counted from counter differences (with a threshold above 0): at least
        # `step_low`, at most `step_high` (NaN: not counted).
        self.step_low: Any = pv.STEP_LOW.of(f)
        self.step_high: Any = pv.STEP_HIGH.of(f)
        with np.errstate(invalid="ignore"):
            busy = (self.max_qps > thr) | (self.last_qps > thr) | ((thr > 0) & (self.step_low > thr))
            called = (thr == 0) & (self.calls > 0)
        # A "born" series may be one back after a longer gap (evidence says when): calls counted
        # only from born series are then not evidence of calls, just a doubt, at any threshold
        # (the rules' bound on the busiest step leaves them out then).
        self.reappeared: Any = np.zeros(self.n, dtype=bool)
        if evidence.births_may_be_returns:
            with np.errstate(invalid="ignore"):
                self.reappeared = (self.calls > 0) & ~busy
            called = called & ~self.reappeared
        self.positive: Any = busy | called
        self.qps_seen: Any = max_seen | last_seen
        with np.errstate(invalid="ignore"):  # a rate is finite and never negative
            max_bad = ~(np.isfinite(self.max_qps) & (self.max_qps >= 0)) & max_seen
            last_bad = ~(np.isfinite(self.last_qps) & (self.last_qps >= 0)) & last_seen
        # The busiest step including the last partial one, which the seed's aligned steps miss;
        # a NaN/Inf answer is shown as it came, rather than the other query's finite value.
        peak = np.fmax(np.fmax(self.max_qps, self.last_qps), self.step_low)
        self.shown_peak: Any = np.where(max_bad, self.max_qps, np.where(last_bad, self.last_qps, peak))
        self.hourly = _hourly_column(evidence, f)
        hourly_bad = np.zeros(self.n, dtype=bool)
        if evidence.hourly is not None:
            hourly_bad = np.array([_non_finite(h) for h in self.hourly], dtype=bool)
        self.bad_value: Any = max_bad | last_bad | (pv.NAN_SERIES.of(f) > 0) | hourly_bad
        self.reset_doubt: Any = pv.RESETS.of(f) > 0  # resets that may hide calls
        self.reset_seen: Any = pv.RESETS_SEEN.of(f) > 0
        self.unsampled: Any = pv.UNSAMPLED.of(f)
        self.blind: Any = pv.BLIND.of(f)
        self.blind_over: Any = pv.BLIND_OVER.of(f)
        self.reached: Any = self.qps_seen | (self.series > 0)  # the queries saw this version
        self.number: Any = f["number"].to_numpy(dtype=float, na_value=np.nan)

    @cached_property
    def step_doubt(self) -> Any:
        """With a threshold above 0, versions whose busiest step cannot be shown at or below it:
        an increase around a boundary whose scrape was missed may belong to either step, or a
        version with series has no per-step values at all."""
        import numpy as np

        if self.evidence.steps is None or self.policy.threshold <= 0:
            return np.zeros(self.n, dtype=bool)
        with np.errstate(invalid="ignore"):
            high = self.step_high > self.policy.threshold
        missing = np.isnan(self.step_high) & (self.series > 0)
        return self.on_disk & (high | missing)

    @cached_property
    def models(self) -> list[str]:
        return list(self.f["model"].tolist())

    @cached_property
    def versions(self) -> list[str]:
        return list(self.f["version"].tolist())

    @cached_property
    def _model_codes(self) -> tuple[Any, Any]:
        import pandas as pd

        codes, names = pd.factorize(self.f["model"], sort=True)
        return codes, names

    @property
    def model_codes_and_names(self) -> tuple[Any, Any]:
        return self._model_codes

    @property
    def model_code(self) -> Any:
        """Models as integer codes in name order (for ranks, grouping and the row order)."""
        return self._model_codes[0]

    def models_where(self, mask: Any) -> set[str]:
        """The models of the rows in `mask`, from the codes (no pass over a million strings)."""
        import numpy as np

        codes, names = self._model_codes
        present = np.bincount(codes[mask], minlength=len(names)) > 0
        return set(np.asarray(names, dtype=object)[present].tolist())

    @cached_property
    def model_reached(self) -> Any:
        """Whether any version of the row's model was seen by the queries."""
        import numpy as np

        codes = self.model_code
        return np.bincount(codes, weights=self.reached, minlength=self.n)[codes] > 0

    @cached_property
    def reached_models(self) -> set[str]:
        """Models the queries saw (a version with a rate or a series)."""
        return self.models_where(self.reached)

    @cached_property
    def disk_models(self) -> set[str]:
        return self.models_where(self.on_disk)

    @cached_property
    def hidden_models(self) -> set[str]:
        """Models of series that only --selector's model or version matchers leave out."""
        return {m for m, _ in self.evidence.scope.hidden}

    @cached_property
    def orphans(self) -> tuple[str, ...]:
        """Models with series and no directory, those the selector's model matchers hide included."""
        return tuple(sorted((self.reached_models | self.hidden_models) - self.disk_models))

    @cached_property
    def lookalikes(self) -> dict[str, str]:
        """A silent model on disk (no series) -> the names with series (in or out of the
        selector's reach) that differ from it only in case, spaces or punctuation, or that have
        no directory and whose words contain its words or are most of them (`alpha` served as
        `alpha-prod`, `prod/alpha`, `alphaCanary` on a server the selector leaves out, or
        `omega_v2` served as `omega`; not `cfg_b` as `b`), as shown (three at most)."""
        served = self.reached_models | set(self.evidence.scope.unscoped_models)
        silent = self.disk_models - self.reached_models
        if not silent:
            return {}
        folded = {name: _fold(name) for name in served | silent}  # once per name
        seen: dict[str, set[str]] = {}
        for name in served:
            seen.setdefault(folded[name], set()).add(name)
        unnamed = served - self.disk_models
        for name in unnamed:  # each run of its words, once per name
            for run in _runs(_words(name)):
                seen.setdefault(run, set()).add(name)
        # The other way round: a served name with no directory whose words are a run of the
        # silent model's words.
        inside: dict[str, set[str]] = {}
        for m in silent:
            for run in _runs(_words(m)):
                inside.setdefault(run, set()).add(m)
        shorter: dict[str, set[str]] = {}
        for name in unnamed:
            for m in inside.get(" ".join(_words(name)), set()):
                # Most of the name, not one short word of it (`b` is no rename of `cfg_b`).
                if 2 * len(folded[name]) >= len(folded[m]) >= 1 and len(folded[name]) >= 3:
                    shorter.setdefault(m, set()).add(name)
        out = {}
        for m in silent:
            others = seen.get(folded[m], set()) | seen.get(" ".join(_words(m)), set())
            others = (others | shorter.get(m, set())) - {m}
            if others:
                shown = sorted(repr(o) for o in others)
                out[m] = ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")
        return out

    @cached_property
    def odd_labels(self) -> dict[str, list[str]]:
        """A model on disk -> its version labels with series that no version directory can have."""
        import numpy as np

        odd: dict[str, list[str]] = {}
        is_version = self.policy.label_is_version
        if is_version is None:
            return odd
        seen = [(self.models[i], self.versions[i]) for i in np.flatnonzero(~self.on_disk & self.reached)]
        # Labels the selector's version matchers hide count too (`model_version=~"[0-9]+"`).
        hidden = sorted(p for p in self.evidence.scope.hidden if p not in set(seen))
        for model, version in (*seen, *hidden):
            if model in self.disk_models and version not in self.no_version and not is_version(version):
                odd.setdefault(model, []).append(version)
        return odd

    @cached_property
    def failed(self) -> Any:
        """Failed calls counted per row by the server's failure counter (0: none seen)."""
        import numpy as np

        out = np.zeros(self.n)
        if not self.evidence.failed:
            return out
        row = {k: i for i, k in enumerate(zip(self.models, self.versions, strict=True))}
        for v in self.evidence.failed:
            i = row.get((v.model, v.version))
            if i is not None:  # a NaN or infinite count is still a failure seen
                out[i] += v.value if math.isfinite(v.value) and v.value > 0 else 1.0
        return out

    @property
    def no_version(self) -> tuple[str, ...]:
        """Version labels that name no version: the server's (TorchServe's "default") and the
        empty one, which Prometheus stores as no label at all (whatever the server)."""
        return (*self.policy.unattributed, "")

    @cached_property
    def unattributed(self) -> Any:
        """Calls under a label that names no version."""
        return ~self.on_disk & self.positive & self.f["version"].isin(self.no_version).to_numpy()

    @cached_property
    def vague_labels(self) -> dict[str, str]:
        """A model with unattributed calls -> those labels, as shown in reasons."""
        mask = self.unattributed
        labels: dict[str, set[str]] = {
            m: set(self.f["version"][mask & (self.f["model"] == m).to_numpy()])
            for m in self.models_where(mask)
        }
        # Series under such a label that the selector's matchers hide: their calls are not read,
        # but they exist in the window, which is doubt enough.
        for model, version in self.evidence.scope.hidden:
            if version in self.no_version and model in self.disk_models:
                labels.setdefault(model, set()).add(version)
        return {m: ", ".join(sorted(v)) for m, v in labels.items()}

    def in_models(self, models: Any) -> Any:
        """Rows whose model is one of `models`."""
        import numpy as np

        codes, names = self._model_codes
        wanted = set(models)
        if not wanted:
            return np.zeros(self.n, dtype=bool)
        return np.array([n in wanted for n in names], dtype=bool)[codes] if len(names) else np.zeros(0, bool)


def _hourly_column(evidence: Evidence, f: pd.DataFrame) -> list[tuple[float | None, ...] | None]:
    """Each row's rate per step; all-None for versions without traffic data; None if not fetched."""
    if evidence.hourly is None:
        return [None] * len(f)
    n = round(evidence.window / evidence.step)
    by_key = {(h.model, h.version): h.points for h in evidence.hourly}
    empty: tuple[float | None, ...] = (None,) * n
    return [by_key.get(k, empty) for k in zip(f["model"], f["version"], strict=True)]


def _non_finite(points: tuple[float | None, ...] | None) -> bool:
    return points is not None and any(p is not None and not (math.isfinite(p) and p >= 0) for p in points)


_PUNCTUATION = re.compile(r"[\s_.\-]")


def _fold(name: str) -> str:
    return _PUNCTUATION.sub("", name.casefold())


_MAX_WORDS = 32  # runs of words are indexed up to this length (a name is rarely a sentence)
_WORD_BREAK = re.compile(r"[\W_]+|(?<=[a-z0-9])(?=[A-Z])")


def _words(name: str) -> list[str]:
    """A name's words, case folded: split at anything not a letter or digit, and where camelCase
    starts a word (`rankerCanary`)."""
    return [w.casefold() for w in _WORD_BREAK.split(name) if w]


def _runs(words: list[str]) -> Iterator[str]:
    """Every contiguous run of the words, joined by spaces."""
    for a in range(len(words)):
        for b in range(a + 1, min(len(words), a + _MAX_WORDS) + 1):
            yield " ".join(words[a:b])

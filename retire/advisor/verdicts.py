"""The verdicts: a pure function of (inventory, evidence, policy, clock reading) -> Report.

No I/O, no clock, no environment: everything arrives as arguments, so every rule is testable on
hand-built inputs. The order of the rules is the safety argument (README "How verdicts are made"):

1. `not-on-disk`: Prometheus knows the version, the model directory does not. Never safe.
2. `in-use`: any positive evidence of calls: a busiest-step or last-step rate above the threshold,
   or (at threshold 0) any call counted from the series' values, including a series born in the
   window. Positive evidence wins over everything: partial data cannot un-call a version.
3. `protected`: a policy keeps it (newest N, younger than --min-age, pinned).
4. `unknown`: it would be safe, but some evidence is missing or doubtful: warnings or a partial
   answer from the server, a hole in the data or a coverage gap, a NaN value, a counter reset
   that could hide calls.
5. `safe`: on disk, and every piece of evidence agrees it had no traffic above the threshold.

A row is `safe` only by reaching rule 5; every other outcome is the default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retire.advisor.report import (
    Header,
    Policy,
    Report,
    Status,
    Summary,
    fmt_calls,
    fmt_qps,
    human_bytes,
    iso,
)
from retire.durations import format_duration

if TYPE_CHECKING:
    import pandas as pd

    from retire.sources.disk.inventory import Inventory
    from retire.sources.prometheus.evidence import Evidence


# --------------------------------------------------------------------------------------------
# Building the joined frame


def _columns(items: Any, names: tuple[str, ...]) -> dict[str, list[Any]]:
    """Columns from a sequence of records in one pass (a million versions is the design size)."""
    import operator

    rows = list(map(operator.attrgetter(*names), items))
    if not rows:
        return {n: [] for n in names}
    return {n: list(col) for n, col in zip(names, zip(*rows, strict=True), strict=True)}


def _frames(inventory: Inventory, evidence: Evidence) -> pd.DataFrame:
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


# --------------------------------------------------------------------------------------------
# The rules


def _global_causes(evidence: Evidence) -> list[str]:
    """Reasons that make every would-be-safe row unknown."""
    causes: list[str] = []
    if evidence.partial:
        causes.append("the server answered with partial data (isPartial)")
    if evidence.warnings:
        causes.append(f"Prometheus returned warnings: {'; '.join(evidence.warnings)}")
    for cov in (evidence.coverage, *evidence.checks):
        if cov.problem:
            causes.append(cov.problem)
        if cov.gaps:
            first = cov.gaps[0]
            who = (
                f"target {{{first.target}}} {first.kind}" if first.target else f"no samples of {cov.selector}"
            )
            more = f" (and {len(cov.gaps) - 1} more)" if len(cov.gaps) > 1 else ""
            user_set = cov.max_gap == evidence.coverage.max_gap  # else a rollup: no gap is tolerated
            limit = f"--max-gap {format_duration(cov.max_gap)}" if user_set else "one rollup interval"
            causes.append(
                f"data gap: {who} from {iso(first.start)} to {iso(first.end)} "
                f"({format_duration(first.seconds)} > {limit}){more}"
            )
    return causes


def _gap_longer_than(evidence: Evidence, seconds: float) -> bool:
    return any(g.seconds > seconds for c in (evidence.coverage, *evidence.checks) for g in c.gaps)


def _hourly_column(evidence: Evidence, f: pd.DataFrame) -> list[tuple[float | None, ...] | None]:
    """Each row's rate per step; all-None for versions without traffic data; None if not fetched."""
    if evidence.hourly is None:
        return [None] * len(f)
    n = round(evidence.window / evidence.step)
    by_key = {(h.model, h.version): h.points for h in evidence.hourly}
    empty: tuple[float | None, ...] = (None,) * n
    return [by_key.get(k, empty) for k in zip(f["model"], f["version"], strict=True)]


def _row_causes(
    status: Any, bad: Any, resets: Any, vague: Any, models: pd.Series, reappeared: Any
) -> list[str]:
    """Row-level reasons for unknown rows, counted, for the one-line summary."""
    unknown = status == Status.UNKNOWN.value
    out = []
    if (n := int((unknown & bad).sum())) > 0:
        out.append(f"{n} with NaN/Inf values")
    if (n := int((unknown & resets).sum())) > 0:
        out.append(f"{n} with a counter reset that may hide calls")
    if (n := int((unknown & reappeared).sum())) > 0:
        out.append(f"{n} whose only sign of calls may be a series back after a gap")
    if (n := int((unknown & vague).sum())) > 0:
        names = ", ".join(sorted(set(models[unknown & vague])))
        out.append(f"{n} of {names} may have had calls labelled with no version")
    return out


def _non_finite(points: tuple[float | None, ...] | None) -> bool:
    return points is not None and any(p is not None and not (math.isfinite(p) and p >= 0) for p in points)


@dataclass
class _ScopeDoubts:
    """Where "no series" cannot be read as "no calls", because the query could not have seen
    them (README "How verdicts are made", the first rule). Row masks plus their wording."""

    excluded: Any  # the --selector's own model/version matchers reject this version
    outside: Any  # some series of it (or of its silent model) exist only without the --selector
    unnamed: Any  # a model with no series while series name models without a directory
    mislabeled: Any  # its model's series carry version labels no directory name can give
    disagree: Any  # a rate came back for it, but no per-series values: the answers disagree
    lookalike: Any  # a silent model whose name differs only in case or punctuation from one with series
    causes: list[str]  # report-wide: nothing matched at all; a window too short to show a hole
    selector: str
    orphans: tuple[str, ...]
    odd_labels: dict[str, list[str]]  # model -> version labels that cannot be directory names
    lookalikes: dict[str, str]  # silent model -> the names with series it resembles (shown)

    @property
    def any(self) -> Any:
        return self.excluded | self.outside | self.unnamed | self.mislabeled | self.disagree | self.lookalike

    def reasons(self, i: int, model: str, version: str) -> list[str]:
        out: list[str] = []
        if self.excluded[i]:
            out.append(f"--selector {self.selector} leaves out this version, so its calls cannot be seen")
        if self.outside[i]:
            out.append(
                f"it has series outside --selector {self.selector}, whose calls the queries cannot see "
                "(narrow the selector to the servers that load it, or check it)"
            )
        if self.unnamed[i]:
            shown = ", ".join(repr(o) for o in self.orphans[:3]) + (" ..." if len(self.orphans) > 3 else "")
            case = [o for o in self.orphans if o.lower() == model.lower()]
            hint = f" ({case[0]!r} differs only in case)" if case else ""
            out.append(
                f"model {model!r} has no series at all while Prometheus has series for models with no "
                f"directory ({shown}){hint}: names on disk may differ from names served; use "
                "--model-config (it maps served names to paths) or narrow --selector to this server"
            )
        if self.mislabeled[i]:
            labels = ", ".join(repr(v) for v in self.odd_labels.get(model, [])[:3])
            out.append(
                f"its model's series carry version labels no version directory can have ({labels}): "
                "--version-label may name the wrong label, or versions are served under other names"
            )
        if self.disagree[i]:
            out.append("a rate came back for it but no per-series values: the answers disagree")
        if self.lookalike[i]:
            out.append(
                f"Prometheus has series for {self.lookalikes[model]}, a name that differs from {model!r} "
                "only in case, spaces or punctuation: it may be this model served under that name"
            )
        return out

    def summary(self, unknown: Any) -> list[str]:
        out = []
        for mask, words in (
            (self.excluded, "left out by --selector"),
            (self.outside, "with series outside --selector"),
            (self.unnamed, "whose model may be served under another name"),
            (self.mislabeled, "whose model's version labels name no directory"),
            (self.disagree, "with a rate but no series values"),
            (self.lookalike, "whose model's name resembles a served one"),
        ):
            if (n := int((unknown & mask).sum())) > 0:
                out.append(f"{n} {words}")
        return out


def _scope_doubts(
    f: pd.DataFrame, on_disk: Any, reached: Any, evidence: Evidence, policy: Policy
) -> _ScopeDoubts:
    """No series is evidence of no calls only where the query is shown to reach that version."""
    import numpy as np
    import pandas as pd

    scope = evidence.scope
    models = f["model"].tolist()
    versions = f["version"].tolist()
    excluded = np.zeros(len(f), dtype=bool)
    if scope.model_matchers or scope.version_matchers:
        excluded = on_disk & np.array(
            [
                not (
                    all(m.matches(mo) for m in scope.model_matchers)
                    and all(m.matches(v) for m in scope.version_matchers)
                )
                for mo, v in zip(models, versions, strict=True)
            ],
            dtype=bool,
        )
    codes = pd.factorize(f["model"])[0]
    model_reached = np.bincount(codes, weights=reached, minlength=len(f))[codes] > 0
    outside = np.zeros(len(f), dtype=bool)
    if scope.outside or scope.unscoped_models:
        pair = np.array([(m, v) in scope.outside for m, v in zip(models, versions, strict=True)], dtype=bool)
        silent = ~model_reached & f["model"].isin(scope.unscoped_models).to_numpy()
        outside = on_disk & (pair | silent)
    disk_models = set(f["model"][on_disk])
    orphans = tuple(sorted(set(f["model"][reached]) - disk_models))
    unnamed = on_disk & ~model_reached & bool(orphans)
    # A silent model whose name differs only in case, spaces or punctuation from a name with
    # series, in or out of the selector's reach, may be that model served under another name.
    seen: dict[str, set[str]] = {}
    for name in (*set(f["model"][reached]), *scope.unscoped_models):
        seen.setdefault(_fold(name), set()).add(name)
    lookalikes = {
        m: ", ".join(sorted(repr(o) for o in seen.get(_fold(m), set()) - {m}))
        for m in disk_models
        if seen.get(_fold(m), set()) - {m}
    }
    lookalike = on_disk & ~model_reached & f["model"].isin(list(lookalikes)).to_numpy()

    odd_labels: dict[str, list[str]] = {}
    if policy.label_is_version is not None:
        for i in np.flatnonzero(~on_disk & reached):
            model, version = models[i], versions[i]
            odd = version not in policy.unattributed and not policy.label_is_version(version)
            if model in disk_models and odd:
                odd_labels.setdefault(model, []).append(version)
    mislabeled = on_disk & ~reached & f["model"].isin(list(odd_labels)).to_numpy()
    disagree = np.zeros(len(f), dtype=bool)
    if evidence.recorded is None:  # raw series: a version with a rate has series in the window
        qps_seen = f["max_qps_seen"].to_numpy() | f["last_qps_seen"].to_numpy()
        disagree = on_disk & qps_seen & (f["series"].to_numpy() == 0)

    causes = []
    if not reached.any():
        if scope.unscoped_count:
            causes.append(
                f"--selector {scope.selector} matched none of the metric's series in the window "
                f"(without it, {scope.unscoped_count} series match): check --selector"
            )
        else:
            causes.append(
                f"the query matched no series at all in the window ({evidence.selector}): check "
                "--metric, --selector, --model-label and --version-label (--preset for Triton or TorchServe)"
            )
    if evidence.window <= evidence.coverage.max_gap:
        causes.append(
            f"--window {format_duration(evidence.window)} is not longer than --max-gap "
            f"{format_duration(evidence.coverage.max_gap)}, so even a window with no data at all "
            "would show no hole: lengthen --window or shorten --max-gap"
        )
    return _ScopeDoubts(
        excluded,
        outside,
        unnamed,
        mislabeled,
        disagree,
        lookalike,
        causes,
        scope.selector,
        orphans,
        odd_labels,
        lookalikes,
    )


def _fold(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", name.casefold())


def _loaded(
    f: pd.DataFrame,
    on_disk: Any,
    rank: Any,
    inventory: Inventory,
    served: Mapping[tuple[str, str], bool] | None,
) -> tuple[list[bool | None], list[str | None]]:
    """Per row: is it loaded, and who says so. The server, where asked and it answered for the
    model; else the model's version policy from a server config (latest N: the newest N on
    disk; all; specific: those listed); else nobody (None)."""
    answered = {m for m, _ in served} if served else set()
    loaded: list[bool | None] = []
    source: list[str | None] = []
    for model, version, disk, r in zip(
        f["model"].tolist(), f["version"].tolist(), on_disk.tolist(), rank.tolist(), strict=True
    ):
        if served is not None and model in answered:
            loaded.append(bool(served.get((model, version), False)))
            source.append("server")
            continue
        known = inventory.policies.get(model)
        if known is None or not disk:
            loaded.append(None)
            source.append(None)
            continue
        rule = known[0]
        if rule.kind == "all":
            loaded.append(True)
        elif rule.kind == "specific":
            loaded.append(version in {str(v) for v in rule.versions})
        else:
            loaded.append(bool(r <= rule.num_versions))
        source.append("policy")
    return loaded, source


def _latest_advice(
    f: pd.DataFrame, on_disk: Any, rank: Any, status: Any, kept: Any, inventory: Inventory
) -> tuple[dict[int, str], list[str]]:
    """Under a server's `latest N` policy the newest N versions are loaded, so they are protected;
    moving an idle one only makes the server load the next older one. What frees its memory is
    lowering N to K, the fewest newest versions that still keep every version that must stay."""
    import numpy as np

    advice: dict[int, str] = {}
    per_model: list[str] = []
    models = f["model"].to_numpy()
    sizes = f["size_bytes"].to_numpy(dtype=float, na_value=0.0)
    for model, (rule, where) in inventory.policies.items():
        if rule.kind != "latest" or rule.num_versions <= 1:
            continue
        mine = np.flatnonzero((models == model) & on_disk & (rank <= rule.num_versions))
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
            versions = ", ".join(str(f["version"].iloc[i]) for i in sorted(freed, key=lambda i: rank[i]))
            per_model.append(
                f"{model}: lower num_versions from {rule.num_versions} to {k} in {where} to unload its idle "
                f"version(s) {versions} (about {human_bytes(sum(sizes[i] for i in freed))} of memory)"
            )
    return advice, per_model


def _coverage_sentence(evidence: Evidence) -> str:
    cov = evidence.coverage
    tolerance = format_duration(cov.max_gap)
    if cov.problem:
        return f"coverage could not be checked: {cov.problem}"
    if cov.checked:
        found = f"{len(cov.gaps)} gap(s)" if cov.gaps else "no gaps"
        return (
            f"coverage checked with {cov.selector} ({cov.targets} target(s)): {found} longer than {tolerance}"
        ) + _rules_sentence(evidence)
    found = f"{len(cov.gaps)} hole(s)" if cov.gaps else "no holes"
    sentence = (
        f"per-target coverage NOT checked (no --coverage); the metric itself had {found} longer "
        f"than {tolerance}"
    )
    return sentence + _rules_sentence(evidence)


def _rules_sentence(evidence: Evidence) -> str:
    if evidence.recorded is None:
        return ""
    holes = sum(len(c.gaps) for c in evidence.checks)
    missing = any(c.problem for c in evidence.checks)
    state = "NOT found" if missing else f"{holes} hole(s)" if holes else "no holes"
    return f"; read from recording rules: {state}"


def advise(
    inventory: Inventory,
    evidence: Evidence,
    policy: Policy,
    generated_at: float,
    served: Mapping[tuple[str, str], bool] | None = None,
) -> Report:
    """Join what is on disk with the traffic evidence and give every version a verdict.

    `served`: what the model server said is loaded ((model, version) -> loaded), for the models
    it answered about; None when it was not asked."""
    import gc

    # The cyclic GC would rescan every record alive each time a few hundred thousand objects are
    # allocated, which makes a million-version join superlinear; nothing here creates cycles.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _advise(inventory, evidence, policy, generated_at, served)
    finally:
        if paused:
            gc.enable()


def _advise(
    inventory: Inventory,
    evidence: Evidence,
    policy: Policy,
    generated_at: float,
    served: Mapping[tuple[str, str], bool] | None,
) -> Report:
    import numpy as np
    import pandas as pd

    f = _frames(inventory, evidence)
    thr = policy.threshold
    at = evidence.evaluated_at

    max_qps = f["max_qps"].to_numpy(dtype=float, na_value=np.nan)
    last_qps = f["last_qps"].to_numpy(dtype=float, na_value=np.nan)
    calls = f["calls"].to_numpy(dtype=float, na_value=np.nan)
    on_disk = f["on_disk"].to_numpy(dtype=bool)
    # The busiest hour including the last partial one, which the seed's aligned steps miss.
    peak = np.fmax(max_qps, last_qps)
    with np.errstate(invalid="ignore"):
        busy = (max_qps > thr) | (last_qps > thr)
        called = (thr == 0) & (calls > 0)
    # With recording rules a "born" series is one without samples in the step before it: a
    # series back after a longer gap looks the same. When such a gap was found, calls counted
    # only from born series are not evidence of calls, just a doubt.
    reappeared = np.zeros(len(f), dtype=bool)
    if evidence.recorded is not None and _gap_longer_than(evidence, evidence.step):
        reappeared = called & ~busy
        called = called & ~reappeared
    positive = busy | called
    qps_seen = f["max_qps_seen"].to_numpy() | f["last_qps_seen"].to_numpy()
    with np.errstate(invalid="ignore"):  # a rate is finite and never negative
        max_bad = ~(np.isfinite(max_qps) & (max_qps >= 0)) & f["max_qps_seen"].to_numpy()
        last_bad = ~(np.isfinite(last_qps) & (last_qps >= 0)) & f["last_qps_seen"].to_numpy()
    # Show a NaN/Inf answer as it came, rather than the other query's finite value.
    shown_peak = np.where(max_bad, max_qps, np.where(last_bad, last_qps, peak))
    hourly = _hourly_column(evidence, f)
    hourly_bad = np.array([_non_finite(h) for h in hourly], dtype=bool)
    bad_value = max_bad | last_bad | (f["nan_series"].to_numpy() > 0) | hourly_bad
    resets = f["resets"].to_numpy() > 0  # resets that may hide calls: a doubt
    reset_seen = f["resets_seen"].to_numpy() > 0
    blind = f["blind"].to_numpy(dtype=float)
    scope = _scope_doubts(f, on_disk, qps_seen | (f["series"].to_numpy() > 0), evidence, policy)

    # Protection rules, on disk only.
    number = f["number"].to_numpy(dtype=float, na_value=np.nan)
    model_code = pd.factorize(f["model"], sort=True)[0]
    rank = (pd.Series(number).groupby(model_code).rank(ascending=False, method="first")).to_numpy(
        dtype=float, na_value=np.nan
    )
    # The server config's latest N and --keep-latest: the larger wins (a config never lowers what
    # the user asked to keep).
    server_keep = f["model"].map(inventory.keep_latest).fillna(policy.keep_latest).to_numpy(dtype=float)
    keep = np.maximum(server_keep, policy.keep_latest)
    newest = on_disk & (rank <= keep)
    age_col = "ctime" if policy.age_source == "ctime" else "mtime"
    age = at - f[age_col].to_numpy(dtype=float, na_value=np.nan)
    young = on_disk & (age < policy.min_age)
    pin_reasons = {**inventory.pins, **{p: f"pinned (--pin {p[0]}:{p[1]})" for p in policy.pins}}
    pinned = np.zeros(len(f), dtype=bool)
    if pin_reasons:
        keys = zip(f["model"].tolist(), f["version"].tolist(), strict=True)
        pinned = np.array([k in pin_reasons for k in keys], dtype=bool)
    protected = newest | young | (on_disk & pinned)
    loaded, loaded_from = _loaded(f, on_disk, rank, inventory, served)

    causes = _global_causes(evidence) + scope.causes
    # Traffic under a label that names no version may have reached any version of that model.
    unattributed = ~on_disk & positive & f["version"].isin(policy.unattributed).to_numpy()
    vague_models = set(f["model"][unattributed])
    vague = f["model"].isin(vague_models).to_numpy()
    row_doubt = bad_value | resets | vague | reappeared | scope.any
    doubtful = row_doubt | bool(causes)

    status = np.select(
        [~on_disk, positive, protected, doubtful],
        [Status.NOT_ON_DISK.value, Status.IN_USE.value, Status.PROTECTED.value, Status.UNKNOWN.value],
        default=Status.SAFE.value,
    )

    must_stay = positive | doubtful | pinned | young
    to_free, advice = _latest_advice(f, on_disk, rank, status, must_stay, inventory)
    # Reasons, in words a user can check against Prometheus. Plain lists and memoized wording:
    # rows repeat the same few evidence patterns, and this loop runs once per version.
    cause_text = "; ".join(causes)
    step_words = "hour" if evidence.step == 3600 else format_duration(evidence.step)
    vague_labels = {
        m: ", ".join(sorted(set(f["version"][unattributed & (f["model"] == m).to_numpy()])))
        for m in vague_models
    }
    words: dict[tuple[Any, ...], str] = {}
    recorded = evidence.recorded is not None

    def traffic(mq: float, lq: float, c: float, n: int, born: int, rst: bool, bl: float, gone: int) -> str:
        key = (
            mq if mq == mq else None,
            lq if lq == lq else None,
            c if c == c else None,
            n,
            born,
            rst,
            bl,
            gone,
        )
        text = words.get(key)
        if text is None:
            text = words[key] = _traffic_words(mq, lq, c, n, born, rst, thr, step_words, recorded, bl, gone)
        return text

    reasons = []
    cols = zip(
        status.tolist(),
        max_qps.tolist(),
        last_qps.tolist(),
        calls.tolist(),
        f["series"].tolist(),
        f["born"].tolist(),
        reset_seen.tolist(),
        bad_value.tolist(),
        newest.tolist(),
        young.tolist(),
        pinned.tolist(),
        age.tolist(),
        f["model"].tolist(),
        f["version"].tolist(),
        reappeared.tolist(),
        resets.tolist(),
        f["blind_over"].tolist(),
        blind.tolist(),
        f["gone"].tolist(),
        strict=True,
    )
    for row, (
        st,
        mq,
        lq,
        c,
        n,
        born,
        rst,
        bad,
        nw,
        yg,
        pn,
        ag,
        model,
        version,
        gone_back,
        doubt_rst,
        bl_over,
        bl,
        gone,
    ) in enumerate(cols):
        evidence_text = traffic(mq, lq, c, n, born, rst, bl, gone)
        if st == "in-use" or st == "safe":
            reasons.append(evidence_text)
        elif st == "not-on-disk":
            reasons.append(f"seen in Prometheus ({evidence_text}) but no version directory on disk")
        elif st == "protected":
            rules = []
            if pn:
                rules.append(pin_reasons[(model, version)])
            if nw:
                keep_n = max(inventory.keep_latest.get(model, 0), policy.keep_latest)
                rule = (
                    f"the server config keeps {keep_n}"
                    if inventory.keep_latest.get(model, 0) == keep_n
                    else f"--keep-latest {keep_n}"
                )
                newest_words = (
                    "newest version on disk" if keep_n == 1 else f"among the newest {keep_n} on disk"
                )
                rules.append(f"{newest_words} ({rule})")
            if yg:
                rules.append(
                    f"directory {policy.age_source} {format_duration(round(max(ag, 0)))} ago, younger than "
                    f"--min-age {format_duration(policy.min_age)}"
                )
            if row in to_free:
                rules.append(to_free[row])
            reasons.append("; ".join(rules) + f"; traffic: {evidence_text}")
        else:  # unknown
            doubts = []
            if bad:
                doubts.append("a query returned NaN/Inf for it")
            if doubt_rst and bl_over > 0:
                blind_for = format_duration(round(bl_over))
                doubts.append(
                    f"its counter reset in the window with no sample for {blind_for} before "
                    f"the reset (longer than --max-gap {format_duration(evidence.coverage.max_gap)}), so "
                    "calls then cannot be counted"
                )
            elif doubt_rst:
                doubts.append("its counter reset in the window, so calls before the reset cannot be counted")
            if gone_back:
                doubts.append(
                    "its only sign of calls is a series that appeared in the window, which may be a "
                    f"series back after a gap longer than the {step_words}"
                )
            doubts += scope.reasons(row, model, version)
            if model in vague_labels:
                doubts.append(
                    f"calls labelled version {vague_labels[model]!r} name no version "
                    "and may have reached this one"
                )
            if cause_text:
                doubts.append(cause_text)
            reasons.append(f"would be safe ({evidence_text}) but " + "; ".join(doubts))

    table = pd.DataFrame(
        {
            "model": f["model"].astype(str),
            "version": f["version"].astype(str),
            "path": f["path"].astype(object).where(on_disk, None),
            "on_disk": on_disk,
            "size_bytes": f["size_bytes"].astype(object).where(on_disk, None),
            # None: no answer for this version; NaN/Inf are kept, they are evidence of a problem.
            "max_hourly_qps": pd.Series(shown_peak).astype(object).where(qps_seen, None),
            "calls": pd.Series(calls).astype(object).where(~np.isnan(calls), None),
            "series": f["series"].astype(int),
            "status": status,
            "reason": reasons,
            "hourly": hourly,
            "loaded": pd.Series(loaded, dtype=object),
            "loaded_from": pd.Series(loaded_from, dtype=object),
            "_num": number,
        }
    )
    # Version order: the inventory's order for versions on disk (numbers; TorchServe's natural
    # order), the number for the rest; versions that are neither (e.g. "default") last, by text.
    order_key = number.copy()
    versions = f["version"].tolist()
    for i in np.flatnonzero(~on_disk):
        order_key[i] = int(versions[i]) if versions[i].isdigit() else np.inf
    text_rank = np.zeros(len(f), dtype=np.int64)
    if not on_disk.all():
        text_rank[~on_disk] = pd.factorize(f["version"][~on_disk], sort=True)[0]
    order = np.lexsort((text_rank, order_key, model_code))
    table = table.drop(columns=["_num"]).iloc[order].reset_index(drop=True)

    counts = {s.value: int((status == s.value).sum()) for s in Status}
    safe = table[table["status"] == Status.SAFE.value]
    by_model = {str(m): int(b) for m, b in safe.groupby("model")["size_bytes"].sum().items()}
    safe_loaded = safe["loaded"].tolist()
    sizes = [int(b or 0) for b in safe["size_bytes"].tolist()]
    summary = Summary(
        counts=counts,
        safe_bytes=sum(by_model.values()),
        safe_bytes_by_model=by_model,
        safe_bytes_loaded=sum(b for b, x in zip(sizes, safe_loaded, strict=True) if x is True),
        safe_bytes_disk_only=sum(b for b, x in zip(sizes, safe_loaded, strict=True) if x is False),
        safe_bytes_loaded_unknown=sum(b for b, x in zip(sizes, safe_loaded, strict=True) if x is None),
        advice=tuple(advice),
        unknown_causes=(
            *causes,
            *_row_causes(status, bad_value, resets, vague, f["model"], reappeared),
            *scope.summary(status == Status.UNKNOWN.value),
        )
        if counts["unknown"]
        else (),
    )
    header = Header(
        generated_at=generated_at,
        evaluated_at=at,
        window_start=evidence.window_start,
        source=evidence.source,
        queries={q.name: q.promql for q in evidence.queries},
        window=evidence.window,
        step=evidence.step,
        threshold=thr,
        warnings=evidence.warnings,
        infos=evidence.infos,
        coverage=_coverage_sentence(evidence),
        notes=evidence.notes,
        policy=policy,
        model_roots=tuple(str(r) for r in inventory.roots),
    )
    ignored = tuple((str(i.path), i.reason) for i in inventory.ignored)
    return Report(header, table, summary, ignored)


def _traffic_words(
    max_qps: float,
    last_qps: float,
    calls: float,
    series: int,
    born: int,
    reset: bool,
    thr: float,
    step: str,
    recorded: bool = False,
    blind: float = 0.0,
    gone: int = 0,
) -> str:
    """What the evidence says about a version's traffic, naming the evidence. With recording
    rules, the calls counted are only the first calls of series born in the window."""
    if series == 0 and math.isnan(max_qps) and math.isnan(last_qps):
        return "no series in window"
    parts = []
    peak = max((q for q in (max_qps, last_qps) if not math.isnan(q)), default=math.nan)
    if not math.isnan(peak):
        rel = ">" if peak > thr else "≤"
        parts.append(f"busiest {step} {fmt_qps(peak)} req/s {rel} threshold {fmt_qps(thr)}")
    if series:
        if math.isnan(calls):
            parts.append(f"calls unknown over {series} series")
        elif calls > 0 and recorded:
            noun = "call" if calls == 1 else "calls"
            parts.append(f"≥ {fmt_calls(calls)} first {noun} of series born in window")
        elif calls > 0:
            new = f", {born} series born in window" if born else ""
            noun = "call" if calls == 1 else "calls"
            # After a reset only the calls since the restart are countable: a lower bound.
            at_least = "≥ " if reset else ""
            parts.append(f"{at_least}{fmt_calls(calls)} {noun} in window{new}")
        elif not reset and born:  # a counter created at 0 (Triton, on load) mid-window
            parts.append(f"0 calls since its series appeared in the window ({series} series, {born} new)")
        elif not reset:
            parts.append(f"counter flat all window ({series} series, 0 calls)")
        if reset and blind > 0:
            parts.append(
                f"counter reset in window, calls counted across it ({format_duration(round(blind))} "
                "without samples before it)"
            )
        elif reset:
            parts.append("counter reset in window")
        if gone:
            ended = "its series" if gone == series else f"{gone} of its {series} series"
            parts.append(f"{ended} ended before the window's end (unloaded, or the pod went away)")
    return "; ".join(parts)

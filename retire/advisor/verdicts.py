"""The verdicts: a pure function of (inventory, evidence, policy, clock reading) -> Report.

No I/O, no clock, no environment: everything arrives as arguments, so every rule is testable on
hand-built inputs. The order of the rules is the safety argument (README "How verdicts are made"):

1. `not-on-disk`: Prometheus knows the version, the model directory does not. Never safe.
   `unloaded`: `retire unload` took it out of the server's memory (its journal says so) and the
   server, where asked, does not have it loaded: calls to it fail without being counted, so
   its flat counter proves nothing. Never safe; calls seen since are "clients still asking".
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

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from retire.advisor import doubts, per_model, protections, wording
from retire.advisor.facts import Facts
from retire.advisor.join import join
from retire.advisor.report import Header, Policy, Report, Status, Summary, Unloaded

if TYPE_CHECKING:
    import pandas as pd

    from retire.sources.disk.inventory import Inventory
    from retire.sources.prometheus.evidence import Evidence


def advise(
    inventory: Inventory,
    evidence: Evidence,
    policy: Policy,
    generated_at: float,
    served: Mapping[tuple[str, str], bool] | None = None,
    unloaded: Mapping[tuple[str, str], Unloaded] | None = None,
    served_on: Mapping[tuple[str, str], tuple[tuple[str, bool | None], ...]] | None = None,
) -> Report:
    """Join what is on disk with the traffic evidence and give every version a verdict.

    `served`: what the model server said is loaded ((model, version) -> loaded), for the models
    it answered about; None when it was not asked. `unloaded`: the versions `retire unload`
    unloaded and has not loaded back (its journal), None when no journal was read. `served_on`:
    with several replicas, each one's word per version ((server, loaded or None), ...)."""
    import gc

    # The cyclic GC would rescan every record alive each time a few hundred thousand objects are
    # allocated, which makes a million-version join superlinear; nothing here creates cycles.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _advise(inventory, evidence, policy, generated_at, served, unloaded or {}, served_on or {})
    finally:
        if paused:
            gc.enable()


def _advise(
    inventory: Inventory,
    evidence: Evidence,
    policy: Policy,
    generated_at: float,
    served: Mapping[tuple[str, str], bool] | None,
    unloaded: Mapping[tuple[str, str], Unloaded],
    served_on: Mapping[tuple[str, str], tuple[tuple[str, bool | None], ...]],
) -> Report:
    import numpy as np

    if policy.per_model:
        evidence = per_model.spread(evidence, inventory)
    x = Facts(join(inventory, evidence), inventory, evidence, policy)
    doubt_masks = doubts.row_doubts(x)
    causes = doubts.report_doubts(x)
    ranks = protections.Ranks(x)
    protection_masks = protections.protections(ranks)
    doubtful = np.logical_or.reduce([*doubt_masks.values(), np.zeros(x.n, dtype=bool)]) | bool(causes)
    protected = np.logical_or.reduce([*protection_masks.values(), np.zeros(x.n, dtype=bool)])

    # The one place that decides, in the order of the rules (the module docstring): the first
    # rule a row meets gives its verdict; a row that meets none is safe.
    gone = _unloaded(x, served, unloaded)
    rules = (
        (Status.NOT_ON_DISK, ~x.on_disk),
        (Status.UNLOADED, gone),
        (Status.IN_USE, x.positive),
        (Status.PROTECTED, protected),
        (Status.UNKNOWN, doubtful),
    )
    decided = np.select([mask for _, mask in rules], range(len(rules)), default=len(rules))
    verdicts = (*(verdict for verdict, _ in rules), Status.SAFE)
    status = np.array([v.value for v in verdicts], dtype=object)[decided]
    rows = {v: decided == k for k, v in enumerate(verdicts)}  # each verdict's rows

    must_stay = x.positive | doubtful | protection_masks["pinned"] | protection_masks["young"]
    to_free, advice = protections.latest_advice(ranks, status, must_stay)
    reasons = wording.reasons(x, rows, doubt_masks, causes, ranks, protection_masks, to_free)
    for i in np.flatnonzero(rows[Status.UNLOADED]).tolist():
        reasons[i] = wording.unloaded_words(x, i, unloaded[(x.models[i], x.versions[i])])
    loaded, loaded_from = protections.loaded(ranks, served)
    replicas = [served_on.get(key) for key in zip(x.models, x.versions, strict=True)]
    table = _table(x, status, reasons, loaded, loaded_from, replicas)
    unknown_causes: tuple[str, ...] = ()
    if rows[Status.UNKNOWN].any():
        unknown_causes = (*causes, *doubts.summary_words(x, doubt_masks, rows[Status.UNKNOWN]))
    summary = _summary(x, rows, loaded, unknown_causes, advice)
    protected_by = {k: int((m & rows[Status.PROTECTED]).sum()) for k, m in protection_masks.items()}
    summary = replace(summary, protected_by=protected_by)
    ignored = tuple((str(i.path), i.reason) for i in inventory.ignored)
    return Report(_header(inventory, evidence, policy, generated_at), table, summary, ignored)


def _unloaded(
    x: Facts, served: Mapping[tuple[str, str], bool] | None, unloaded: Mapping[tuple[str, str], Unloaded]
) -> Any:
    """Rows retire unloaded and has not loaded back, unless the server it was unloaded from,
    asked, says it has the version loaded again (someone loaded it back: its counter is evidence
    again); another replica's word does not clear it."""
    import numpy as np

    out = np.zeros(x.n, dtype=bool)
    if not unloaded:
        return out
    for i, key in enumerate(zip(x.models, x.versions, strict=True)):
        u = unloaded.get(key)
        if u is not None and not (u.here and served is not None and served.get(key) is True):
            out[i] = True
    return out


def _table(
    x: Facts, status: Any, reasons: list[str], loaded: list[Any], loaded_from: list[Any], replicas: list[Any]
) -> pd.DataFrame:
    """The rows as Row's fields, in the report's order."""
    import numpy as np
    import pandas as pd

    f, order = x.f, _order(x)

    def cells(values: Any, kept: Any = None) -> pd.Series:
        """A column of Python objects in the report's order; None where not `kept`."""
        if isinstance(values, np.ndarray):
            column = values[order].astype(object)
        else:  # a list (of tuples, say), or a frame's column
            column = pd.Series(values, dtype=object).to_numpy()[order]
        if kept is not None:
            column[~kept[order]] = None
        return pd.Series(column, dtype=object)

    def text(values: Any) -> pd.Series:
        return pd.Series(np.asarray(values, dtype=object)[order], dtype="str")

    return pd.DataFrame(
        {
            "model": text(f["model"]),
            "version": text(f["version"]),
            "path": cells(f["path"], x.on_disk),
            "on_disk": x.on_disk[order],
            "size_bytes": cells(f["size_bytes"], x.on_disk),
            # None: no answer for this version; NaN/Inf are kept, they are evidence of a problem.
            "max_hourly_qps": cells(x.shown_peak, x.qps_seen),
            "calls": cells(x.calls, ~np.isnan(x.calls)),
            "series": x.series[order].astype(int),
            "status": text(status),
            "reason": text(reasons),
            "hourly": cells(x.hourly),
            "loaded": cells(loaded),
            "loaded_from": cells(loaded_from),
            "loaded_on": cells(replicas),
        },
        copy=False,  # fresh arrays: no copy into blocks
    )


def _order(x: Facts) -> Any:
    """Models by name; versions on disk in the inventory's order (numbers; TorchServe's natural
    order), the others by number; versions that are neither (e.g. "default") last, by text."""
    import numpy as np
    import pandas as pd

    on_disk = x.on_disk
    order_key = x.number.copy()
    for i in np.flatnonzero(~on_disk):
        order_key[i] = int(x.versions[i]) if x.versions[i].isdigit() else np.inf
    text_rank = np.zeros(x.n, dtype=np.int64)
    if not on_disk.all():
        text_rank[~on_disk] = pd.factorize(x.f["version"][~on_disk], sort=True)[0]
    return np.lexsort((text_rank, order_key, x.model_code))


def _summary(
    x: Facts, rows: dict[Status, Any], loaded: list[Any], unknown_causes: tuple[str, ...], advice: list[str]
) -> Summary:
    """Counts, what retiring the safe versions frees (memory or disk only), and why rows are unknown."""
    import numpy as np
    import pandas as pd

    counts = {s.value: int(rows[s].sum()) for s in Status}
    safe = rows[Status.SAFE]
    sizes = x.f["size_bytes"].to_numpy(dtype=float, na_value=0.0)[safe].astype(np.int64)
    codes, names = x.model_codes_and_names
    per_model = pd.Series(sizes).groupby(codes[safe], sort=True).sum()
    model_names = np.asarray(names, dtype=object)[per_model.index.to_numpy()].tolist()
    by_model = dict(zip(model_names, per_model.to_numpy().tolist(), strict=True))
    said = np.asarray(loaded, dtype=object)[safe]
    known = ~pd.isna(said)  # None: nobody said whether it is loaded
    in_memory = np.zeros(len(said), dtype=bool)
    in_memory[known] = said[known].astype(bool)
    return Summary(
        counts=counts,
        safe_bytes=sum(by_model.values()),
        safe_bytes_by_model=by_model,
        safe_bytes_loaded=int(sizes[in_memory].sum()),
        safe_bytes_disk_only=int(sizes[known & ~in_memory].sum()),
        safe_bytes_loaded_unknown=int(sizes[~known].sum()),
        advice=tuple(advice),
        unknown_causes=unknown_causes,
    )


def _header(inventory: Inventory, evidence: Evidence, policy: Policy, generated_at: float) -> Header:
    return Header(
        generated_at=generated_at,
        evaluated_at=evidence.evaluated_at,
        window_start=evidence.window_start,
        source=evidence.source,
        queries={q.name: q.promql for q in evidence.queries},
        window=evidence.window,
        step=evidence.step,
        threshold=policy.threshold,
        warnings=evidence.warnings,
        infos=evidence.infos,
        coverage=wording.coverage_sentence(evidence),
        notes=evidence.notes,
        policy=policy,
        model_roots=tuple(str(r) for r in inventory.roots),
    )

"""The words of a report: each row's reason, and the header's sentence on coverage.

Reasons name the evidence, in words a user can check against Prometheus, and start with what
decided the status (a table cut at 80 columns still shows it): for in-use the calls or the rate
above the threshold, for safe the proof (no series, a flat counter, the busiest step at or below
the threshold), for unknown the missing proof, for protected the rule, for not-on-disk the
missing directory. Rows repeat a few
evidence patterns, so the traffic words are built once per distinct pattern, and only protected
and unknown rows (which name their rules and doubts) are worded one by one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from retire.advisor import doubts, protections
from retire.advisor.report import Status, Unloaded, fmt_calls, fmt_qps, iso
from retire.durations import format_duration
from retire.sources.prometheus import table as pv

if TYPE_CHECKING:
    from retire.advisor.facts import Facts
    from retire.advisor.protections import Ranks
    from retire.sources.prometheus.evidence import Evidence


# Before each row's traffic words when the counter counts per model (advisor/per_model.py).
PER_MODEL = "whole model: "


def reasons(
    x: Facts,
    rows: dict[Status, Any],
    doubt_masks: dict[str, Any],
    causes: list[str],
    ranks: Ranks,
    protection_masks: dict[str, Any],
    to_free: dict[int, str],
) -> list[str]:
    """Each row's reason, by its verdict."""
    import numpy as np

    traffic = traffic_column(x)
    if x.policy.per_model:  # the model's calls, not the version's: said on every row
        traffic = PER_MODEL + traffic.astype(object)
    out = traffic.copy()
    for i in np.flatnonzero(rows[Status.NOT_ON_DISK]).tolist():
        out[i] = f"no version directory on disk, but seen in Prometheus ({traffic[i]})"
    for i in np.flatnonzero(rows[Status.PROTECTED]).tolist():
        rules = protections.row_words(ranks, protection_masks, i)
        if i in to_free:
            rules.append(to_free[i])
        out[i] = "; ".join(rules) + f"; traffic: {traffic[i]}"
    cause_text = "; ".join(causes)
    for i in np.flatnonzero(rows[Status.UNKNOWN]).tolist():
        found = doubts.row_words(x, doubt_masks, i) + ([cause_text] if cause_text else [])
        out[i] = "; ".join(found) + f"; would be safe otherwise ({traffic[i]})"
    return list(out.tolist())


def unloaded_words(x: Facts, i: int, u: Unloaded) -> str:
    """Why an unloaded row is not safe, the deciding fact first: when retire unloaded it, and
    whether clients still ask for it (calls or failed calls counted after that)."""
    ev = x.evidence
    failed = float(x.failed[i])
    after_all = u.when <= ev.window_start  # the whole window is after the unload
    last_after = u.when <= ev.evaluated_at - ev.step
    head = f"unloaded by retire at {iso(u.when)} from {u.server}"
    called = bool(x.calls[i] > 0 or x.last_qps[i] > 0 or x.max_qps[i] > 0)  # NaN: not a call
    seen = []
    if (after_all and called) or (last_after and x.last_qps[i] > 0):
        seen.append("calls counted since")
    if failed > 0 and after_all:
        seen.append(f"{fmt_calls(failed)} failed call(s) since")
    if seen:
        return f"{head}; clients still asking ({', '.join(seen)}): load it back with `{u.undo}`"
    if called or failed > 0:
        what = "calls" + (f" and {fmt_calls(failed)} failed call(s)" if failed > 0 else "")
        return (
            f"{head}; {what} in the window, before or after it; no count since proves it idle (calls "
            f"to an unloaded version fail uncounted); load it back with `{u.undo}`"
        )
    return (
        f"{head}; no call counted since, which proves nothing (calls to an unloaded version fail "
        f"uncounted); load it back with `{u.undo}`"
    )


def traffic_column(x: Facts) -> Any:
    """Each row's traffic words (an object array), worded once per distinct evidence pattern."""
    import numpy as np
    import pandas as pd

    born, gone = pv.BORN.of(x.f), pv.GONE.of(x.f)
    busiest = np.fmax(x.max_qps, x.step_low)  # the counted busiest step, where counted
    columns = (busiest, x.last_qps, x.calls, x.series, born, x.reset_seen, x.blind, gone)
    key = np.zeros(x.n, dtype=np.int64)
    for column in columns:  # one number per pattern (NaN is a value of its own)
        codes, uniques = pd.factorize(column, use_na_sentinel=False)
        key = pd.factorize(key * (len(uniques) + 1) + codes)[0]  # renumbered: it stays small
    patterns = int(key.max()) + 1 if x.n else 0
    first = np.zeros(patterns, dtype=np.int64)
    first[key[::-1]] = np.arange(x.n)[::-1]  # the first row of each pattern
    thr, step = x.policy.threshold, step_words(x.evidence)
    first_calls = x.evidence.calls_are_first_calls
    words = np.array(
        [
            traffic_words(
                busiest[i],
                x.last_qps[i],
                x.calls[i],
                int(x.series[i]),
                int(born[i]),
                bool(x.reset_seen[i]),
                thr,
                step,
                first_calls,
                float(x.blind[i]),
                int(gone[i]),
            )
            for i in first
        ],
        dtype=object,
    )
    return words[key] if x.n else np.array([], dtype=object)


def step_words(evidence: Evidence) -> str:
    return "hour" if evidence.step == 3600 else format_duration(evidence.step)


def traffic_words(
    max_qps: float,
    last_qps: float,
    calls: float,
    series: int,
    born: int,
    reset: bool,
    thr: float,
    step: str,
    first_calls: bool = False,
    blind: float = 0.0,
    gone: int = 0,
) -> str:
    """What the evidence says about a version's traffic, naming the evidence, the deciding fact
    first: the rate where it is above the threshold or the threshold is above 0 (the rate then
    decides), else the calls (at threshold 0 any call decides, and none is the proof).
    `first_calls`: the calls counted are only the first calls of series born in the window
    (recording rules)."""
    if series == 0 and math.isnan(max_qps) and math.isnan(last_qps):
        return "no series in window"
    parts = []
    rate: list[str] = []
    peak = max((q for q in (max_qps, last_qps) if not math.isnan(q)), default=math.nan)
    if not math.isnan(peak):
        rel = ">" if peak > thr else "≤"
        rate.append(f"busiest {step} {fmt_qps(peak)} req/s {rel} threshold {fmt_qps(thr)}")
    rate_decides = bool(rate) and (peak > thr or thr > 0)
    if rate_decides:
        parts += rate
    if series:
        if math.isnan(calls):
            parts.append(f"calls unknown over {series} series")
        elif calls > 0 and first_calls:
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
    if not rate_decides:
        parts += rate
    return "; ".join(parts)


def coverage_sentence(evidence: Evidence) -> str:
    """One sentence on what coverage was checked and found, for the header."""
    cov = evidence.coverage
    tolerance = format_duration(cov.max_gap)
    if cov.problem:
        return f"coverage could not be checked: {cov.problem}"
    if cov.checked:
        found = f"{len(cov.gaps)} gap(s)" if cov.gaps else "no gaps"
        checked = f"coverage checked with {cov.selector} ({cov.targets} target(s))"
        return (
            f"{checked}: {found} longer than {tolerance}"
            + _end_sentence(evidence)
            + _rules_sentence(evidence)
        )
    found = f"{len(cov.gaps)} hole(s)" if cov.gaps else "no holes"
    targets = evidence.targets
    if targets is not None and targets.holes is not None and targets.selector:
        holes = f"{len(targets.holes)} gap(s)" if targets.holes else "no gaps"
        judged = len(targets.up_targets)
        sentence = (
            f"targets' scrapes checked with {targets.selector} ({judged} target(s), no --coverage): "
            f"{holes} longer than {tolerance}; the metric itself had {found}"
        )
    else:
        sentence = (
            f"per-target coverage NOT checked (no --coverage, no up series); the metric itself had "
            f"{found} longer than {tolerance}"
        )
    return sentence + _end_sentence(evidence) + _rules_sentence(evidence)


def _end_sentence(evidence: Evidence) -> str:
    """Whether the samples reach the window's end, target by target (README "How verdicts are
    made"): a hole there hides calls for good."""
    targets = evidence.targets
    if targets is None or not targets.checked:
        return ""
    fresh, gone = len(targets.where("fresh")), len(targets.where("gone"))
    late = len(targets.states) - fresh - gone
    parts = [f"{fresh} target(s) scraped up to the window's end"]
    if gone:
        parts.append(f"{gone} replaced before it")
    if late:
        parts.append(f"{late} not shown to reach it")
    source = f" (from {targets.selector})" if targets.selector else " (no up series: from the metric itself)"
    return "; " + ", ".join(parts) + source


def _rules_sentence(evidence: Evidence) -> str:
    if not evidence.from_rules:
        return ""
    holes = sum(len(c.gaps) for c in evidence.checks)
    missing = any(c.problem for c in evidence.checks)
    state = "NOT found" if missing else f"{holes} hole(s)" if holes else "no holes"
    problems = len(evidence.rule_problems)
    return f"; read from recording rules: {state}" + (
        f", {problems} problem(s) with the rules" if problems else ""
    )

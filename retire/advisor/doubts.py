"""Doubts: why a version that would be safe is `unknown`. One table, one entry per doubt.

An entry says which rows it covers (`mask`), what their reason says (`row`), and how the
summary counts them (`summary`), so a new doubt is one entry here plus its test. Rows' reasons
list the doubts in table order; the summary lists them by `summary_rank` (the wording users and
the README know). Report-wide doubts (a gap in the data, warnings, nothing matched) make every
would-be-safe row unknown; they are the `REPORT_DOUBTS` below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retire.advisor.report import fmt_calls, fmt_qps, iso
from retire.durations import format_duration

if TYPE_CHECKING:
    from retire.advisor.facts import Facts
    from retire.sources.prometheus.gaps import Gap


@dataclass(frozen=True)
class Doubt:
    name: str
    mask: Callable[[Facts], Any]  # rows (a bool array) this doubt applies to
    row: Callable[[Facts, int], str]  # its words in row i's reason
    summary: Callable[[Facts, Any], str]  # its words in the summary, given the unknown rows it hit
    summary_rank: int


def _count(words: str) -> Callable[[Facts, Any], str]:
    return lambda _, rows: f"{int(rows.sum())} {words}"


def _reset_row(x: Facts, i: int) -> str:
    if x.blind_over[i] > x.evidence.coverage.max_gap:
        return (
            f"its counter reset in the window with no sample for {format_duration(round(x.blind_over[i]))} "
            f"before the reset (longer than --max-gap {format_duration(x.evidence.coverage.max_gap)}), so "
            "calls then cannot be counted"
        )
    if x.blind_over[i] > 0:
        return (
            f"its counter reset in the window with no sample for {format_duration(round(x.blind_over[i]))} "
            "before the reset (scrapes were missed there), so calls then cannot be counted"
        )
    return "its counter reset in the window, so calls before the reset cannot be counted"


def _step_words(x: Facts) -> str:
    return "hour" if x.evidence.step == 3600 else format_duration(x.evidence.step)


def _excluded(x: Facts) -> Any:
    """The --selector's own model/version matchers reject this version."""
    import numpy as np

    scope = x.evidence.scope
    if not (scope.model_matchers or scope.version_matchers):
        return np.zeros(x.n, dtype=bool)
    rejected = [
        not (
            all(m.matches(mo) for m in scope.model_matchers)
            and all(m.matches(v) for m in scope.version_matchers)
        )
        for mo, v in zip(x.models, x.versions, strict=True)
    ]
    return x.on_disk & np.array(rejected, dtype=bool)


def _outside(x: Facts) -> Any:
    """Some series of it (or of its silent model) exist only without the --selector."""
    import numpy as np

    scope = x.evidence.scope
    if not (scope.outside or scope.unscoped_models):
        return np.zeros(x.n, dtype=bool)
    pair = np.array([p in scope.outside for p in zip(x.models, x.versions, strict=True)], dtype=bool)
    silent = ~x.model_reached & x.in_models(scope.unscoped_models)
    return x.on_disk & (pair | silent)


def _unnamed_row(x: Facts, i: int) -> str:
    model, orphans = x.models[i], x.orphans
    shown = ", ".join(repr(o) for o in orphans[:3]) + (" ..." if len(orphans) > 3 else "")
    case = [o for o in orphans if o.lower() == model.lower()]
    hint = f" ({case[0]!r} differs only in case)" if case else ""
    return (
        f"model {model!r} has no series at all while Prometheus has series for models with no "
        f"directory ({shown}){hint}: names on disk may differ from names served; use "
        "--model-config (it maps served names to paths) or narrow --selector to this server"
    )


def _mislabeled_row(x: Facts, i: int) -> str:
    labels = ", ".join(repr(v) for v in x.odd_labels.get(x.models[i], [])[:3])
    return (
        f"its model's series carry version labels no version directory can have ({labels}): "
        "--version-label may name the wrong label, or versions are served under other names"
    )


def _disagree(x: Facts) -> Any:
    """A rate came back for it, but no per-series values, where the evidence has both."""
    import numpy as np

    if not x.evidence.rate_implies_series:
        return np.zeros(x.n, dtype=bool)
    return x.on_disk & x.qps_seen & (x.series == 0)


def _vague_summary(x: Facts, rows: Any) -> str:
    names = ", ".join(sorted(set(x.f["model"][rows])))
    return f"{int(rows.sum())} of {names} may have had calls labelled with no version"


def _check(x: Facts, by: str, empty: str) -> str:
    """The query that lists the series lacking a label, for reasons that say how to check."""
    u = x.evidence.unlabelled
    matchers = ",".join(filter(None, (f'{empty}=""', u.matchers)))
    return f"count by ({by}) ({u.metric}{{{matchers}}})"


def _unversioned_row(x: Facts, i: int) -> str:
    u = x.evidence.unlabelled
    n = u.no_version[x.models[i]]
    return (
        f"{n} series of its model have no {u.version_label} label (an empty label is none in "
        "Prometheus) and were not flat all window, so calls no other query sees may have reached "
        "this version: check "
        f"{_check(x, u.model_label, u.version_label)}"
    )


def _steps_row(x: Facts, i: int) -> str:
    step = _step_words(x)
    if x.step_high[i] != x.step_high[i]:  # NaN
        return f"no per-{step} values came back for it, so its busiest {step} is not known"
    return (
        f"its busiest {step} may hold up to {fmt_qps(x.step_high[i])} req/s (above --threshold "
        f"{fmt_qps(x.policy.threshold)}): calls around a {step} boundary whose scrape was missed, or "
        f"counted by a series created anew (a restart), may belong to either {step}"
    )


DOUBTS: tuple[Doubt, ...] = (
    Doubt(
        "bad value",
        lambda x: x.bad_value,
        lambda x, i: (
            "a query returned NaN/Inf for it, or a counter of 2**53 or more (a float64 cannot add "
            "one call to it)"
        ),
        _count("with NaN/Inf values"),
        summary_rank=0,
    ),
    Doubt(
        "reset",
        lambda x: x.reset_doubt,
        _reset_row,
        _count("with a counter reset that may hide calls"),
        summary_rank=1,
    ),
    Doubt(
        "unsampled",  # a series not sampled at its target's scrapes: created anew cannot be told
        lambda x: x.unsampled > 0,
        lambda x, i: (
            f"{int(x.unsampled[i])} of its series had more samples in the window than its target's "
            "successful scrapes, or ended and could not be re-read against them (pushed or federated "
            "with the target's labels at another interval?), so a counter created anew at its old "
            "value cannot be told: check how it is scraped"
        ),
        _count("with series sampled apart from their target's scrapes"),
        summary_rank=13,
    ),
    Doubt(
        "reappeared",
        lambda x: x.reappeared,
        lambda x, i: (
            "its only sign of calls is a series that appeared in the window, which may be a "
            f"series back after a gap longer than the {_step_words(x)}"
        ),
        _count("whose only sign of calls may be a series back after a gap"),
        summary_rank=2,
    ),
    Doubt(
        "excluded",
        _excluded,
        lambda x, i: (
            f"--selector {x.evidence.scope.selector} leaves out this version, so its calls cannot be seen"
        ),
        _count("left out by --selector"),
        summary_rank=4,
    ),
    Doubt(
        "outside",
        _outside,
        lambda x, i: (
            f"it has series outside --selector {x.evidence.scope.selector}, whose calls the queries cannot "
            "see (narrow the selector to the servers that load it, or check it)"
        ),
        _count("with series outside --selector"),
        summary_rank=5,
    ),
    Doubt(
        "unnamed",  # a model with no series while series name models without a directory
        lambda x: x.on_disk & ~x.model_reached & bool(x.orphans),
        _unnamed_row,
        _count("whose model may be served under another name"),
        summary_rank=6,
    ),
    Doubt(
        "mislabeled",
        lambda x: x.on_disk & ~x.reached & x.in_models(x.odd_labels),
        _mislabeled_row,
        _count("whose model's version labels name no directory"),
        summary_rank=7,
    ),
    Doubt(
        "disagree",
        _disagree,
        lambda x, i: "a rate came back for it but no per-series values: the answers disagree",
        _count("with a rate but no series values"),
        summary_rank=8,
    ),
    Doubt(
        "lookalike",  # a silent model named like one with series, in or out of the selector
        lambda x: x.on_disk & ~x.model_reached & x.in_models(x.lookalikes),
        lambda x, i: (
            f"Prometheus has series for {x.lookalikes[x.models[i]]}, a name that differs from "
            f"{x.models[i]!r} only in case, spaces or punctuation or has no directory and contains "
            "its words: it may be this model served under that name (--model-config maps served "
            "names to paths)"
        ),
        _count("whose model's name resembles a served one"),
        summary_rank=9,
    ),
    Doubt(
        "vague",  # calls under a label that names no version may have reached any version
        lambda x: x.in_models(x.vague_labels),
        lambda x, i: (
            f"calls labelled version {x.vague_labels[x.models[i]]!r} name no version "
            "and may have reached this one"
        ),
        _vague_summary,
        summary_rank=3,
    ),
    Doubt(
        "steps",  # with --threshold: an increase that may belong to more than one step
        lambda x: x.step_doubt,
        _steps_row,
        _count("whose busiest step cannot be shown at or below --threshold"),
        summary_rank=11,
    ),
    Doubt(
        "failed",  # calls the server counts as failed, apart from the served ones (Triton)
        lambda x: x.on_disk & (x.failed > 0),
        lambda x, i: (
            f"{fmt_calls(x.failed[i])} of its calls failed in the window (the server counts them "
            "apart from the served ones): a client still asks for it"
        ),
        _count("whose calls failed"),
        summary_rank=12,
    ),
    Doubt(
        "unversioned",  # series with no version label: their calls may have reached any version
        lambda x: x.on_disk & x.in_models(x.evidence.unlabelled.no_version),
        _unversioned_row,
        _count("whose model has series with no version label"),
        summary_rank=10,
    ),
)


def _length(gap: Gap, max_gap: float) -> str:
    """A gap's length; where only its bound passes `max_gap`, both (`Gap.at_most`)."""
    if gap.seconds > max_gap:
        return format_duration(gap.seconds)
    return f"{format_duration(gap.seconds)}, perhaps up to {format_duration(gap.at_most)}"


def _server_doubts(x: Facts) -> list[str]:
    ev = x.evidence
    causes: list[str] = []
    if ev.partial:
        causes.append("the server answered with partial data (isPartial)")
    if ev.warnings:
        causes.append(f"Prometheus returned warnings: {'; '.join(ev.warnings)}")
    return causes


def _data_gaps(x: Facts) -> list[str]:
    ev = x.evidence
    causes: list[str] = []
    for cov in (ev.coverage, *ev.checks):
        if cov.problem:
            causes.append(cov.problem)
        if cov.gaps:
            first = cov.gaps[0]
            who = (
                f"target {{{first.target}}} {first.kind}" if first.target else f"no samples of {cov.selector}"
            )
            more = f" (and {len(cov.gaps) - 1} more)" if len(cov.gaps) > 1 else ""
            user_set = cov.max_gap == ev.coverage.max_gap  # else a rollup: no gap is tolerated
            limit = f"--max-gap {format_duration(cov.max_gap)}" if user_set else "one rollup interval"
            length = _length(first, cov.max_gap)
            causes.append(
                f"data gap: {who} from {iso(first.start)} to {iso(first.end)} ({length} > {limit}){more}"
            )
    return causes


def _nothing_matched(x: Facts) -> list[str]:
    if x.reached.any():
        return []
    scope = x.evidence.scope
    if scope.unscoped_count:
        return [
            f"--selector {scope.selector} matched none of the metric's series in the window "
            f"(without it, {scope.unscoped_count} series match): check --selector"
        ]
    return [
        f"the query matched no series at all in the window ({x.evidence.selector}): check "
        "--metric, --selector, --model-label and --version-label (--preset for Triton or TorchServe)"
    ]


def _unmodelled(x: Facts) -> list[str]:
    u = x.evidence.unlabelled
    if not u.no_model:
        return []
    return [
        f"{u.no_model} series of the metric have no {u.model_label} label (an empty label is none in "
        "Prometheus) and were not flat all window, so calls no other query sees may have reached "
        "any model: check "
        f"{_check(x, u.version_label, u.model_label)}"
    ]


def _window_too_short(x: Facts) -> list[str]:
    ev = x.evidence
    if ev.window > ev.coverage.max_gap:
        return []
    return [
        f"--window {format_duration(ev.window)} is not longer than --max-gap "
        f"{format_duration(ev.coverage.max_gap)}, so even a window with no data at all "
        "would show no hole: lengthen --window or shorten --max-gap"
    ]


def _window_end(x: Facts) -> list[str]:
    """Samples must reach the window's end for every target that could hold calls: a hole at the
    end hides calls for good (README "How verdicts are made")."""
    targets = x.evidence.targets
    if targets is None or not targets.checked:
        return []
    causes: list[str] = []

    def more(items: list[Any]) -> str:
        return f" (and {len(items) - 1} more)" if len(items) > 1 else ""

    stale = targets.where("stale")
    if stale and len(stale) == len(targets.states):
        newest = targets.newest
        if newest is None:
            causes.append(
                "no target has a sample in the last "
                f"{format_duration(targets.recent)} before the evaluation instant: the data stops before the "
                "window's end, where a hole hides calls for good; evaluate earlier with --at"
            )
        else:
            causes.append(
                f"the data ends at {iso(newest)}, {format_duration(round(targets.instant - newest))} before "
                "the evaluation instant (ingestion lag?), and a hole at the window's end hides calls for "
                f"good: evaluate at --at {iso(newest)} or once the data has arrived"
            )
    elif stale:
        first = stale[0]
        seen = first.last if first.last is not None else first.ended
        when = f"after {iso(seen)}" if seen is not None else "in the window"
        why = "" if first.has_up else " (it has no up series to tell whether it was replaced)"
        causes.append(
            f"target {{{first.text}}}{more(stale)} has no scrape {when}, before the window's end, and "
            f"was not shown to be replaced{why}: calls it took since cannot be seen; check it, or "
            "evaluate earlier with --at"
        )
    down = targets.where("down")
    if down:
        causes.append(
            f"target {{{down[0].text}}}{more(down)} was down (up = 0) at the window's end: calls it "
            "took since its last good scrape cannot be seen"
        )
    blind = targets.where("blind")
    if blind:
        causes.append(
            f"the scrape interval of target {{{blind[0].text}}}{more(blind)} could not be learned (no "
            "recent up samples), so whether its samples reach the window's end is unknown: pass "
            "--coverage with the up series of the servers"
        )
    return causes


def _target_holes(x: Facts) -> list[str]:
    """Without --coverage, each target's holes from its `up` series: a hole in the middle hides no
    call of a counter that is still there after it, but a restart inside it loses the calls
    taken before it, and the counter may come back at its old value or not at all (README "How
    verdicts are made"). A target with no `up` series cannot show its holes."""
    targets = x.evidence.targets
    if targets is None or targets.holes is None:
        return []
    causes: list[str] = []
    holes = targets.holes
    if holes:
        first = holes[0]
        what = {"down": "down (up = 0)", "no samples": "not scraped (no up samples)"}.get(
            first.kind, "down or not scraped"
        )
        more = f" (and {len(holes) - 1} more)" if len(holes) > 1 else ""
        max_gap = x.evidence.coverage.max_gap
        causes.append(
            f"target {{{first.target}}} was {what} from {iso(first.start)} to {iso(first.end)} "
            f"({_length(first, max_gap)} > --max-gap {format_duration(max_gap)}){more}: a restart inside "
            "the hole would have lost the calls it took before, unseen; "
            "evaluate a window without it (--at, --window) or accept holes that long with --max-gap"
        )
    orphans = [t for t in targets.states if not t.has_up]
    if orphans:
        more = f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else ""
        causes.append(
            f"target {{{orphans[0].text}}}{more} has no up series, so holes in its scrapes in the "
            "window cannot be seen: store its up series with the metric (federate or remote-write "
            "it too)"
        )
    return causes


def _rule_problems(x: Facts) -> list[str]:
    """Recording rules that differ from these options', or cannot cover them (evidence says why)."""
    return list(x.evidence.rule_problems)


# Report-wide doubts, in the order reasons and the summary list them: each gives its sentences.
REPORT_DOUBTS: tuple[Callable[[Facts], list[str]], ...] = (
    _server_doubts,
    _data_gaps,
    _window_end,
    _target_holes,
    _rule_problems,
    _nothing_matched,
    _window_too_short,
    _unmodelled,
)


def report_doubts(x: Facts) -> list[str]:
    return [cause for doubt in REPORT_DOUBTS for cause in doubt(x)]


def row_doubts(x: Facts) -> dict[str, Any]:
    """Each doubt's rows, by name."""
    return {d.name: d.mask(x) for d in DOUBTS}


def summary_words(x: Facts, masks: dict[str, Any], unknown: Any) -> list[str]:
    """The counted row doubts of the unknown rows, for the summary line."""
    out = []
    for d in sorted(DOUBTS, key=lambda d: d.summary_rank):
        rows = unknown & masks[d.name]
        if rows.any():
            out.append(d.summary(x, rows))
    return out


def row_words(x: Facts, masks: dict[str, Any], i: int) -> list[str]:
    """Row i's doubts, in table order."""
    return [d.row(x, i) for d in DOUBTS if masks[d.name][i]]

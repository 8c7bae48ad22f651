"""A metric, selector or label that matched nothing in the whole window: one line naming the fix.

Such a report would be every row `unknown` with the same long reason; the cause is a typo far
more often than a fleet without a single series. So, in raw mode, when no query saw any series
of the metric (with or without a version) and nothing was partial, the run stops with one line
that names what Prometheus does have, from its index only (no samples read): the closest metric
names (`/api/v1/label/__name__/values`), the labels the metric's series carry
(`/api/v1/labels`), and the closest values of each label the --selector names
(`/api/v1/label/<label>/values`). Recording-rules mode keeps its own checks (the rules may
record nothing for a fleet without calls).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from retire.errors import PrometheusError
from retire.escape import printable

if TYPE_CHECKING:
    from retire.sources.prometheus.client import PrometheusClient
    from retire.sources.prometheus.evidence import Evidence
    from retire.sources.prometheus.queries import QueryParams

SHOWN = 3  # closest names shown per hint


def matched_nothing(evidence: Evidence) -> bool:
    """No query saw any series of the metric (within the --selector) in the window, and no
    answer was partial or warned: the selector, metric or label names are wrong (or the metric
    was never exported). Series the selector leaves out do not count (it matched nothing), nor
    series without the model or version label (when none has it, the label name is wrong). Where
    only the selector's matchers on the model or version label leave series out, the report is
    made: its rows' scope checks say what those series are."""
    if evidence.recorded is not None or evidence.partial or evidence.warnings:
        return False
    if evidence.scope.hidden:  # series only the model/version matchers leave out: the rows' scope
        return False  # checks name what they hold (a label no directory can have, another name)
    return not (len(evidence.series) or len(evidence.max_qps) or len(evidence.last_step_qps))


def _closest(word: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(word, choices, n=SHOWN, cutoff=0.5)
    if not near:
        return "none close"
    return ", ".join(printable(n) for n in near)


def explain(client: PrometheusClient, params: QueryParams, evidence: Evidence) -> str:
    """The one line: what matched nothing, and what Prometheus has that comes closest."""
    start, end = evidence.window_start, evidence.evaluated_at
    window = "in the window"
    metric = params.metric
    try:
        names = client.label_values("__name__", '{__name__=~".+"}', start, end)
        if metric not in names:
            return (
                f"--metric {printable(metric)} matched no series {window}: Prometheus has no metric of "
                f"that name (closest: {_closest(metric, names)}); check --metric, or run `retire doctor` "
                "to see which --preset fits"
            )
        labels = set(client.label_names(metric, start, end))
        for option, label in (
            ("--model-label", params.model_label),
            ("--version-label", params.version_label),
        ):
            if label and label not in labels:
                return (
                    f"{option} {printable(label)} matched no series {window}: no series of "
                    f"{printable(metric)} has that label (closest: {_closest(label, sorted(labels))}); "
                    f"check {option}"
                )
        hints = []
        for m in params.selector:
            if m.name not in labels:
                closest = _closest(m.name, sorted(labels))
                hints.append(f"no series has the label {printable(m.name)} (closest: {closest})")
                continue
            values = client.label_values(m.name, f"{metric}", start, end)
            if not any(m.matches(v) for v in values):
                hints.append(
                    f"no value of {printable(m.name)} matches {printable(m.render())} "
                    f"(closest: {_closest(m.value, values)})"
                )
    except PrometheusError as e:  # the hint is a courtesy: the main line stands without it
        return (
            f"the query matched no series at all {window} ({printable(evidence.selector)}), and the "
            f"index could not say why: {e.message}"
        )
    if hints:
        selector = ",".join(m.render() for m in params.selector)
        head = f"--selector {printable(selector)} matched none of the series of {printable(metric)} {window}"
        return f"{head}: " + "; ".join(hints)
    return (
        f"the query matched no series at all {window} ({printable(evidence.selector)}): check --metric, "
        "--selector, --model-label and --version-label, or run `retire doctor`"
    )

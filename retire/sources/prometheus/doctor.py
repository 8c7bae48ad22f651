"""Which preset fits: the presets' metrics and labels as Prometheus holds them (`retire doctor`).

Only the index is read (label values over the window, no samples), so it is cheap on any fleet.
A preset fits when its metric has series in the window with its model label and, for a
per-version counter, its version label too: stock TF Serving's request_count has no version
label, the patched counter has one (docs/tfserving-patch.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from retire.errors import PrometheusError
from retire.servers import SERVERS

if TYPE_CHECKING:
    from retire.sources.prometheus.client import PrometheusClient
    from retire.sources.prometheus.promql import Matcher


@dataclass(frozen=True)
class Candidate:
    """A metric and its labels to look for: a preset's, or the ones the user set."""

    name: str
    metric: str
    model_label: str
    version_label: str  # "": a counter per model


@dataclass(frozen=True)
class Fit:
    """One candidate as Prometheus holds its metric."""

    name: str
    metric: str
    fits: bool
    words: str  # what was found, and if it does not fit, why


def candidates(given: Candidate | None = None) -> list[Candidate]:
    """Every preset, and the user's own metric and labels when they are no preset's."""
    out = [Candidate(s.preset, s.metric, s.model_label, s.version_label) for s in SERVERS.values()]
    if given is not None and all(
        (c.metric, c.model_label, c.version_label) != (given.metric, given.model_label, given.version_label)
        for c in out
    ):
        out.append(given)
    return out


def judge(
    client: PrometheusClient,
    start: float,
    end: float,
    wanted: list[Candidate],
    fleet: tuple[Matcher, ...] = (),
) -> list[Fit]:
    """Each candidate, judged by the series of its metric in [start, end] (with the fleet matchers)."""
    tail = "".join(f",{m.render()}" for m in fleet)
    names = "|".join(sorted({c.metric for c in wanted}))  # metric names hold no regex syntax
    found = set(_values(client, "__name__", f'{{__name__=~"{names}"{tail}}}', start, end))
    return [_judge(client, start, end, c, tail) if c.metric in found else
            Fit(c.name, c.metric, False, "no series in the window") for c in wanted]  # fmt: skip


def _values(client: PrometheusClient, label: str, match: str, start: float, end: float) -> list[str]:
    """Label values from a whole answer: a partial one (or one with warnings) is refused, since
    "not found" from part of the index would send the user to the wrong preset."""
    values, warnings, partial = client.label_answer(label, match, start, end)
    if warnings or partial:
        said = "; ".join(warnings) or "the answer is partial"
        raise PrometheusError(
            f"Prometheus at {client.display_url} answered only in part ({said}): retry when every "
            "store answers, or ask the Prometheus that scrapes the servers directly"
        )
    return values


def _judge(client: PrometheusClient, start: float, end: float, c: Candidate, tail: str) -> Fit:
    models = _values(client, c.model_label, f'{c.metric}{{{c.model_label}!=""{tail}}}', start, end)
    if not models:
        return Fit(c.name, c.metric, False, f"series, but none with a {c.model_label} label")
    counted = f"{len(models)} model(s)"
    if not c.version_label:
        return Fit(c.name, c.metric, True, f"{counted}; calls per model (no version label)")
    labelled = f'{c.metric}{{{c.model_label}!="",{c.version_label}!=""{tail}}}'
    versions = _values(client, c.version_label, labelled, start, end)
    if not versions:
        return Fit(c.name, c.metric, False, f"{counted}, but no series with a {c.version_label} label")
    return Fit(c.name, c.metric, True, f"{counted}, {len(versions)} {c.version_label} value(s)")

"""The PromQL `retire` sends: templates from `queries/*.promql`, filled in safely.

Templates use `${name}` placeholders and `#` comment lines. User-supplied label values never reach
PromQL as raw text: they are parsed into matchers (`promql.py`) and re-rendered with escaping, so a
value containing `"` or `}` cannot change the query's meaning.

In a source checkout the templates are read from the top-level `queries/`; an installed wheel
carries them as `retire/queries/` (see pyproject.toml).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path

from retire.durations import promql_duration, short_duration
from retire.sources.prometheus.promql import Matcher, Selector, quote

# Prometheus refuses range queries with more points than this per series.
MAX_RANGE_POINTS = 11000


# What `retire rules` assumes of the scrape interval when it cannot ask the server (no
# --prometheus): Prometheus's default, or less where the step cannot hold that (the rules file's
# comment says which). A report learns the real one and checks it.
ASSUMED_SCRAPE = 60.0


@dataclass(frozen=True)
class RuleSpec:
    """The two rule groups of `retire rules`: a fine one every `interval` that reads the raw
    series, and a rollup one every `rollup` that condenses the fine series, so a report reads a
    few samples per version instead of every scrape of every pod.

    `lookback`: how far back each fine evaluation reads increases, births and resets: a step,
    a scrape interval and the longest gap between evaluations a report tolerates
    (`rule_lookback`), so that neither a tolerated gap in the rules' evaluations nor a step
    that straddles two evaluations hides a call. Recorded with the series (`LOOKBACK_LABEL`), so
    a report can check it covers its own options."""

    interval: float = 60.0
    rollup: float = 3600.0
    lookback: float = 3600.0 + ASSUMED_SCRAPE + 900.0 + 2 * 60.0

    @property
    def rollup_range(self) -> float:
        """A rollup's range: its interval plus two fine intervals, so consecutive rollups overlap
        and a fine sample written late is still in the next one."""
        return self.rollup + 2 * self.interval

    def rollup_check(self, window: float) -> tuple[float, float]:
        """(step, range) of the rollup heartbeat: a point is a hole when no rollup ran within
        `range` before it. range + step = rollup_range, so two rollups further apart than one
        rollup's range (a fine sample read by neither) always leave a hole; range >= rollup when
        the step allows (at most two fine intervals), so rollups on time never do."""
        step = float(max(math.ceil(self.interval), math.ceil(window / (MAX_RANGE_POINTS - 1))))
        return step, self.rollup_range - step


def heartbeat_step(window: float, max_gap: float, interval: float) -> float:
    """The fine heartbeat's interval: the hole check's resolution, at least one rule interval."""
    return max(resolution_for(window, max_gap), interval)


def tolerated_gap(window: float, max_gap: float, interval: float) -> float:
    """The longest span without a fine evaluation that the heartbeat may not show: a hole is
    reported when more than --max-gap of its points are empty, and each point speaks for one
    heartbeat interval, so two evaluations up to --max-gap plus two intervals apart pass."""
    return max_gap + 2 * heartbeat_step(window, max_gap, interval)


def assumed_scrape(step: float, interval: float) -> float:
    """The scrape interval assumed without a server to ask: Prometheus's default (1m), or the
    longest the step can hold with a rule interval (two scrapes plus a rule interval)."""
    return float(max(min(ASSUMED_SCRAPE, math.floor((step - interval) / 2)), 0))


def rule_lookback(step: float, scrape: float, gap: float) -> float:
    """How far back each fine evaluation reads: any step-long span of samples, from the last
    scrape before it to the last one in it (step + scrape), fits in the window of the next
    evaluation, which comes at most `gap` later."""
    return step + scrape + gap


# The `aspect` label of the recorded series that are per version; the other one, "present", is
# the fleet-wide heartbeat.
VERSION_ASPECTS = ("rate", "increase", "born", "resets", "recreated", "series")


@dataclass(frozen=True)
class QueryParams:
    """Everything the templates need, derived once from Settings."""

    metric: str
    model_label: str
    version_label: str  # "": the counter has none, the evidence is per model (stock TF Serving)
    selector: tuple[Matcher, ...]
    window: float
    step: float
    resolution: float
    coverage: Selector | None
    rules: RuleSpec | None = None  # read the series recorded by `retire rules` instead of raw ones
    canonical: Callable[[str], str] = str  # version label -> join key (the server's rule)
    failure_metric: str | None = None  # the server's counter of failed calls, where it has one
    per_step: bool = False  # also count each step's calls (a threshold above 0 compares with them)

    @property
    def per_model(self) -> bool:
        """The counter counts per model only: every query groups by the model label, and each
        model's evidence stands for all its versions (the advisor spreads it, `per_model.py`)."""
        return not self.version_label

    @property
    def group(self) -> str:
        """The labels every `sum by` keeps: the model's and the version's, or the model's alone."""
        return self.model_label if self.per_model else f"{self.model_label}, {self.version_label}"

    @property
    def series_selector(self) -> str:
        """The metric with all its matchers: what every evidence query selects."""
        return f"{self.metric}{{{self.matchers}}}"

    @property
    def matchers(self) -> str:
        return ",".join(m.render() for m in (*self._base, *self.selector))

    @property
    def base_selector(self) -> str:
        """The metric without the user's --selector: every series the selector could leave out."""
        return f"{self.metric}{{{','.join(m.render() for m in self._base)}}}"

    @property
    def fleet(self) -> tuple[Matcher, ...]:
        """The --selector's matchers on labels other than the model and version labels: they say
        which servers the report is about. Matchers on the model or version label filter the very
        labels the scope checks look at (a served name with no directory, a version label no
        directory can have, series lacking a label), so those checks drop them: a selector can
        make rows unknown, never hide such a doubt."""
        return tuple(m for m in self.selector if m.name not in (self.model_label, self.version_label))

    @property
    def _base(self) -> tuple[Matcher, ...]:
        if self.per_model:
            return (Matcher(self.model_label, "!=", ""),)
        return (Matcher(self.model_label, "!=", ""), Matcher(self.version_label, "!=", ""))


def recorded_name(params: QueryParams, rollup: bool = False) -> str:
    """The name `retire rules` records the evidence under, e.g. for the default metric
    `retire:tensorflow:serving:model_call_count:evidence1h` and its rollup `...:evidence1h:max1h`.
    The step is in the name: a report with another --step finds no series, not wrong ones."""
    assert params.rules is not None
    name = f"retire:{params.metric.lstrip(':')}:evidence{short_duration(params.step)}"
    return f"{name}:max{short_duration(params.rules.rollup)}" if rollup else name


RULE_LABEL = "retire_selector"
# The fine rule's lookback (RuleSpec.lookback), recorded with every series so a report can check it.
LOOKBACK_LABEL = "retire_lookback"


def recorded_selector(params: QueryParams, rollup: bool = False, aspect: str | None = None) -> str:
    """The recorded series as the report selects them. Every recorded series carries the raw
    matchers it was made from in a label, so rules made for other matchers (another --selector,
    metric or labels) are never read as these: the report finds nothing, which is a hole."""
    only = f",aspect={quote(aspect)}" if aspect else ""
    return f"{recorded_name(params, rollup)}{{{RULE_LABEL}={quote(params.matchers)}{only}}}"


def resolution_for(window: float, max_gap: float) -> float:
    """Interval of the hole/coverage range queries: fine enough to measure gaps against
    --max-gap (a quarter of it, at most 60 s), coarse enough to stay under the server's point limit."""
    fine = min(60.0, max(max_gap / 4, 1.0))
    return float(max(math.ceil(fine), math.ceil(window / (MAX_RANGE_POINTS - 1))))


@cache
def template(name: str) -> str:
    """The template text with comments removed and whitespace folded to single spaces."""
    packaged = resources.files("retire").joinpath("queries", f"{name}.promql")
    if packaged.is_file():
        raw = packaged.read_text(encoding="utf-8")
    else:  # source checkout or editable install: the top-level queries/ folder
        raw = (Path(__file__).resolve().parents[3] / "queries" / f"{name}.promql").read_text(encoding="utf-8")
    lines = [line for line in raw.splitlines() if not line.lstrip().startswith("#")]
    text = " ".join(" ".join(lines).split())
    # Fold the spaces a template's layout adds inside brackets: `( x )` reads as `(x)`.
    return re.sub(r"([(\[{]) | ([)\]}])", lambda m: m.group(1) or m.group(2), text)


def _target_up(params: QueryParams) -> str:
    """The `up` series that can be a target of the metric's series: none carrying the model or
    version label (a target label of that name would push the exporter's to `exported_...`).
    Two `up` series differing only in those labels (a file_sd `version` bumped) would otherwise
    be one match for a join that ignores them: an evaluation error ("many-to-many")."""
    labels = [label for label in (params.model_label, params.version_label) if label]
    return "up{" + ",".join(f'{label}=""' for label in labels) + "}"


def render(name: str, params: QueryParams, **extra: str) -> str:
    """A template filled in; `extra` supplies the placeholders only some templates have."""
    values = {
        "metric": params.metric,
        "model_label": params.model_label,
        "version_label": params.version_label,
        "group": params.group,
        "failure_metric": params.failure_metric or "",
        "matchers": params.matchers,
        # The --selector's fleet matchers (not those on the model or version label), each after a
        # comma: for the query that drops the two `!=""` filters to find the series lacking a label.
        "fleet_tail": "".join(f",{m.render()}" for m in params.fleet),
        "window": promql_duration(params.window),
        "step": promql_duration(params.step),
        "resolution": promql_duration(params.resolution),
        "coverage": params.coverage.render() if params.coverage else "",
        "step_seconds": f"{params.step:g}",
        "target_up": _target_up(params),
        **extra,
    }
    if params.rules is not None:
        values.setdefault("interval", promql_duration(params.rules.interval))
        values.setdefault("lookback", promql_duration(params.rules.lookback))
        values.setdefault("rollup_range", promql_duration(params.rules.rollup_range))
    if name == "unlabelled_series":
        # Per-model evidence has no version label to lack: only series lacking the model's.
        labels = (params.model_label,) if params.per_model else (params.version_label, params.model_label)
        return " or ".join(f"({_lacking(params, label, values)})" for label in labels)
    return string.Template(template(name)).substitute(values)


def _lacking(params: QueryParams, label: str, values: dict[str, str]) -> str:
    """unlabelled_series for the series lacking one label (the templates say why)."""
    lacking = f'{params.metric}{{{label}=""{values["fleet_tail"]}}}'
    flat = string.Template(template("unlabelled_flat")).substitute(values, lacking=lacking)
    return string.Template(template("unlabelled_series")).substitute(values, lacking=lacking, flat=flat)


@dataclass(frozen=True)
class PlannedQuery:
    """One query of a run: instant queries are evaluated at the instant, range ones over the
    window (from its start to the instant) at `step` seconds."""

    name: str
    kind: str  # "instant" or "range"
    promql: str
    purpose: str
    step: float = 0.0
    span: float = 0.0  # a range query's length before the instant, if not the window


PURPOSES = {
    "max_hourly_qps": "busiest step per version (the seed query)",
    "last_step_qps": "rate over the last step, which the seed's aligned steps miss",
    "series_last": "per series: last value in the window (any sample at all)",
    "series_start": "per series: value at the window start (born-in-window detection)",
    "series_resets": "per series: counter resets in the window (re-read and counted across them)",
    "series_now": "per series: its newest sample's time (none: gone before the window's end)",
    "series_count": "per series: samples in the window (fewer than its target's scrapes: recreated)",
    "unlabelled_series": "series lacking the model or version label: flat all window? (seen nowhere else)",
    "failed_calls": "versions whose calls failed in the window (the server's failure counter)",
    "metric_presence": "series with samples per interval (global holes)",
    "coverage": "lowest `up` per target per interval (scrape gaps)",
    "hourly_qps": "traffic per step over the window, for sparklines: any call shows (no verdict uses it)",
    "step_values": "per series: its value at each step boundary (each step's calls, for --threshold)",
    "step_times": "per series: its newest sample's time at each step boundary (scrapes missed there)",
    "step_counts": "per series: its samples in each step (fewer than its target's scrapes: created anew)",
    "recorded_window": "every aspect per version over the window, from the rollups",
    "recorded_recent": "every aspect per version since the last rollup, from the fine series",
    "recorded_present": "recorded heartbeat per interval (holes in the data, fine rules not running)",
    "recorded_rollups": "rollup heartbeat: a rollup within one rollup's range of each point (rollups missed)",
    "rule_tail": "the fine rule's expression on the raw series at the instant (the span since its last run)",
    "recorded_hourly": "recorded rate per step over the window, for sparklines (no verdict uses it)",
}

# Run once, not once per model, when the queries are split by model: coverage is about targets, not
# models, and unlabelled_series reads only series lacking a label, which a matcher on the model
# label would hide (it is cheap).
UNSPLIT = ("coverage", "unlabelled_series")

RAW_NAMES = (
    "max_hourly_qps",
    "last_step_qps",
    "series_last",
    "series_start",
    "series_resets",
    "series_now",
    "series_count",
    "unlabelled_series",
)


def report_queries(params: QueryParams, sparklines: bool = False) -> list[PlannedQuery]:
    """The queries a report sends, in the order `retire query` prints them."""
    if params.rules is not None:
        return _recorded_queries(params, sparklines)
    planned = [PlannedQuery(n, "instant", render(n, params), PURPOSES[n]) for n in RAW_NAMES]
    planned += _failure_queries(params)
    # Holes in the metric itself are checked even with --coverage: targets can stay up while the
    # metric is gone (a relabel rule drops it, an image without the counter rolls out).
    planned.append(_range("metric_presence", render("metric_presence", params), params.resolution))
    if params.coverage is not None:
        planned.append(_range("coverage", render("coverage", params), params.resolution))
    if params.per_step:
        # The steps end at the instant: a window that is no whole number of steps starts earlier.
        span = math.ceil(params.window / params.step - 1e-9) * params.step
        planned += [
            replace(_range(n, render(n, params), params.step), span=span)
            for n in ("step_values", "step_times", "step_counts")
        ]
    if sparklines:
        planned.append(_range("hourly_qps", render("hourly_qps", params), params.step))
    return planned


def _failure_queries(params: QueryParams) -> list[PlannedQuery]:
    """The failed calls, read raw in both modes (only where the server counts them apart)."""
    if params.failure_metric is None:
        return []
    return [PlannedQuery("failed_calls", "instant", render("failed_calls", params), PURPOSES["failed_calls"])]


def _range(name: str, promql: str, step: float) -> PlannedQuery:
    return PlannedQuery(name, "range", promql, PURPOSES[name], step)


def _recorded_queries(params: QueryParams, sparklines: bool) -> list[PlannedQuery]:
    """With recording rules: every aspect over the window from the rollups, and since the last
    rollup from the fine series; the fine rule evaluated raw at the instant (the span since its
    last evaluation); both heartbeats; the raw last-step rate and the --coverage query (about
    targets) as without rules."""
    assert params.rules is not None
    planned = [
        PlannedQuery(
            "recorded_window",
            "instant",
            render("recorded_window", params, recorded=recorded_selector(params, True)),
            PURPOSES["recorded_window"],
        ),
        PlannedQuery(
            "recorded_recent",
            "instant",
            render("recorded_recent", params, recorded=recorded_selector(params)),
            PURPOSES["recorded_recent"],
        ),
        # The rules' last evaluation may be up to a tolerated gap before the instant: what they
        # would record at the instant is read raw (one evaluation's worth of samples).
        PlannedQuery("rule_tail", "instant", render("rule_evidence", params), PURPOSES["rule_tail"]),
        PlannedQuery("last_step_qps", "instant", render("last_step_qps", params), PURPOSES["last_step_qps"]),
        # The rules read only series with both labels: the others are found raw (only they are read).
        PlannedQuery(
            "unlabelled_series", "instant", render("unlabelled_series", params), PURPOSES["unlabelled_series"]
        ),
        *_heartbeat_queries(params),
        *_failure_queries(params),
    ]
    if params.coverage is not None:
        planned.append(_range("coverage", render("coverage", params), params.resolution))
    if sparklines:
        rate = recorded_selector(params, aspect="rate")
        hourly = render("recorded_hourly", params, recorded=rate)
        planned.append(_range("recorded_hourly", hourly, params.step))
    return planned


def _heartbeat_queries(params: QueryParams) -> list[PlannedQuery]:
    """The fine heartbeat, at a rule interval or finer, and the rollups' (`RuleSpec.rollup_check`)."""
    assert params.rules is not None
    fine_step = max(params.resolution, params.rules.interval)
    rollup_step, rollup_reach = params.rules.rollup_check(params.window)
    return [
        _range(
            "recorded_present",
            render(
                "recorded_present",
                params,
                recorded=recorded_selector(params, aspect="present"),
                resolution=promql_duration(fine_step),
            ),
            fine_step,
        ),
        _range(
            "recorded_rollups",
            render(
                "recorded_present",
                params,
                recorded=recorded_selector(params, True, "present"),
                resolution=promql_duration(rollup_reach),
            ),
            rollup_step,
        ),
    ]

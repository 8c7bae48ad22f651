"""The evidence contract: what the Prometheus sources hand the advisor, gathered at one instant.

All queries are evaluated at the same instant `at` (pinned before the first query is sent), so the
pieces of evidence describe the same window. `Evidence` is plain data for the advisor; nothing here
decides a verdict. Its per-version table (`per_version()`, the columns declared in `table.py`) is
the same whatever the source; the report-wide facts (coverage, scope, unlabelled series, targets,
the instrument) are the records below. The two sources that produce it, raw series and recording
rules, are `raw_source.py` and `rules_source.py` behind `gather.gather`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from retire.sources.prometheus import raw_facts, rules_facts
from retire.sources.prometheus.buckets import StepBounds
from retire.sources.prometheus.gaps import Gap
from retire.sources.prometheus.instrument import Instrument
from retire.sources.prometheus.promql import Matcher
from retire.sources.prometheus.queries import PlannedQuery
from retire.sources.prometheus.raw_facts import SeriesFacts
from retire.sources.prometheus.rules_facts import VersionFacts
from retire.sources.prometheus.table import VersionValue, assemble
from retire.sources.prometheus.targets import Targets

if TYPE_CHECKING:
    import pandas as pd

# The contract's names, with the records defined beside their sources' facts (tests and benchmarks
# build evidence by hand from them).
__all__ = [
    "Coverage",
    "Evidence",
    "Progress",
    "Request",
    "Scope",
    "SeriesFacts",
    "Unlabelled",
    "VersionFacts",
    "VersionSeries",
    "VersionValue",
    "holes_longer",
]


Progress = Callable[[int, int], None]  # (models done, models in all)


@dataclass(frozen=True)
class Request:
    """What a report asks of the evidence: the instant every query is evaluated at, the longest
    hole in the data it tolerates, and how the queries are run."""

    at: float
    max_gap: float
    split: bool = False  # once per model from the start (--split-by-model), not only when too big
    models_hint: Callable[[], Iterable[str]] = tuple  # the models on disk: asked only when splitting
    progress: Progress | None = None  # called as each model's queries finish
    sparklines: bool = False  # also the traffic per step (only some formats show it)


@dataclass(frozen=True)
class VersionSeries:
    """A (model, version)'s rate at each step of the window (None: no data then)."""

    model: str
    version: str
    points: tuple[float | None, ...]


@dataclass(frozen=True)
class Coverage:
    """Whether the data covers the window. `checked` says if per-target coverage was asked for."""

    checked: bool
    selector: str
    max_gap: float
    gaps: tuple[Gap, ...] = ()
    targets: int = 0
    problem: str | None = None  # evidence that could not be judged at all
    # Whether its holes are holes in the data, after which a series may look born (not so for
    # the rollups' heartbeat: a rollup missed leaves the raw series and the fine rules as they were).
    in_data: bool = True


@dataclass(frozen=True)
class Scope:
    """What the queries could see, so that "no series" is read as "no calls" only where they
    could have seen calls (README "How verdicts are made"). Pure data for the advisor.

    `model_matchers`/`version_matchers` are the user's --selector matchers on the model and
    version labels: a version they reject is out of the query's reach. From the index (cheap: no
    samples read), the series of the metric with and without the --selector: a version with any
    series the selector leaves out may have calls the queries cannot see.
    """

    selector: str = ""
    model_matchers: tuple[Matcher, ...] = ()
    version_matchers: tuple[Matcher, ...] = ()
    outside: frozenset[tuple[str, str]] = frozenset()  # versions with a series the selector leaves out
    unscoped_models: frozenset[str] = frozenset()  # models with series when the selector is left out
    unscoped_count: int = 0  # series of the metric without the selector
    # (model, version) labels of series that only the selector's matchers on the model or version
    # label leave out: the scope checks (served names with no directory, version labels no directory
    # can have, labels that name no version) read them too, so such matchers cannot hide a doubt.
    hidden: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Unlabelled:
    """Series of the metric (with the --selector) in the window that lack the model or the version
    label. Prometheus stores an empty label as none, and the other queries ask for both labels, so
    these series' calls are seen nowhere else: they may have reached any version of their model,
    or of any model. Counted here are those that may hide calls; a series flat all window whose
    target reached the window's end hides none (`flat`). The metric, matchers and labels are kept
    for reasons that say how to check."""

    no_version: dict[str, int] = field(default_factory=dict)  # model -> its series with no version label
    no_model: int = 0  # series with no model label
    metric: str = ""
    matchers: str = ""  # the --selector's fleet matchers (none on the model or version label), rendered
    model_label: str = "model_name"
    version_label: str = "model_version"
    flat: int = 0  # series lacking a label whose counters were flat all window: they hide no call


@dataclass(frozen=True)
class Evidence:
    source: str
    evaluated_at: float
    window: float
    step: float
    queries: tuple[PlannedQuery, ...]
    # Records as `Columns` from gather(), or any sequence of records (hand-built evidence).
    max_qps: Sequence[VersionValue]
    last_step_qps: Sequence[VersionValue]
    series: Sequence[SeriesFacts]
    coverage: Coverage
    warnings: tuple[str, ...] = ()
    infos: tuple[str, ...] = ()
    partial: bool = False
    stats: dict[str, dict[str, object]] = field(default_factory=dict)
    split_models: int = 0  # > 0: the queries were run once per model, for this many models
    notes: tuple[str, ...] = ()
    hourly: tuple[VersionSeries, ...] | None = None  # only when sparklines were asked for
    recorded: Sequence[VersionFacts] | None = None  # from recording rules, instead of `series`
    checks: tuple[Coverage, ...] = ()  # more completeness checks (the recording rules' heartbeats)
    scope: Scope = field(default_factory=Scope)
    selector: str = ""  # the metric's full selector, for reasons that name it
    unlabelled: Unlabelled = field(default_factory=Unlabelled)
    # The targets that could hold calls and whether their samples reach the window's end (None:
    # not asked, as in hand-built evidence).
    targets: Targets | None = None
    # With --threshold above 0: each version's busiest step, counted from counter differences at
    # the step boundaries (README "How verdicts are made"); None: not asked.
    steps: Mapping[tuple[str, str], StepBounds] | None = None
    instrument: Instrument | None = None  # what the server says of how its data was made
    # Versions whose calls failed in the window, from the server's failure counter (None: it has
    # none, or it was not asked): never safe, whatever the counter of served calls says.
    failed: Sequence[VersionValue] | None = None
    # Why the recording rules cannot be relied on (each makes every would-be-safe row unknown):
    # the rules the server runs differ from these options', or cannot cover them.
    rule_problems: tuple[str, ...] = ()

    @property
    def window_start(self) -> float:
        return self.evaluated_at - self.window

    def per_version(self) -> pd.DataFrame:
        """The per-version table (its columns: `table.COLUMNS`), one row per (model, version) any
        query answered for, whatever the source: the rates and step bounds every source answers,
        and the source's own part (raw series, or the recorded facts)."""
        part = (
            raw_facts.per_version(self.series, self.coverage.max_gap)
            if self.recorded is None
            else rules_facts.per_version(self.recorded)
        )
        return assemble(self.max_qps, self.last_step_qps, part, self.steps or {})

    # What the advisor must know of how the evidence was gathered, as facts rather than its source.
    @property
    def from_rules(self) -> bool:
        """Read from recording rules (the header says so, with their heartbeats' state)."""
        return self.recorded is not None

    @property
    def calls_are_first_calls(self) -> bool:
        """The calls counted are only the first calls of series born in the window (the rules'
        rate covers the rest), not every call."""
        return self.from_rules

    @property
    def rate_implies_series(self) -> bool:
        """A version with a rate has per-series values too (raw series: both read the same
        series); the recorded facts have no such tie."""
        return not self.from_rules

    @property
    def births_may_be_returns(self) -> bool:
        """With recording rules a "born" series is one without samples in the step before it, and
        a series back after a longer gap looks the same: when such a gap was found, calls counted
        only from born series are not evidence of calls."""
        targets = () if self.targets is None else self.targets.holes or ()
        return self.from_rules and holes_longer(self.step, (self.coverage, *self.checks), targets)


def holes_longer(step: float, checks: Iterable[Coverage], target_holes: Iterable[Gap] = ()) -> bool:
    """Whether the data had a hole longer than the step, after which a series looks born
    (`target_holes`: the targets' own, `Targets.holes`)."""
    gaps = [g for c in checks if c.in_data for g in c.gaps]
    return any(g.at_most > step for g in (*gaps, *target_holes))

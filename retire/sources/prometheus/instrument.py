"""What the server says about how its data was made: scrape intervals, recording rules, retention.

Evidence is only as fine as the instrument that recorded it: a rate window needs two scrapes
(Cloudflare pint's `promql/rate` check reads the scrape interval from `/api/v1/status/config` for
the same reason), and a report read from recording rules must know which rules the server really
runs. `learn` asks the status APIs once:

- `/api/v1/targets?state=active`: each active target's (job, instance) and `scrapeInterval`;
- `/api/v1/status/config`: the global `scrape_interval` and each job's (`scrape_config.py` reads
  the YAML the server writes itself, in one regular block style, so no YAML library is needed);
- `/api/v1/rules?type=record`: the recording rules, their groups' intervals, health, last run;
- `/api/v1/status/tsdb`: the head block's start; `/api/v1/status/runtimeinfo`: the retention.

Servers answer these differently or not at all (VictoriaMetrics, Thanos, Mimir, a proxy that
passes only the query API): a missing, odd or slow answer is a note, never a failed run. Only a
server that cannot be reached at all fails, as every query to it would.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from retire.errors import PrometheusError
from retire.escape import printable
from retire.sources.prometheus.client import PrometheusClient, unreachable
from retire.sources.prometheus.scrape_config import read_config, server_duration


@dataclass(frozen=True)
class RecordingRule:
    group: str
    interval: float  # the group's evaluation interval, seconds
    record: str
    expr: str
    labels: Mapping[str, str]
    health: str  # "ok", "err", "unknown"
    last_error: str
    last_evaluation: float | None  # Unix seconds; None: never evaluated


@dataclass(frozen=True)
class Instrument:
    """How the server's data was made, as far as it says. Plain data; `notes` has one short
    sentence per thing that could not be learned (the report header shows them)."""

    target_intervals: Mapping[tuple[str, str], float]  # (job, instance) -> scrape interval (s)
    job_intervals: Mapping[str, float]  # job -> scrape interval (config, else its targets)
    default_interval: float | None  # the global scrape_interval
    rules: tuple[RecordingRule, ...] | None  # None: no rules API (or it failed)
    oldest: float | None  # earliest sample the server holds (Unix s), if it says
    retention: float | None  # seconds, if it says
    notes: tuple[str, ...]
    head_start: float | None = None  # the TSDB head block's first sample; older data is in blocks
    # How far back an instant query looks for a series' last sample (--query.lookback-delta): within
    # it, a series missing from an answer was ended by a staleness marker.
    lookback: float | None = None
    # The labels of every target the server scrapes itself (None: not learned), so that a series
    # it only receives (federated, remote-written) is not taken for one of its own targets.
    scraped: tuple[Mapping[str, str], ...] | None = None
    # The job_names it scrapes with its own job label (not honor_labels; None: not learned).
    own_jobs: frozenset[str] | None = None

    def interval(self, job: str | None, instance: str | None) -> float | None:
        """A target's scrape interval: its own, else its job's, else the global one."""
        if job is not None and instance is not None and (job, instance) in self.target_intervals:
            return self.target_intervals[(job, instance)]
        if job is not None and job in self.job_intervals:
            return self.job_intervals[job]
        return self.default_interval

    def configured(self, job: str, instance: str) -> float | None:
        """A target's scrape interval as the server's configuration names it for that target or
        its job; not the global default, which a server with no such job (remote-written data)
        names too."""
        found = self.target_intervals.get((job, instance))
        return found if found is not None else self.job_intervals.get(job)

    def longest_of(self, targets: Iterable[tuple[str, str]]) -> float | None:
        """The longest scrape interval among these (job, instance) targets; with none, or one
        the server says nothing of, the longest it names anywhere (never a shorter guess)."""
        values = [self.interval(job, instance) for job, instance in targets]
        if values and None not in values:
            return max(v for v in values if v is not None)
        return self.longest_interval()

    def longest_interval(self) -> float | None:
        """The longest scrape interval the server names anywhere (targets, jobs, global)."""
        known = [*self.target_intervals.values(), *self.job_intervals.values()]
        if self.default_interval is not None:
            known.append(self.default_interval)
        return max(known) if known else None


NOTHING = Instrument({}, {}, None, None, None, None, ())


class _Unlearned(Exception):
    """An endpoint that answered nothing usable; the message says what, for a note."""


# Endpoint -> query parameters. One request each, all at once.
ENDPOINTS: dict[str, dict[str, str]] = {
    "/api/v1/targets": {"state": "active"},
    "/api/v1/status/config": {},
    "/api/v1/rules": {"type": "record"},
    "/api/v1/status/tsdb": {},
    "/api/v1/status/runtimeinfo": {},
    "/api/v1/status/flags": {},
}


def learn(client: PrometheusClient, at: float) -> Instrument:
    """Everything the status APIs say, asked concurrently (bounded by the client's timeout).

    `at` is the evaluation instant; the answers describe the server as it is now, which is what
    can be known (a scrape interval changed within the window is not seen). Raises only when the
    server cannot be reached at all (`PrometheusError`, as any query would)."""
    del at  # the APIs answer about the present only

    def ask(path: str) -> Any:
        try:
            return client.get_json(path, ENDPOINTS[path])
        except PrometheusError as e:
            if unreachable(e):
                raise
            return _Unlearned(_short(e.message))

    with ThreadPoolExecutor(max_workers=len(ENDPOINTS)) as pool:
        answers = dict(zip(ENDPOINTS, pool.map(ask, ENDPOINTS), strict=True))
    return read_answers(answers)


def read_answers(answers: Mapping[str, Any]) -> Instrument:
    """The Instrument from each endpoint's `data` (or an `_Unlearned`): pure, so each server's
    shape of answer can be tested directly too."""

    def part(path: str, reader: Callable[[Any], Any], empty: Any) -> Any:
        data = answers.get(path)
        try:
            if isinstance(data, _Unlearned):
                raise data
            return reader(data)
        except (_Unlearned, ValueError, TypeError, KeyError) as e:
            failures[path] = str(e) or type(e).__name__
            return empty

    failures: dict[str, str] = {}
    targets, target_jobs, pools, scraped = part("/api/v1/targets", _targets, ({}, {}, {}, None))
    default, config_jobs, mine = part("/api/v1/status/config", _config, (None, {}, None))
    rules = part("/api/v1/rules", _rules, None)
    head_start = part("/api/v1/status/tsdb", _head_start, None)
    retention = part("/api/v1/status/runtimeinfo", _retention, None)
    lookback = part("/api/v1/status/flags", _lookback, None)

    jobs = dict(config_jobs)
    # A target's job label is usually its job_name; relabelling can change it, so the targets'
    # own intervals fill in for their job labels, and a pool's config interval for its targets.
    for job, interval in target_jobs.items():
        jobs.setdefault(job, interval)
    for key, pool in pools.items():
        if key not in targets and pool in config_jobs:
            targets[key] = config_jobs[pool]
    intervals_known = bool(targets or jobs or default is not None)
    return Instrument(
        target_intervals=targets,
        job_intervals=jobs,
        default_interval=default,
        rules=rules,
        oldest=None,  # no API of Prometheus says it (the head's start is not the oldest block's)
        retention=retention,
        notes=_notes(failures, intervals_known, rules is not None),
        head_start=head_start,
        lookback=lookback,
        scraped=scraped,
        own_jobs=mine,
    )


def _notes(failures: Mapping[str, str], intervals_known: bool, rules_known: bool) -> tuple[str, ...]:
    """One short sentence per thing that could not be learned, with the endpoints' failures."""
    notes: list[str] = []

    def why(*paths: str) -> str:
        return "; ".join(f"{p}: {failures[p]}" for p in paths if p in failures)

    if not intervals_known:
        reason = why("/api/v1/targets", "/api/v1/status/config") or "the server names none"
        notes.append(f"scrape intervals not learned ({reason})")
    if not rules_known:
        notes.append(f"recording rules not learned ({why('/api/v1/rules')})")
    if "/api/v1/status/runtimeinfo" in failures:
        notes.append(f"retention not learned ({why('/api/v1/status/runtimeinfo')})")
    if "/api/v1/status/tsdb" in failures:
        notes.append(f"TSDB status not learned ({why('/api/v1/status/tsdb')})")
    if "/api/v1/status/flags" in failures:
        notes.append(
            f"query lookback not learned ({why('/api/v1/status/flags')}): a target that stopped is "
            "taken as replaced only if another was scraped right after it"
        )
    return tuple(notes)


def _short(message: str) -> str:
    """A failure in a few words: the server's part of a client error message."""
    text = message.split(" answered ", 1)[-1] if " answered " in message else message
    text = text.split("; ", 1)[0]
    return printable(text)[:160]


# --------------------------------------------------------------------------------------------
# Readers, one per endpoint: `data` in, values out; ValueError/TypeError/KeyError for odd shapes.


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object")
    return data


def _targets(
    data: Any,
) -> tuple[
    dict[tuple[str, str], float],
    dict[str, float],
    dict[tuple[str, str], str],
    tuple[dict[str, str], ...],
]:
    """(job, instance) -> interval, job label -> interval, (job, instance) -> scrape pool (for
    targets that do not say their interval: older servers), and every active target's labels."""
    active = _object(data, "the targets answer").get("activeTargets")
    if not isinstance(active, list):
        raise ValueError("'activeTargets' is not a list")
    per_target: dict[tuple[str, str], float] = {}
    per_job: dict[str, float] = {}
    pools: dict[tuple[str, str], str] = {}
    scraped: list[dict[str, str]] = []
    for item in active:
        target = _object(item, "a target")
        labels = target.get("labels")
        if not isinstance(labels, dict):
            continue
        scraped.append({str(k): str(v) for k, v in labels.items()})
        job, instance = labels.get("job"), labels.get("instance")
        if not isinstance(job, str) or not isinstance(instance, str):
            continue
        discovered = target.get("discoveredLabels")
        text = target.get("scrapeInterval")
        if not text and isinstance(discovered, dict):
            text = discovered.get("__scrape_interval__")
        try:
            interval = server_duration(text)
        except ValueError:
            if isinstance(target.get("scrapePool"), str):
                pools[(job, instance)] = target["scrapePool"]
            continue
        # Two targets with one (job, instance) (two pools): the longer interval is the safe one.
        per_target[(job, instance)] = max(interval, per_target.get((job, instance), 0.0))
        per_job[job] = max(interval, per_job.get(job, 0.0))
    return per_target, per_job, pools, tuple(scraped)


def _config_text(data: Any) -> str:
    text = _object(data, "the config answer").get("yaml")
    if not isinstance(text, str):
        raise ValueError("'yaml' is not text")
    if not text.strip():
        raise ValueError("the configuration is empty")
    return text


def _config(data: Any) -> tuple[float | None, dict[str, float], frozenset[str]]:
    """The configuration's scrape intervals and its own jobs (`own_jobs`), from one reading."""
    return read_config(_config_text(data))


def _rules(data: Any) -> tuple[RecordingRule, ...]:
    groups = _object(data, "the rules answer").get("groups")
    if not isinstance(groups, list):
        raise ValueError("'groups' is not a list")
    out: list[RecordingRule] = []
    for g in groups:
        group = _object(g, "a rule group")
        name, interval, rules = group.get("name"), group.get("interval"), group.get("rules")
        if not isinstance(name, str) or not isinstance(rules, list):
            raise ValueError("a rule group lacks 'name' or 'rules'")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise ValueError(f"rule group {name[:60]!r} has no numeric 'interval'")
        for r in rules:
            rule = _object(r, "a rule")
            if rule.get("type") != "recording":  # servers that ignore ?type=record
                continue
            labels = rule.get("labels") or {}
            if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
                raise ValueError("a rule's labels are not strings")
            record, expr = rule.get("name"), rule.get("query")
            if not isinstance(record, str) or not isinstance(expr, str):
                raise ValueError("a rule lacks 'name' or 'query'")
            health = rule.get("health")
            out.append(
                RecordingRule(
                    group=name,
                    interval=float(interval),
                    record=record,
                    expr=expr,
                    labels=dict(labels),
                    health=health if health in ("ok", "err", "unknown") else "unknown",
                    last_error=str(rule.get("lastError") or ""),
                    last_evaluation=_rfc3339(rule.get("lastEvaluation")),
                )
            )
    return tuple(out)


def _rfc3339(value: Any) -> float | None:
    """Go's RFC 3339 time (nanoseconds allowed); its zero time (`0001-01-01T00:00:00Z`), which
    Prometheus sends for a rule never evaluated, is None."""
    if not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    try:
        t = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value)).timestamp()
    except ValueError:
        return None
    return t if math.isfinite(t) else None


def _head_start(data: Any) -> float | None:
    head = _object(data, "the TSDB status").get("headStats")
    if head is None:
        return None  # the server keeps no head (VictoriaMetrics): nothing to say
    start = _object(head, "'headStats'").get("minTime")
    if isinstance(start, bool) or not isinstance(start, (int, float)):
        raise ValueError("'headStats.minTime' is not a number")
    # An empty head says MaxInt64 (or MinInt64): no sample there.
    return float(start) / 1000 if 0 < start < 2**62 else None


def _lookback(data: Any) -> float:
    """`query.lookback-delta` among the server's flags (all given as text)."""
    return server_duration(_object(data, "the flags answer")["query.lookback-delta"])


def _retention(data: Any) -> float | None:
    """`storageRetention`: "15d", "30d or 10GiB" (time or size, whichever comes first), or a size
    alone (no time limit: None)."""
    text = _object(data, "the runtime info").get("storageRetention")
    if not isinstance(text, str):
        raise ValueError("'storageRetention' is not text")
    for part in text.split(" or "):
        try:
            return server_duration(part.strip())
        except ValueError:
            continue
    return None

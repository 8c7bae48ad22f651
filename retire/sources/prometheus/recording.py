"""`retire rules`: the Prometheus recording rules behind `--use-recording-rules`.

Without rules a report reads every scrape of every pod over the window, twice or more (README
"Benchmarks"). The rules move that work to the server's rule evaluation, spread over the day:

- a *fine* group, every `interval` (1m), reads the raw series and records per version the rate
  over the step, the counter's growth over the rule's lookback, the first calls of series born
  within it, counter resets and the series count, plus one fleet-wide heartbeat (how many series
  had a sample), all in one rule (`aspect` label), so an evaluation records all of them or none;
- a *rollup* group, every `rollup` (1h), records the maximum of the fine series since the last
  rollup (with an overlap), so a report reads 24 samples a day per version and aspect.

Every recorded series carries the raw matchers it was made from (label `retire_selector`) and the
fine rule's lookback (`retire_lookback`); a report made with other options finds no recorded
series and says so, it never reads the wrong ones, and it checks the lookback covers its own
--max-gap and the scrape interval it learns. When the server's rules API lists the rules, a report
also checks they are the ones printed here, healthy and running (`check_loaded`). The YAML is
written by hand (JSON-quoted strings are valid YAML), so no YAML library is needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from retire import __version__
from retire.durations import format_duration, promql_duration, short_duration
from retire.errors import ConfigError
from retire.sources.prometheus.instrument import RecordingRule
from retire.sources.prometheus.promql import quote, unquote
from retire.sources.prometheus.queries import (
    LOOKBACK_LABEL,
    RULE_LABEL,
    QueryParams,
    RuleSpec,
    recorded_name,
    recorded_selector,
    render,
)


def rule_groups(params: QueryParams) -> list[dict[str, object]]:
    """The two groups as plain data (name, interval, rules), in evaluation order."""
    assert params.rules is not None
    digest = hashlib.sha256(f"{params.series_selector} {params.step}".encode()).hexdigest()[:8]
    stem = f"retire:{params.metric.lstrip(':')}:{short_duration(params.step)}:{digest}"
    fine = {
        "record": recorded_name(params),
        "expr": render("rule_evidence", params),
        "labels": {RULE_LABEL: params.matchers, LOOKBACK_LABEL: promql_duration(params.rules.lookback)},
    }
    rollup = {
        "record": recorded_name(params, rollup=True),
        "expr": render("recorded_recent", params, recorded=recorded_selector(params)),
        # The series carry it already (from the fine ones); on the rule it tells the rules API
        # which rollup is this selector's.
        "labels": {RULE_LABEL: params.matchers},
    }
    return [
        {"name": f"{stem}:fine", "interval": promql_duration(params.rules.interval), "rules": [fine]},
        {"name": f"{stem}:rollup", "interval": promql_duration(params.rules.rollup), "rules": [rollup]},
    ]


GROUPS = ("fine", "rollup")


def rules_yaml(params: QueryParams, command: str, groups: tuple[str, ...] = GROUPS, scrape: str = "") -> str:
    """A Prometheus rule file (`rule_files:`) that `promtool check rules` accepts. `groups`
    selects groups for a backfill, which must create the fine group's history before the
    rollup group's (the rollups read it back from Prometheus). `scrape`: one sentence on the
    scrape interval the rules were made for (learned or assumed), for the file's comment."""
    assert params.rules is not None
    q = json.dumps
    lines = [
        f"# Recording rules for `retire report --use-recording-rules` (retire {__version__}).",
        f"# Made by: {command}",
        f"# For {params.series_selector}, step {format_duration(params.step)}.",
        "# A report with --use-recording-rules must use the same --metric, labels, --selector and --step.",
        f"# Each evaluation reads back {format_duration(params.rules.lookback)} (retire_lookback): a step, "
        "a scrape interval and the longest",
        "# gap between evaluations a report tolerates (--max-gap plus two heartbeat intervals).",
    ]
    if scrape:
        lines.append(f"# {scrape}")
    lines += [
        "# The rules must have run for a whole --window before any version can be safe; history can be",
        "# backfilled with `promtool tsdb create-blocks-from rules`, the fine group first",
        "# (docs/recording-rules.md).",
        "groups:",
    ]
    for group in rule_groups(params):
        if str(group["name"]).rsplit(":", 1)[1] not in groups:
            continue
        lines += [f"  - name: {q(group['name'])}", f"    interval: {group['interval']}", "    rules:"]
        rules = group["rules"]
        assert isinstance(rules, list)
        for rule in rules:
            # One `or` part per line: the literal block keeps the PromQL readable and unescaped.
            expr = str(rule["expr"]).replace(") or label_replace(", ")\n          or label_replace(")
            lines += [f"      - record: {rule['record']}", "        expr: |-", f"          {expr}"]
            if "labels" in rule:
                lines.append("        labels:")
                lines += [f"          {k}: {q(v)}" for k, v in rule["labels"].items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The rules the server runs, against the ones printed here.

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<duration>(?:\d+(?:ms|s|m|h|d|w|y))+)(?![A-Za-z0-9_])
      | (?P<colon>:(?=\d))
      | (?P<word>[A-Za-z_:][A-Za-z0-9_:]*|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],])""",
    re.VERBOSE,
)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def normalized(expr: str) -> str:
    """PromQL text in one spelling, so a rule read back from the server compares with the one
    printed here: Prometheus re-renders a rule (`[3600s]` as `[1h]`, label matchers sorted,
    strings in Go's quoting, its own spacing). Durations become seconds, strings are re-quoted,
    the matchers in braces sorted, tokens joined by one space. Text it cannot read is kept as
    is (it then differs, which the report treats as a doubt, never as a match)."""
    tokens: list[str] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            tokens.append(expr[pos:])
            break
        pos = m.end()
        kind, text = m.lastgroup, m.group(0)
        if kind == "space":
            continue
        if kind == "string":
            with contextlib.suppress(ConfigError, ValueError):  # an escape it does not know: kept
                text = quote(unquote(text, "rule"))
        elif kind == "duration":
            seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text))
            text = promql_duration(seconds)
        tokens.append(text)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] != "{":
            out.append(tokens[i])
            i += 1
            continue
        end = tokens.index("}", i) if "}" in tokens[i:] else len(tokens)
        inner = tokens[i + 1 : end]
        matchers: list[list[str]] = [[]]
        for t in inner:
            if t == ",":
                matchers.append([])
            else:
                matchers[-1].append(t)
        out.append("{" + ",".join(sorted("".join(m) for m in matchers if m)) + "}")
        i = end + 1
    return " ".join(out)


@dataclass(frozen=True)
class LoadedCheck:
    """What the server's rules API says of this report's rules: problems (would-be-safe versions
    cannot rely on the rules) and notes (for the header)."""

    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    found: bool = False  # the rules API lists a rule of these options


# Clocks differ between retire's host and the server's: slack when judging "recent".
CLOCK_SLACK = 60.0


def check_loaded(params: QueryParams, rules: Sequence[RecordingRule] | None, at: float) -> LoadedCheck:
    """Each rule recording this report's names for its selector must be the rule `retire rules`
    prints for these options (its lookback is taken from the rule's own label and checked
    against the report's options elsewhere), in a group with the interval the report assumes,
    healthy, and evaluated within two intervals of the instant (any earlier last evaluation is
    a rule that stopped before the instant). None listed is not a failure: the history may have
    been backfilled without loading the rules; the heartbeats then stand alone."""
    assert params.rules is not None
    if rules is None:
        return LoadedCheck(
            notes=(
                "recording rules not checked against the server's rules API (it did not answer): "
                "relying on the heartbeats",
            )
        )
    problems: list[str] = []
    found = False
    for rollup in (False, True):
        name = recorded_name(params, rollup)
        for rule in rules:
            if rule.record != name:
                continue
            expected = _expected(params, rollup, rule)
            mine = rule.labels.get(RULE_LABEL) == params.matchers
            if not mine and not (rollup and RULE_LABEL not in rule.labels and _same(rule.expr, expected)):
                continue  # another selector's rules (same metric and step)
            found = True
            problems += _rule_problems(params.rules, rollup, rule, expected, at)
    if not found:
        return LoadedCheck(
            notes=(
                f"the server's rules API lists no rule recording {recorded_name(params)} for "
                f"{params.series_selector} (history backfilled without loading the rules, or rules "
                "run elsewhere): relying on the heartbeats",
            )
        )
    return LoadedCheck(problems=tuple(dict.fromkeys(problems)), found=True)


def _rule_problems(
    spec: RuleSpec, rollup: bool, rule: RecordingRule, expected: str | None, at: float
) -> list[str]:
    """What is wrong with one of this report's rules as the server runs it (`expected`: the
    expression `retire rules` prints for it; None: the rule has no readable lookback label)."""
    problems = []
    where = f"the server's rule {rule.record} (group {rule.group!r})"
    fix = "load the rules `retire rules` prints for these options"
    if expected is None:
        problems.append(f"{where} has no {LOOKBACK_LABEL} label (made by an older retire or by hand): {fix}")
    elif not _same(rule.expr, expected):
        problems.append(f"{where} is not the rule `retire rules` prints for these options: {fix}")
    interval = spec.rollup if rollup else spec.interval
    if abs(rule.interval - interval) > 1e-6:
        flag = "--rollup-interval" if rollup else "--rule-interval"
        problems.append(
            f"{where} runs every {format_duration(rule.interval)}, not every "
            f"{format_duration(interval)}: pass {flag} {format_duration(rule.interval)} or {fix}"
        )
    if rule.health == "err":
        error = rule.last_error[:200] or "no error text"
        problems.append(f"{where} failed its last evaluation ({error}): fix the rule or the server")
    late = at - 2 * rule.interval - CLOCK_SLACK
    if rule.last_evaluation is not None and rule.last_evaluation < late:
        problems.append(
            f"{where} last ran {format_duration(round(at - rule.last_evaluation))} before the "
            "report's instant: its group is not running; check the server's rule evaluation"
        )
    return problems


def _expected(params: QueryParams, rollup: bool, rule: RecordingRule) -> str | None:
    """The expression `retire rules` prints for these options; the fine rule's with the rule's
    own lookback (None: it has no readable lookback label)."""
    assert params.rules is not None
    if rollup:
        return render("recorded_recent", params, recorded=recorded_selector(params))
    text = rule.labels.get(LOOKBACK_LABEL)
    lookback = parse_lookback(text) if text is not None else None
    if lookback is None:
        return None
    spec = replace(params.rules, lookback=lookback)
    return render("rule_evidence", replace(params, rules=spec))


def parse_lookback(text: str) -> float | None:
    """A retire_lookback label's value (a PromQL duration) in seconds; None if it is not one."""
    if not re.fullmatch(r"(?:\d+(?:ms|s|m|h|d|w|y))+", text):
        return None
    return sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text))


def _same(actual: str, expected: str | None) -> bool:
    return expected is not None and normalized(actual) == normalized(expected)


def shown_selector(params: QueryParams) -> str:
    """The recorded series of these options, as the reasons name them."""
    return f"{recorded_name(params)}{{{RULE_LABEL}={quote(params.matchers)}}}"

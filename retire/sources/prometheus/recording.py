"""`retire rules`: the Prometheus recording rules behind `--use-recording-rules`.

Without rules a report reads every scrape of every pod over the window, twice or more (README
"Benchmarks"). The rules move that work to the server's rule evaluation, spread over the day:

- a *fine* group, every `interval` (1m), reads the raw series and records per version the rate
  over the step, the first calls of newly born series, counter resets and the series count, plus
  one fleet-wide heartbeat (how many series had a sample), all in one rule (`aspect` label), so
  an evaluation records all of them or none;
- a *rollup* group, every `rollup` (1h), records the maximum of the fine series since the last
  rollup (with an overlap), so a report reads 24 samples a day per version and aspect.

Every recorded series carries the raw matchers it was made from (label `retire_selector`); a
report made with other options finds no recorded series and says so, it never reads the wrong
ones. The YAML is written by hand (JSON-quoted strings are valid YAML), so no YAML library is needed.
"""

from __future__ import annotations

import hashlib
import json

from retire import __version__
from retire.durations import format_duration, promql_duration, short_duration
from retire.sources.prometheus.queries import (
    RULE_LABEL,
    QueryParams,
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
        "labels": {RULE_LABEL: params.matchers},
    }
    rollup = {
        "record": recorded_name(params, rollup=True),
        "expr": render("recorded_recent", params, recorded=recorded_selector(params)),
    }
    return [
        {"name": f"{stem}:fine", "interval": promql_duration(params.rules.interval), "rules": [fine]},
        {"name": f"{stem}:rollup", "interval": promql_duration(params.rules.rollup), "rules": [rollup]},
    ]


GROUPS = ("fine", "rollup")


def rules_yaml(params: QueryParams, command: str, groups: tuple[str, ...] = GROUPS) -> str:
    """A Prometheus rule file (`rule_files:`) that `promtool check rules` accepts. `groups`
    selects groups for a backfill, which must create the fine group's history before the
    rollup group's (the rollups read it back from Prometheus)."""
    assert params.rules is not None
    q = json.dumps
    lines = [
        f"# Recording rules for `retire report --use-recording-rules` (retire {__version__}).",
        f"# Made by: {command}",
        f"# For {params.series_selector}, step {format_duration(params.step)}.",
        "# A report with --use-recording-rules must use the same --metric, labels, --selector and --step.",
        "# The rules must have run for a whole --window before any version can be safe; history can be",
        "# backfilled with `promtool tsdb create-blocks-from rules` (the fine group first: README).",
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

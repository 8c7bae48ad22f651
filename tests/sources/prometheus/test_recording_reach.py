"""Recording-rules mode proves as much as raw mode: the false "safe" verdicts it used to give.

Each scenario has its own raw history (backfilled with `promtool tsdb create-blocks-from
openmetrics`) and rule history made as a user would (`promtool tsdb create-blocks-from rules`,
fine group then rollups), sometimes with a rule outage (the fine history backfilled in two
segments around a skipped span), sometimes with the rules also loaded in the server (its rules
API lists them). Times are relative to END, as in tests/scenarios.py.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from retire.config import Settings, resolve
from retire.config.build import params_from
from retire.lab.servers import Prometheus, backfill, with_recorded_history
from retire.lab.synth import Outage, Scenario, Traffic, VersionDir, make_model_tree, write_openmetrics
from retire.sources.prometheus.client import PrometheusClient
from retire.sources.prometheus.instrument import RecordingRule, learn
from retire.sources.prometheus.recording import check_loaded, normalized
from tests import scenarios as sc
from tests.conftest import Run, run_cli, statuses

pytestmark = pytest.mark.prometheus

HOUR, MIN, DAY = sc.HOUR, sc.MIN, sc.DAY
END = sc.END
RULES_START = END - 30.5 * HOUR


def _scenario(name: str, *traffic: Traffic, model: str) -> Scenario:
    disk = tuple(VersionDir(model, v, age=30 * DAY) for v in ("1", "2", "3"))
    return Scenario(name=name, labels={"scenario": name}, traffic=traffic, disk=disk)


# 1. The only call of m/1 creates its series at -5 h, while the fine rules do not run for 10 min.
CALL = -5 * HOUR + 20
RULEGAP = _scenario(
    "rulegap", Traffic("m", "1", calls=(CALL,)), Traffic("m", "2", calls=(-40 * HOUR,)), model="m"
)
# 2. s/1 serves 5 req/s all day; the rules are made for --step 1m on these 60 s scrapes.
STEPS = _scenario("steps", Traffic("s", "1", qps=5.0), Traffic("s", "2", calls=(-40 * HOUR,)), model="s")
# 4. b/1 takes two bursts of 25 calls an hour apart: one step-long bucket ending at END holds 50.
BURST_A, BURST_B = -3 * HOUR + 10, -2 * HOUR - 30
STRADDLE = _scenario(
    "straddle",
    Traffic("b", "1", calls=(-40 * HOUR, *(BURST_A,) * 25, *(BURST_B,) * 25)),
    Traffic("b", "2", calls=(-40 * HOUR,)),
    model="b",
)
# 5. l/1 is busy, l/2 idle: the rules the server runs are checked against these options'.
LOADED = _scenario("loaded", Traffic("l", "1", qps=1.0), Traffic("l", "2", calls=(-40 * HOUR,)), model="l")
# 3. Rollups that skip fine samples: r/1's only call comes while no rollup reads it.
ROLLUPGAP = _scenario(
    "rollupgap", Traffic("r", "1", calls=(-6 * HOUR,)), Traffic("r", "2", calls=(-40 * HOUR,)), model="r"
)
# 6. t/1 is called on tfs-1 during a 1 h scrape outage, and a restart inside it wipes the counter
# (no later call: it never comes back): without --coverage the targets' holes come from their `up`.
TARGETHOLE = Scenario(
    name="targethole",
    labels={"scenario": "targethole"},
    traffic=(
        Traffic("t", "1", "tfs-0", calls=(-40 * HOUR,)),
        Traffic("t", "1", "tfs-1", calls=(-40 * HOUR, -5.8 * HOUR), restarts=(-5.5 * HOUR,)),
        Traffic("t", "2", "tfs-0", qps=0.1),
    ),
    outages=(Outage(-6 * HOUR, -5 * HOUR, pod="tfs-1"),),
    disk=tuple(VersionDir("t", v, age=30 * DAY) for v in ("1", "2", "3")),
)
# 7. rc/1's counter on tfs-1 (1 call long ago) is wiped by a restart at -5.5 h, and one call 100 s
# later creates it anew at its old value, 1: absent at a successful scrape, flat to rate().
RECREATED = Scenario(
    name="recreated",
    labels={"scenario": "recreated"},
    traffic=(
        Traffic("rc", "1", "tfs-1", calls=(-40 * HOUR, -5.5 * HOUR + 100), restarts=(-5.5 * HOUR,)),
        Traffic("rc", "2", "tfs-0", qps=0.1),
    ),
    disk=tuple(VersionDir("rc", v, age=30 * DAY) for v in ("1", "2", "3")),
)
ALL = (RULEGAP, STEPS, STRADDLE, LOADED, ROLLUPGAP, TARGETHOLE, RECREATED)


@dataclass
class Raw:
    url: str
    tsdb: Path
    root: Path

    def args(self, scenario: Scenario, url: str | None = None) -> list[str]:
        models = self.root / "models" / scenario.name
        if not models.exists():
            make_model_tree(models, scenario, END)
        return [
            "--prometheus",
            url or self.url,
            "--model-dir",
            str(models),
            "--selector",
            f'scenario="{scenario.name}"',
            "--coverage",
            f'up{{scenario="{scenario.name}"}}',
            "--at",
            str(END),
            "--format",
            "json",
        ]


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Raw]:
    root = tmp_path_factory.mktemp("reach")
    om = root / "history.om"
    write_openmetrics(om, ALL, end=END, history=sc.HISTORY, interval=60)
    backfill(om, root / "tsdb")
    with Prometheus(root / "tsdb", root / "raw") as server:
        yield Raw(server.url, root / "tsdb", root)


def _rule_files(root: Path, scenario: Scenario, *args: str) -> tuple[list[Path], list[Path]]:
    files: tuple[list[Path], list[Path]] = ([], [])
    for group, out in zip(("fine", "rollup"), files, strict=True):
        path = root / f"{scenario.name}-{group}.yml"
        run = run_cli(
            "rules", "--selector", f'scenario="{scenario.name}"', "--group", group, "-o", str(path), *args
        )
        assert run.exit_code == 0, run.stderr
        out.append(path)
    return files


@contextmanager
def recorded(
    raw: Raw,
    scenario: Scenario,
    *args: str,
    skip: tuple[float, float] | None = None,
    rollup_skip: tuple[float, float] | None = None,
    loaded: tuple[Path, ...] = (),
) -> Iterator[str]:
    """A Prometheus with the raw history and the rules' (made with `retire rules ARGS`), from
    RULES_START to END; `skip`, `rollup_skip`: spans (relative to END) in which the fine rules or
    the rollups did not run; `loaded`: rule files the server also runs."""
    work = raw.root / f"rules-{scenario.name}-{next(_COUNT)}"
    work.mkdir()
    fine, rollup = _rule_files(work, scenario, *args)
    server = with_recorded_history(
        raw.url,
        raw.tsdb,
        fine,
        rollup,
        RULES_START,
        END,
        work,
        skip=None if skip is None else (END + skip[0], END + skip[1]),
        rollup_skip=None if rollup_skip is None else (END + rollup_skip[0], END + rollup_skip[1]),
        loaded=loaded,
    )
    try:
        yield server.url
    finally:
        server.stop()


_COUNT = itertools.count()


def _report(raw: Raw, scenario: Scenario, url: str, *extra: str) -> Run:
    return run_cli("report", *raw.args(scenario, url), *extra)


def _reasons(run: Run) -> dict[tuple[str, str], str]:
    doc = run.json()
    assert isinstance(doc, dict), run.stderr
    return {(r["model"], r["version"]): r["reason"] for r in doc["rows"]}


# --------------------------------------------------------------------------------------------
# 1. A birth during a gap in the rules' evaluations that --max-gap tolerates.


def test_a_series_born_while_the_rules_did_not_run_is_a_call(raw: Raw) -> None:
    plain = _report(raw, RULEGAP, raw.url)
    assert statuses(plain.json())[("m", "1")] == "in-use"  # raw series: born in the window
    # The fine rules miss 10 minutes (< --max-gap 15m) around the call.
    with recorded(raw, RULEGAP, skip=(CALL - 3 * MIN, CALL + 7 * MIN)) as url:
        rules = _report(raw, RULEGAP, url, "--use-recording-rules")
        wider = _report(raw, RULEGAP, url, "--use-recording-rules", "--max-gap", "30m")
    assert (
        statuses(rules.json())
        == statuses(plain.json())
        == {
            ("m", "1"): "in-use",
            ("m", "2"): "safe",
            ("m", "3"): "protected",
        }
    ), rules.stdout
    assert "first call" in _reasons(rules)[("m", "1")]
    assert "no holes" in rules.json()["header"]["coverage"]  # type: ignore[index]  # the gap is tolerated
    # Rules made for --max-gap 15m cannot cover a report that tolerates 30m: nothing is safe,
    # and the reason says how to make rules that can.
    assert wider.exit_code == 4
    reason = _reasons(wider)[("m", "2")]
    assert statuses(wider.json())[("m", "2")] == "unknown"
    assert "recording rules read back 1h18m" in reason and "--max-gap 30m" in reason
    assert "make the rules with this --max-gap" in reason


# --------------------------------------------------------------------------------------------
# 2. A step that cannot hold two scrapes plus a rule interval.


def test_a_step_too_short_for_the_scrapes_is_refused_or_unknown(raw: Raw) -> None:
    small = ("--step", "1m", "--rule-interval", "30s")
    # Rules made for --step 1m (no server asked), backfilled: a 1m rate window on 60s scrapes
    # holds one sample, so no rate is recorded. The 5 req/s version is still seen (by the
    # rules' increase), and nothing else can be safe, with the reason naming the step.
    with recorded(raw, STEPS, *small) as url:
        run = _report(raw, STEPS, url, "--use-recording-rules", *small)
    found = statuses(run.json())
    assert found[("s", "1")] == "in-use", _reasons(run)[("s", "1")]
    assert found[("s", "2")] == "unknown" and run.exit_code == 4
    reason = _reasons(run)[("s", "2")]
    assert "--step 1m cannot hold two scrapes (the server scrapes every 1m)" in reason
    assert "--step 2m30s or more" in reason
    # Asked to make such rules for a server, `retire rules` refuses, naming the fix.
    refused = run_cli("rules", "--prometheus", raw.url, *small)
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("retire: error: --step 1m cannot hold two scrapes")
    assert "every 1m" in refused.stderr and "raise --step to 2m30s" in refused.stderr
    # Without a server to ask, the file says what it assumed.
    blind = run_cli("rules", *small)
    assert blind.exit_code == 0
    assert "# Assumes every scrape interval is at most 15s" in blind.stdout


def test_rules_learn_the_scrape_interval_from_the_server(raw: Raw) -> None:
    run = run_cli("rules", "--prometheus", raw.url, "--selector", 'scenario="steps"')
    assert run.exit_code == 0, run.stderr
    assert f"# Made for scrape intervals of at most 1m, learned from {raw.url}" in run.stdout
    assert "the longest of the 1 target(s) exporting the metric" in run.stdout


# --------------------------------------------------------------------------------------------
# 3. A rule interval the step cannot hold is refused up front; rollups that leave fine samples
# unread are a hole.


@pytest.mark.parametrize("command", ["rules", "report", "query"])
def test_a_rule_interval_longer_than_the_step_is_refused(command: str, tmp_path: Path) -> None:
    args = ["--use-recording-rules"] if command != "rules" else []
    if command == "report":
        args += ["--prometheus", "http://127.0.0.1:1", "--model-dir", str(tmp_path)]
    run = run_cli(command, *args, "--step", "30m", "--rule-interval", "1h", "--rollup-interval", "2h")
    assert run.exit_code == 2 and run.stdout == ""
    assert run.stderr == (
        "retire: error: --rule-interval (1h) must be shorter than --step (30m): each rule's rate window "
        "(the step) must hold a rule interval plus two scrapes, or calls between windows go unseen; "
        "lower --rule-interval or raise --step\n"
    )


def test_rollups_further_apart_than_their_range_are_a_hole(raw: Raw) -> None:
    """The rollups stop at -6.5 h and start again at -5 h with another phase (a restart): two
    rollups 1.5 rollup intervals apart, so fine samples between them are read by neither. r/1's
    only call comes just after the first; rules must still see it, and the hole must show."""
    plain = _report(raw, ROLLUPGAP, raw.url)
    assert statuses(plain.json())[("r", "1")] == "in-use"
    with recorded(raw, ROLLUPGAP, rollup_skip=(-6.5 * HOUR + 1, -5 * HOUR)) as url:
        run = _report(raw, ROLLUPGAP, url, "--use-recording-rules")
    found = statuses(run.json())
    assert found[("r", "1")] == "in-use", _reasons(run)[("r", "1")]
    assert found[("r", "2")] == "unknown" and run.exit_code == 4
    assert "data gap: no samples of retire:" in _reasons(run)[("r", "2")]
    assert "> one rollup interval" in _reasons(run)[("r", "2")]


# --------------------------------------------------------------------------------------------
# 4. --threshold above 0: calls that straddle the recorded rate's sliding windows.


def busiest_bucket(calls: list[float], at: float, window: float, step: float, scrape: float) -> float:
    """The truth the report is held to: the window split into step-long buckets ending at the
    instant; a call belongs to the bucket of the first scheduled scrape at or after it."""
    counts: dict[int, int] = {}
    for call in calls:
        seen = math.ceil(call / scrape) * scrape  # scrapes at whole multiples (offset 0)
        if at - window < seen <= at:
            k = math.floor((at - seen) / step)
            counts[k] = counts.get(k, 0) + 1
    return max(counts.values(), default=0)


def test_a_busy_step_straddling_two_rate_windows_is_in_use(raw: Raw) -> None:
    threshold = 0.01  # 36 calls per hour-long step
    traffic = STRADDLE.traffic[0]
    calls = [END + c for c in traffic.calls]
    assert busiest_bucket(calls, END, DAY, HOUR, 60) == 50 > threshold * HOUR  # busy
    with recorded(raw, STRADDLE) as url:
        run = _report(raw, STRADDLE, url, "--use-recording-rules", "--threshold", str(threshold))
    rows = {(r["model"], r["version"]): r for r in run.json()["rows"]}  # type: ignore[index]
    assert rows[("b", "1")]["status"] == "in-use", rows[("b", "1")]["reason"]
    assert rows[("b", "1")]["max_qps"] >= 50 / HOUR  # a bound on the busiest step, never less
    assert rows[("b", "2")]["status"] == "safe"  # the control: flat all window


# --------------------------------------------------------------------------------------------
# 5. The rules the server runs, checked against the ones these options print.

BROKEN = """groups:
  - name: hand-made
    interval: 60s
    rules:
      - record: {name}
        expr: vector(1) + on() group_left() (label_replace(vector(1), "x", "a", "", "") or label_replace(vector(1), "x", "b", "", ""))
        labels:
          retire_selector: {selector}
          retire_lookback: 4680s
"""


def test_the_servers_rules_must_be_these_options_and_healthy(raw: Raw, tmp_path: Path) -> None:
    expected = {("l", "1"): "in-use", ("l", "2"): "safe", ("l", "3"): "protected"}
    same = tmp_path / "same.yml"
    other = tmp_path / "other.yml"
    broken = tmp_path / "broken.yml"
    base = ("--selector", 'scenario="loaded"')
    assert run_cli("rules", *base, "-o", str(same)).exit_code == 0
    assert run_cli("rules", *base, "--rule-interval", "30s", "-o", str(other)).exit_code == 0
    params = params_from(run_settings(*base))
    broken.write_text(
        BROKEN.format(
            name="retire:tensorflow:serving:model_call_count:evidence1h", selector=_yaml(params.matchers)
        )
    )
    results: dict[str, Run] = {}
    for name, files in (("none", ()), ("same", (same,)), ("other", (other,)), ("broken", (broken,))):
        with recorded(raw, LOADED, loaded=files) as url:
            _wait_evaluated(url, files)
            results[name] = _report(raw, LOADED, url, "--use-recording-rules")
    # Made for another --rule-interval: its group runs every 30s, and its expression differs.
    other_run = results["other"]
    assert statuses(other_run.json())[("l", "2")] == "unknown" and other_run.exit_code == 4
    reason = _reasons(other_run)[("l", "2")]
    assert "runs every 30s, not every 1m: pass --rule-interval 30s" in reason
    assert "is not the rule `retire rules` prints for these options" in reason
    # Failing its evaluations.
    broken_run = results["broken"]
    assert statuses(broken_run.json())[("l", "2")] == "unknown"
    reason = _reasons(broken_run)[("l", "2")]
    assert "failed its last evaluation (found duplicate series" in reason and "many-to-many" in reason
    assert statuses(broken_run.json())[("l", "1")] == "in-use"  # positive evidence stays
    # Loaded and the same: nothing to say.
    same_run = results["same"]
    assert statuses(same_run.json()) == expected and same_run.exit_code == 0, same_run.stdout
    assert not any("rule" in n for n in same_run.json()["header"]["notes"])  # type: ignore[index]
    # Not loaded (history backfilled only): said in the header, not a failure.
    none = results["none"]
    assert statuses(none.json()) == expected and none.exit_code == 0
    assert any("lists no rule recording" in n for n in none.json()["header"]["notes"])  # type: ignore[index]


def test_a_rule_that_stopped_before_the_instant_is_a_problem() -> None:
    params = params_from(run_settings("--selector", 'scenario="loaded"'))
    from retire.sources.prometheus.recording import rule_groups

    fine, rollup = (g["rules"][0] for g in rule_groups(params))  # type: ignore[index]
    at = 1_800_000_000.0

    def rule(
        spec: dict[str, object], interval: float, last: float | None, health: str = "ok"
    ) -> RecordingRule:
        return RecordingRule(
            "g", interval, str(spec["record"]), str(spec["expr"]), dict(spec["labels"]), health, "", last
        )  # type: ignore[arg-type]

    fresh = (rule(fine, 60, at - 30), rule(rollup, 3600, None, "unknown"))  # the rollup not run yet
    assert check_loaded(params, fresh, at).problems == ()
    stale = (rule(fine, 60, at - 600), rule(rollup, 3600, at - 1200))
    (problem,) = check_loaded(params, stale, at).problems
    assert (
        "evidence1h (group 'g') last ran 10m before the report's instant: its group is not running" in problem
    )
    later = check_loaded(params, stale, at - 3600)  # an instant before the rules stopped
    assert later.problems == ()


def test_rules_read_back_from_the_server_compare_in_one_spelling() -> None:
    """Prometheus re-renders a rule: durations in its units, label matchers sorted, Go quoting."""
    ours = 'sum by (a) (rate(m{b!="",a="x\\"y",c=~"é\\t"}[3600s] offset 120s))'
    theirs = 'sum by (a) (rate(m{a="x\\"y",b!="",c=~"é\\t"}[1h] offset 2m))'
    assert normalized(ours) == normalized(theirs)
    assert normalized(ours) != normalized(theirs.replace("[1h]", "[59m]"))
    assert normalized("max_over_time(x[1h2m])") == normalized("max_over_time( x [3720s] )")


def run_settings(*args: str) -> Settings:
    flags = {k.lstrip("-").replace("-", "_"): v for k, v in zip(args[::2], args[1::2], strict=True)}
    return resolve({**flags, "use_recording_rules": True}, env={})


def _yaml(text: str) -> str:
    return json.dumps(text)


def _wait_evaluated(url: str, files: tuple[Path, ...]) -> None:
    """Until the loaded fine rules have run once (they run every minute)."""
    if not files:
        return
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with PrometheusClient(url, timeout=5) as client:
            rules = learn(client, time.time()).rules or ()
        fine = [r for r in rules if r.interval < 3600]
        if fine and all(r.last_evaluation is not None for r in fine):
            return
        time.sleep(1)
    raise AssertionError("the loaded rules never ran")


# --------------------------------------------------------------------------------------------
# 6. Without --coverage, each target's holes come from its `up`, with recording rules too.


def test_a_restart_inside_a_targets_hole_is_unknown_with_rules(raw: Raw) -> None:
    args = raw.args(TARGETHOLE)
    i = args.index("--coverage")
    del args[i : i + 2]
    with recorded(raw, TARGETHOLE) as url:
        args[args.index("--prometheus") + 1] = url
        run = run_cli("report", *args, "--use-recording-rules")
    assert run.exit_code == 4, run.stderr
    assert statuses(run.json())[("t", "1")] == "unknown"
    reason = _reasons(run)[("t", "1")]
    assert 'instance="tfs-1"' in reason and "was down (up = 0)" in reason, reason


def test_a_series_created_anew_at_its_old_value_is_in_use_in_raw_mode(raw: Raw) -> None:
    """Raw mode sees rc/1 absent at a successful scrape of its target (`series_count` against
    `sum_over_time(up)`): created anew, its value since is a call."""
    run = _report(raw, RECREATED, raw.url)
    assert statuses(run.json())[("rc", "1")] == "in-use", _reasons(run)[("rc", "1")]


def test_a_series_created_anew_at_its_old_value_is_not_safe_with_rules(raw: Raw) -> None:
    """The fine rule's `recreated` aspect: rc/1 present at both ends of the lookback with fewer
    samples than its target's successful scrapes; its value since is calls (a false safe before)."""
    with recorded(raw, RECREATED) as url:
        run = _report(raw, RECREATED, url, "--use-recording-rules")
    assert statuses(run.json())[("rc", "1")] == "in-use", _reasons(run)[("rc", "1")]

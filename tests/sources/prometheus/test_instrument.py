"""What the server says of how its data was made (retire.sources.prometheus.instrument).

Against a real Prometheus 2.42 started with a real config file (scrape jobs with different
intervals scraping a tiny local exporter) and a rule file; a real VictoriaMetrics; real hostile
servers answering 404, HTML, malformed JSON, an error or nothing at all. The YAML reader is tested
on the text Prometheus writes back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from retire.config import resolve
from retire.config.build import params_from
from retire.errors import PrometheusError
from retire.lab.servers import Prometheus, VictoriaMetrics, free_port, scrape_job
from retire.sources.prometheus.client import PrometheusClient
from retire.sources.prometheus.instrument import Instrument, _Unlearned, learn, read_answers
from retire.sources.prometheus.recording import check_loaded
from retire.sources.prometheus.scrape_config import config_intervals
from tests import hostile_servers as hs
from tests.conftest import run_cli

# --------------------------------------------------------------------------------------------
# The YAML reader, on the text servers write back.

PROMETHEUS_242 = """global:
  scrape_interval: 1m
  scrape_timeout: 10s
  evaluation_interval: 20s
rule_files:
- rules.yml
scrape_configs:
- job_name: self
  honor_timestamps: true
  scrape_interval: 5s
  scrape_timeout: 5s
  metrics_path: /metrics
  static_configs:
  - targets:
    - 127.0.0.1:19391
  relabel_configs:
  - source_labels: [__address__]
    regex: scrape_interval: (.*)
    target_label: scrape_interval
    replacement: 1h
- job_name: other job
  honor_timestamps: true
  scrape_interval: 1m30s
  static_configs:
  - targets:
    - 127.0.0.1:1
- job_name: 'quoted: ''name'''
  scrape_interval: 500ms
- job_name: "tab\\tname"
  scrape_interval: 2h
"""

# yaml.v3 (newer Prometheus) indents lists under their key.
INDENTED = """global:
    scrape_interval: 15s
scrape_configs:
    - job_name: a
      scrape_interval: 30s
      static_configs:
        - targets: [x:1]
    - job_name: b
      metrics_path: /m
"""


def test_config_reader_takes_each_jobs_own_interval_and_the_global_one() -> None:
    default, jobs = config_intervals(PROMETHEUS_242)
    assert default == 60.0
    assert jobs == {"self": 5.0, "other job": 90.0, "quoted: 'name'": 0.5, "tab\tname": 7200.0}
    default, jobs = config_intervals(INDENTED)
    assert default == 15.0
    assert jobs == {"a": 30.0, "b": 15.0}  # b: no interval of its own, so the global one
    assert config_intervals("scrape_configs:\n- job_name: x\n") == (None, {})


LOOKBACK = "a target that stopped is taken as replaced only if another was scraped right after it"


def test_answers_of_each_shape_become_values_or_notes() -> None:
    """The readers on answers as servers give them (what a proxy or another backend sends)."""
    vm = read_answers(
        {
            "/api/v1/targets": {"activeTargets": [], "droppedTargets": []},
            "/api/v1/status/config": {"yaml": ""},
            "/api/v1/rules": {"groups": []},
            "/api/v1/status/tsdb": {"totalSeries": 0},
            "/api/v1/status/runtimeinfo": _Unlearned("HTTP 400 with text/plain, not JSON"),
            "/api/v1/status/flags": _Unlearned("HTTP 400 with text/plain, not JSON"),
        }
    )
    assert vm.rules == () and vm.head_start is None and vm.default_interval is None
    assert vm.lookback is None
    assert vm.notes == (
        "scrape intervals not learned (/api/v1/status/config: the configuration is empty)",
        "retention not learned (/api/v1/status/runtimeinfo: HTTP 400 with text/plain, not JSON)",
        f"query lookback not learned (/api/v1/status/flags: HTTP 400 with text/plain, not JSON): {LOOKBACK}",
    )
    odd = read_answers(
        {
            "/api/v1/targets": [1, 2],
            "/api/v1/status/config": {"yaml": "global:\n  scrape_interval: soon\n"},
            "/api/v1/rules": {"groups": [{"name": "g", "rules": []}]},
            "/api/v1/status/tsdb": {"headStats": {"minTime": "x"}},
            "/api/v1/status/runtimeinfo": {"storageRetention": 15},
            "/api/v1/status/flags": {"query.lookback-delta": "never"},
        }
    )
    assert odd.rules is None and odd.retention is None and odd.default_interval is None
    assert odd.notes == (
        "scrape intervals not learned (/api/v1/targets: the targets answer is not a JSON object; "
        "/api/v1/status/config: 'soon' is not a duration)",
        "recording rules not learned (/api/v1/rules: rule group 'g' has no numeric 'interval')",
        "retention not learned (/api/v1/status/runtimeinfo: 'storageRetention' is not text)",
        "TSDB status not learned (/api/v1/status/tsdb: 'headStats.minTime' is not a number)",
        f"query lookback not learned (/api/v1/status/flags: 'never' is not a duration): {LOOKBACK}",
    )
    ok = {"/api/v1/targets": {"activeTargets": []}, "/api/v1/status/config": {"yaml": "global: {}"}}
    ok |= {"/api/v1/rules": {"groups": []}, "/api/v1/status/tsdb": {}}
    ok |= {"/api/v1/status/flags": {"query.lookback-delta": "2m30s", "web.enable-lifecycle": "false"}}
    sized = read_answers({**ok, "/api/v1/status/runtimeinfo": {"storageRetention": "30d or 10GiB"}})
    assert sized.retention == 30 * 86400 and sized.lookback == 150
    assert sized.notes == ("scrape intervals not learned (the server names none)",)
    sized_only = read_answers({**ok, "/api/v1/status/runtimeinfo": {"storageRetention": "10GiB"}})
    assert sized_only.retention is None


def test_own_jobs_are_those_without_honor_labels() -> None:
    """A job with honor_labels keeps the job labels of what it scrapes (federation): the `up`
    series it carries are not this server's own targets, so their staleness markers say nothing
    of service discovery."""
    from retire.sources.prometheus.scrape_config import own_jobs

    text = (
        "global:\n  scrape_interval: 1m\nscrape_configs:\n"
        "- job_name: tfs\n  honor_labels: false\n  relabel_configs:\n  - honor_labels: true\n"
        "- job_name: federate\n  honor_labels: true\n"
        "- job_name: 'plain'\n"
    )
    assert own_jobs(text) == {"tfs", "plain"}


def test_interval_falls_back_from_target_to_job_to_global() -> None:
    inst = Instrument({("a", "x:1"): 5.0}, {"a": 10.0, "b": 20.0}, 60.0, None, None, None, ())
    assert inst.interval("a", "x:1") == 5.0
    assert inst.interval("a", "x:2") == 10.0
    assert inst.interval("c", "x:3") == 60.0
    assert inst.longest_of([("a", "x:1"), ("b", "y:1")]) == 20.0
    assert inst.longest_of([]) == 60.0  # nothing named: the longest the server names anywhere


# --------------------------------------------------------------------------------------------
# Real servers.


@contextmanager
def exporter() -> Iterator[str]:
    """A tiny real exporter: one gauge, host:port."""

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"# TYPE tiny gauge\ntiny 1\n"
            self.send_response(200)
            self.send_header("content-type", "text/plain; version=0.0.4")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


RULES = """groups:
  - name: fast
    interval: 2s
    rules:
      - record: job:tiny:sum
        expr: sum by (job) (tiny)
        labels:
          team: "ml"
  - name: broken
    interval: 2s
    rules:
      - record: broken:tiny
        expr: vector(1) + on() group_left() (label_replace(vector(1), "x", "a", "", "") or label_replace(vector(1), "x", "b", "", ""))
      - alert: NotARecordingRule
        expr: tiny > 5
"""


@pytest.mark.prometheus
def test_a_real_prometheus_says_its_intervals_rules_and_retention(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    # retire's own rules for a selector Prometheus re-renders (matchers sorted, Go quoting).
    selector = 'job="t\\"fs",ns=~"a|b",x="é\tz"'
    mine = tmp_path / "retire.yml"
    assert run_cli("rules", "--selector", selector, "-o", str(mine)).exit_code == 0
    with exporter() as target:
        jobs = scrape_job("fast", target, "1s") + scrape_job("slow", target, "2s")
        # A job without an interval of its own scrapes at the global one (60s).
        jobs += f"  - job_name: default\n    static_configs:\n      - targets: ['{target}']\n"
        with Prometheus(tmp_path / "tsdb", tmp_path / "prom", scrape=jobs, rules=(rules, mine)) as server:
            client = PrometheusClient(server.url, timeout=10)
            deadline = time.monotonic() + 30
            while True:  # until the targets are discovered and both groups have run once
                inst = learn(client, time.time())
                ran = inst.rules and all(r.last_evaluation for r in inst.rules)
                if (ran and len(inst.target_intervals) == 3) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            client.close()
    assert inst.notes == ()
    assert inst.lookback == 300  # Prometheus's default --query.lookback-delta
    assert inst.target_intervals == {("fast", target): 1.0, ("slow", target): 2.0, ("default", target): 60.0}
    assert inst.job_intervals == {"fast": 1.0, "slow": 2.0, "default": 60.0}
    assert inst.default_interval == 60.0
    assert inst.retention == 30 * 86400  # the lab's --storage.tsdb.retention.time
    assert inst.interval("slow", target) == 2.0 and inst.interval("gone", "x:1") == 60.0
    assert inst.rules is not None
    by_name = {r.record: r for r in inst.rules if not r.record.startswith("retire:")}
    assert set(by_name) == {"job:tiny:sum", "broken:tiny"}  # the alert is not a recording rule
    # retire's rules, read back as the server renders them, are the ones these options print.
    params = params_from(resolve({"selector": selector, "use_recording_rules": True}, env={}))
    check = check_loaded(params, inst.rules, time.time())
    assert check.found and check.problems == (), check
    ok, broken = by_name["job:tiny:sum"], by_name["broken:tiny"]
    assert (ok.group, ok.interval, ok.health, dict(ok.labels)) == ("fast", 2.0, "ok", {"team": "ml"})
    assert ok.expr == "sum by (job) (tiny)"  # as the server renders it
    assert ok.last_evaluation is not None and abs(ok.last_evaluation - time.time()) < 60
    assert broken.health == "err" and "many-to-many" in broken.last_error


@pytest.mark.prometheus
def test_victoria_metrics_answers_some_and_the_rest_are_notes(tmp_path: Path) -> None:
    with VictoriaMetrics(tmp_path / "vm") as server, PrometheusClient(server.url, timeout=10) as client:
        inst = learn(client, time.time())
    assert inst.rules == ()  # a rules API with no groups: it runs no rules itself
    assert inst.target_intervals == {} and inst.default_interval is None and inst.retention is None
    assert inst.notes == (
        "scrape intervals not learned (/api/v1/status/config: the configuration is empty)",
        "retention not learned (/api/v1/status/runtimeinfo: HTTP 400 with text/plain, not JSON)",
        f"query lookback not learned (/api/v1/status/flags: HTTP 400 with text/plain, not JSON): {LOOKBACK}",
    )


def _status_only(answer: hs.Answer) -> hs.Handler:
    """A Prometheus for the query API whose status APIs all answer `answer`."""

    def handler(request: hs.Request) -> hs.Answer:
        return answer if request.path.endswith(hs.STATUS_PATHS) else hs.normal(request)

    return handler


HOSTILE = {
    "404": (hs.Answer(404, b"404 page not found", "text/plain"), "HTTP 404 with text/plain, not JSON"),
    "html": (hs.Answer(200, b"<html>Grafana login</html>", "text/html"), "HTTP 200 with text/html, not JSON"),
    "malformed": (
        hs.Answer(200, b'{"status": "success", "data": {'),
        "HTTP 200 with application/json, not JSON",
    ),
    "error": (
        hs.Answer(400, json.dumps({"status": "error", "errorType": "bad_data", "error": "nope"}).encode()),
        "rejected the query: bad_data: nope (HTTP 400)",
    ),
    "wrong JSON": (
        hs.Answer(200, json.dumps({"status": "success", "data": [1]}).encode()),
        "is not a JSON object",
    ),
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_odd_status_answers_are_notes_in_the_report_header(kind: str, tmp_path: Path) -> None:
    answer, words = HOSTILE[kind]
    with hs.serve(_status_only(answer)) as url, PrometheusClient(url, timeout=5) as client:
        inst = learn(client, time.time())
        models = tmp_path / "models"
        (models / "m" / "1").mkdir(parents=True)
        run = run_cli("report", "--prometheus", url, "--model-dir", str(models), "--format", "json")
    assert inst.rules is None and inst.target_intervals == {} and inst.retention is None
    assert len(inst.notes) == 5 and all(words in n for n in inst.notes), inst.notes
    assert [n.split(" (")[0] for n in inst.notes] == [
        "scrape intervals not learned",
        "recording rules not learned",
        "retention not learned",
        "TSDB status not learned",
        "query lookback not learned",
    ]
    assert run.exit_code in (0, 4), run.stderr  # a note, never a failed run
    assert set(inst.notes) <= set(json.loads(run.stdout)["header"]["notes"])


def test_a_hanging_status_api_is_a_note_within_the_timeout() -> None:
    release = threading.Event()

    def hang(request: hs.Request) -> hs.Answer:
        if request.path.endswith(hs.STATUS_PATHS):
            release.wait(30)
        return hs.normal(request)

    with hs.serve(hang) as url, PrometheusClient(url, timeout=1) as client:
        started = time.monotonic()
        try:
            inst = learn(client, time.time())
        finally:
            release.set()
        took = time.monotonic() - started
    assert took < 5, took  # all asked at once: one timeout, not five
    assert any("did not answer within 1s" in n for n in inst.notes), inst.notes
    assert inst.rules is None


def test_a_dead_server_fails_as_every_query_would() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with PrometheusClient(url, timeout=2) as client, pytest.raises(PrometheusError, match="cannot reach"):
        learn(client, time.time())


def test_status_apis_are_asked_with_the_runs_credentials(tmp_path: Path) -> None:
    seen: list[hs.Request] = []
    with hs.serve(hs.normal, log=seen) as url:
        run = run_cli(
            "report",
            "--prometheus",
            url,
            "--model-dir",
            str(tmp_path),
            "--header",
            "X-Scope-OrgID: t1",
            "--format",
            "json",
        )
    assert run.exit_code in (0, 4), run.stderr
    asked = [r for r in seen if r.path.endswith(hs.STATUS_PATHS)]
    assert {r.path for r in asked} == set(hs.STATUS_PATHS)
    assert all(r.method == "GET" and r.headers.get("X-Scope-OrgID") == "t1" for r in asked)
    assert {r.form.get("type") for r in asked if r.path.endswith("/rules")} == {"record"}


def test_get_json_returns_the_data_of_a_success() -> None:
    body = json.dumps({"status": "success", "data": {"yaml": "global: {}"}}).encode()
    with hs.serve(lambda r: hs.Answer(200, body)) as url, PrometheusClient(url, timeout=5) as client:
        assert client.get_json("/api/v1/status/config") == {"yaml": "global: {}"}

"""A live tail for backfilled history: data that keeps arriving after the history ends.

Backfilled history stops at its end instant; a report made later at the present would rightly
find the data ending before the window's end (a hole there hides calls for good) and call
nothing safe. Production data does not stop, so the demo and the tests that evaluate at the
present (offload re-checks there) pair the history with a live exporter: a process that serves
each scenario pod's counters as they stand now (the same `synth` model the history came from),
which Prometheus scrapes with the same target labels (`job`, `instance`, the scenario's labels),
so the live samples continue the backfilled series and their `up` series.

The exporter runs as its own process (`python -m retire.lab.live`), so a busy test process never
delays a scrape.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from retire.lab.servers import _Server
from retire.lab.synth import Scenario


def exposition(scenario: Scenario, pod: str, t: float) -> str:
    """The pod's counters at relative time t (seconds after the history's end), in Prometheus's
    text format, without the target labels (Prometheus attaches those)."""
    import numpy as np

    from retire.lab.synth import _counter, _label_text, _value

    lines = [f"# TYPE {scenario.metric} untyped"]
    for tr in scenario.traffic:
        if tr.pod != pod:
            continue
        values, exists = _counter(np.array([t]), tr)
        if not exists[0] or (tr.vanish is not None and t >= tr.vanish):
            continue
        labels = _label_text(
            {scenario.model_label: tr.model, scenario.version_label: tr.version, **dict(tr.labels)}
        )
        lines.append(f"{scenario.metric}{{{labels}}} {_value(values[0])}")
    return "\n".join(lines) + "\n"


def scrape_config(scenarios: Sequence[Scenario], exporter: str, interval: str = "5s") -> str:
    """`scrape_configs` entries (YAML) for `Prometheus(scrape=...)`: one target per scenario pod,
    with the target labels its backfilled history carries. `exporter`: host:port."""
    out = []
    for i, scenario in enumerate(scenarios):
        out += [
            f"  - job_name: live-{i}",
            f"    scrape_interval: {interval}",
            f"    scrape_timeout: {interval}",
            "    static_configs:",
        ]
        for j, pod in enumerate(scenario.pods):
            path = f"/metrics/{i}/{j}"
            labels = {"job": scenario.job, "instance": pod, **scenario.labels, "__metrics_path__": path}
            out.append(f"      - targets: ['{exporter}']")
            out.append(
                "        labels: {" + ", ".join(f'"{k}": "{_yaml(v)}"' for k, v in labels.items()) + "}"
            )
    return "\n".join(out) + "\n"


def wait_scraped(url: str, selector: str, after: float, timeout: float = 60.0) -> None:
    """Wait until every series of `selector` (an `up` selector) has a sample after `after`: the
    live tail has begun."""
    import httpx

    from retire.lab.servers import LabError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{url}/api/v1/query", params={"query": f"timestamp({selector})"}, timeout=5
        ).json()
        result = answer.get("data", {}).get("result", [])
        if result and all(float(r["value"][1]) > after for r in result):
            return
        time.sleep(0.5)
    raise LabError(f"no live scrape of {selector} after {timeout:.0f}s")


def _yaml(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class LiveExporter(_Server):
    """The exporter process for `scenarios`, whose history ends at `end` (Unix seconds)."""

    name = "live-exporter"
    ready_path = "/ready"

    def __init__(self, scenarios: Sequence[Scenario], end: float, workdir: Path) -> None:
        super().__init__(workdir)
        self.scenarios = tuple(scenarios)
        self.end = end

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        state = self.workdir / "scenarios.pickle"
        state.write_bytes(pickle.dumps(self.scenarios))
        return [sys.executable, "-m", "retire.lab.live", str(state), str(self.end), str(self.port)]


def serve(scenarios: Sequence[Scenario], end: float, port: int) -> None:
    def _known(parts: list[str]) -> bool:
        if len(parts) != 3 or parts[0] != "metrics" or not (parts[1].isdigit() and parts[2].isdigit()):
            return False
        return int(parts[1]) < len(scenarios) and int(parts[2]) < len(scenarios[int(parts[1])].pods)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if parts == ["ready"]:
                body, status = b"ok\n", 200
            elif _known(parts):
                scenario = scenarios[int(parts[1])]
                text = exposition(scenario, scenario.pods[int(parts[2])], time.time() - end)
                body, status = text.encode(), 200
            else:
                body, status = b"not found\n", 404
            self.send_response(status)
            self.send_header("content-type", "text/plain; version=0.0.4")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve scenario counters as they stand now.")
    parser.add_argument("scenarios", type=Path)
    parser.add_argument("end", type=float)
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    scenarios = pickle.loads(args.scenarios.read_bytes())  # our own file, written by LiveExporter
    serve(scenarios, args.end, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A pod that service discovery dropped is told by Prometheus's own staleness markers.

The only replica of a deployment is replaced: its `up` ends on a good scrape and no other
target of its pipeline is scraped right after it (the successor comes later, or, here, the other
target is in another cluster, which cannot vouch for it). Before, such a target stayed "not shown
to be replaced" for a whole window and every report was unknown. Prometheus ends each series of
a dropped target with a staleness marker at its next scrape time (never on shutdown, nor for data
lost on the way, which the backfilled labs of tests/attacks_21 and the oracle keep covering): an
instant query just after it finds no `up` although its last sample is within the lookback.

Real Prometheus scraping two real HTTP exporters every second; the pod is dropped by rewriting
its file_sd file, as Kubernetes discovery would drop a deleted pod.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from retire.lab.live import wait_scraped
from retire.lab.servers import FileExporter, LabError, Prometheus
from tests.conftest import rows, run_cli, statuses

pytestmark = pytest.mark.prometheus

METRIC = ":tensorflow:serving:model_call_count"
WINDOW = 30  # seconds of history the report reads; the dropped pod ran longer than that


@dataclass
class Fleet:
    url: str
    models: Path
    dropped: str  # the dropped pod's instance
    dropped_at: float  # when its staleness marker was seen


def _query(url: str, promql: str) -> list[dict[str, object]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    return answer["data"]["result"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("staleness")
    old = time.time() - 10 * 86400
    for version in ("1", "2", "3"):
        path = root / "models" / "a" / version
        path.mkdir(parents=True)
        (path / "saved_model.pb").write_bytes(b"\0" * 64)
        os.utime(path, (old, old))
    pod = FileExporter(root / "pod", f'{METRIC}{{model_name="a",model_version="1"}} 5\n')
    west = FileExporter(root / "west", f'{METRIC}{{model_name="a",model_version="1"}} 0\n')
    with pod, west:
        sd = root / "pods.json"
        sd.write_text(json.dumps([{"targets": [f"127.0.0.1:{pod.port}"], "labels": {"cluster": "east"}}]))
        scrape = (
            "  - job_name: serving\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
            f"    file_sd_configs:\n      - files: ['{sd}']\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{west.port}']\n"
            "        labels: {cluster: west}\n"
        )
        (root / "tsdb").mkdir()
        with Prometheus(root / "tsdb", root / "prometheus", scrape=scrape) as server:
            instance = f"127.0.0.1:{pod.port}"
            wait_scraped(server.url, f'up{{instance="{instance}"}}', 0)
            time.sleep(WINDOW + 3)  # the pod's history covers the whole window
            tmp = sd.with_suffix(".tmp")
            tmp.write_text("[]")
            tmp.replace(sd)  # service discovery drops the pod
            deadline = time.monotonic() + 30
            while _query(server.url, f'up{{instance="{instance}"}}'):
                if time.monotonic() > deadline:
                    raise LabError("Prometheus wrote no staleness marker for the dropped pod in 30s")
                time.sleep(0.5)
            time.sleep(2)  # the report's instant is past the marker's time
            yield Fleet(server.url, root / "models", instance, time.time())


@pytest.mark.parametrize(
    "extra",
    [(), ("--coverage", 'up{job="serving"}'), ("--threshold", "0.5")],
    ids=["raw", "coverage", "threshold"],
)
def test_a_pod_that_service_discovery_dropped_is_gone_not_a_doubt(
    fleet: Fleet, extra: tuple[str, ...]
) -> None:
    run = run_cli(
        "report", "--prometheus", fleet.url, "--model-dir", str(fleet.models), "--format", "json",
        "--window", f"{WINDOW}s", "--max-gap", "10s", "--step", "10s", *extra,
    )  # fmt: skip
    assert run.exit_code == 0, run.stdout + run.stderr
    doc = run.json()
    assert statuses(doc) == {("a", "1"): "safe", ("a", "2"): "safe", ("a", "3"): "protected"}, rows(doc)
    assert isinstance(doc, dict)
    assert fleet.dropped in json.dumps(doc["header"]), doc["header"]

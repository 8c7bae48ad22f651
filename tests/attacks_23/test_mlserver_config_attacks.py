"""Attacks on the MLServer preset (`--preset mlserver`) and on the protobuf config reader (#23).

Claims attacked: (1) with `--preset mlserver` no version a client calls is ever `safe`; (2) TF
Serving's --model-config and Triton's config.pbtxt are read as the servers read them, or refused
with one line (exit 2); every wait bounded. Each strict xfail is an attack that works; the plain
tests are attacks that held.

The MLServer attacks run against a real MLServer 1.7.1 (retire.lab.mlserver) scraped every second
by a real Prometheus, as tests/e2e/test_mlserver.py does (one server for the module, ~35 s):

| folder        | model-settings.json                     | what the clients do                     |
|---------------|-----------------------------------------|-----------------------------------------|
| ranker-1, -2  | ranker "1", "2"                         | ranker/1 called (control: ranker/2 safe)|
| u/, u/loop->. | no name, no version; a symlink to `.`   | call model "loop": MLServer's recursive |
|               |                                         | glob follows the loop, names it "loop"  |
| a1, a2        | a "1" (a1 holds weights.txt), a "2"     | a/1 called once before the window       |
| b             | no name, `parameters.uri: "../a1"`      | call model "b", which loads a1's weights|
| m2; x/        | m2: no name; x/model-settings.json is a | call model "x", whose settings file is  |
|               | symlink to ../m2/model-settings.json    | m2's                                    |
| g1, g2        | g "1", "2"                              | gRPC calls naming no version (label "") |

u, m2, g/1 and g/2 are called once by their own names before the window too, so each has a series
flat in the window: without one, the rule for models with no series at all while Prometheus has
names with no directory ("loop") makes them unknown, which hides the attacks only by chance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from retire.errors import InventoryError
from retire.lab.mlserver import MODEL_PY, MLServer, write_model
from retire.lab.servers import Prometheus, scrape_job
from retire.sources.disk.server_configs import read_tfserving_config, read_triton_policy
from tests.conftest import run_cli, statuses
from tests.fake_servers import full_answer, serve

WINDOW = 20.0
OFFSETS = (3, 9, 15)

FROM_URI = '''

class FromUri(Echo):
    """Loads its weights from `parameters.uri`, as MLServer's runtimes (sklearn, xgboost...) do."""

    async def load(self) -> bool:
        import os

        from mlserver.utils import get_model_uri

        uri = await get_model_uri(self.settings)
        with open(os.path.join(uri, "weights.txt")) as f:
            self.weights = f.read()
        return True
'''

GRPC_CALL = """
import sys, grpc
from mlserver.grpc import dataplane_pb2 as pb, dataplane_pb2_grpc as rpc
stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(sys.argv[1]))
tensor = pb.ModelInferRequest.InferInputTensor(
    name="X", datatype="FP32", shape=[1], contents=pb.InferTensorContents(fp32_contents=[1.0]))
print(stub.ModelInfer(pb.ModelInferRequest(model_name=sys.argv[2], inputs=[tensor]), timeout=30).model_version)
"""


def _settings(repo: Path, folder: str, settings: dict[str, object], py: str = MODEL_PY) -> Path:
    path = repo / folder
    path.mkdir(parents=True, exist_ok=True)
    (path / "model-settings.json").write_text(json.dumps(settings))
    (path / "echo.py").write_text(py)
    return path


def _query(url: str, promql: str) -> list[dict[str, object]]:
    answer = httpx.post(url + "/api/v1/query", data={"query": promql}, timeout=10).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@dataclass
class World:
    statuses: dict[tuple[str, str], str]
    reasons: dict[tuple[str, str], str]
    exit_code: int
    facts: dict[str, object] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("mlsattack")
    repo = root / "repo"
    write_model(repo, "ranker-1", "ranker", "1")
    write_model(repo, "ranker-2", "ranker", "2")
    write_model(repo, "u", None, None)
    (repo / "u" / "loop").symlink_to(".")
    write_model(repo, "a1", "a", "1")
    (repo / "a1" / "weights.txt").write_text("the weights of a/1\n")
    write_model(repo, "a2", "a", "2")
    uri = {"implementation": "echo.FromUri", "parameters": {"uri": "../a1"}}
    _settings(repo, "b", uri, MODEL_PY + FROM_URI)
    write_model(repo, "m2", None, None)
    (repo / "x").mkdir()
    (repo / "x" / "echo.py").write_text(MODEL_PY)
    (repo / "x" / "model-settings.json").symlink_to("../m2/model-settings.json")
    write_model(repo, "g1", "g", "1")
    write_model(repo, "g2", "g", "2")
    with MLServer(repo, root / "mlserver") as server:
        facts: dict[str, object] = {"index": server.index()}
        job = scrape_job("mlserver", server.metrics_target, "1s")
        with Prometheus(root / "tsdb", root / "prometheus", scrape=job) as prometheus:
            url = prometheus.url
            _wait_for("the first scrape", lambda: bool(_query(url, 'up{job="mlserver"} == 1')))
            # Before the window, one call to each victim by its own name: each has a series, flat
            # in the window (so no rule about models without any series hides the attacks).
            for model, version in [
                ("ranker", "1"),
                ("u", None),
                ("a", "1"),
                ("m2", None),
                ("g", "1"),
                ("g", "2"),
            ]:
                assert server.infer(model, version) == 200, (model, version)
            _wait_for(
                "the victims scraped", lambda: len(_query(url, "model_infer_request_duration_count")) >= 6
            )
            start = float(int(time.time()) + 2)
            answers: dict[str, list[object]] = {}
            for off in OFFSETS:
                time.sleep(max(0.0, start + off - time.time()))
                for model, version in [("ranker", "1"), ("loop", None), ("b", None), ("x", None)]:
                    answers.setdefault(f"{model}/{version}", []).append(server.infer(model, version))
                grpc = subprocess.run(
                    [str(server.python), "-c", GRPC_CALL, f"127.0.0.1:{server.grpc_port}", "g"],
                    capture_output=True, text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")},
                )  # fmt: skip
                answers.setdefault("g/grpc", []).append(grpc.stdout.strip() or grpc.stderr[-300:])
            facts["answers"] = answers
            time.sleep(max(0.0, start + WINDOW + 2 - time.time()))
            facts["counts"] = {
                line.split("{", 1)[1].rsplit("}", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in server.metrics().splitlines()
                if line.startswith("model_infer_request_duration_count{")
            }
            facts["series"] = sorted(
                json.dumps(s["metric"], sort_keys=True)
                for s in _query(url, "model_infer_request_duration_count")
            )
            run = run_cli(
                "report", "--prometheus", url, "--model-dir", str(repo), "--preset", "mlserver",
                "--window", "20s", "--step", "5s", "--min-age", "0", "--keep-latest", "0",
                "--coverage", 'up{job="mlserver"}', "--max-gap", "5s", "--at", f"{start + WINDOW:.3f}",
                "--format", "json",
            )  # fmt: skip
            report = run.json()
            assert isinstance(report, dict), run.stderr
            (root / "report.json").write_text(json.dumps(report, indent=1))
            reasons = {(r["model"], r["version"]): str(r["reason"]) for r in report["rows"]}
            # What an offload of a/1 does to model b: its next load (a restart, a redeploy) fails.
            shutil.move(repo / "a1", root / "a1-offloaded")
            reload = httpx.post(f"{server.url}/v2/repository/models/b/load", timeout=60)
            facts["b_reload_without_a1"] = (reload.status_code, reload.text[:300])
            shutil.move(root / "a1-offloaded", repo / "a1")
            yield World(statuses(report), reasons, run.exit_code, facts)


@pytest.mark.mlserver
def test_the_attacks_reach_real_models(world: World) -> None:
    """MLServer really serves "loop" (through u/loop -> .), "b" (a1's weights) and "x" (m2's
    settings file), counts their calls under those names, and a gRPC call naming no version is
    counted with no version label; ranker/2, never called, is safe (reach is proven)."""
    answers = world.facts["answers"]
    assert isinstance(answers, dict)
    n = len(OFFSETS)
    assert answers["loop/None"] == answers["b/None"] == answers["x/None"] == [200] * n, answers
    assert answers["g/grpc"] == ["2"] * n, answers  # the newest version served it
    series = [json.loads(s) for s in world.facts["series"]]  # type: ignore[attr-defined]
    names = {(s.get("model"), s.get("version")) for s in series}
    assert {("loop", "None"), ("b", "None"), ("x", "None"), ("g", None)} <= names, names
    counts = world.facts["counts"]
    assert isinstance(counts, dict)
    for victim in ('model="a",version="1"', 'model="u",version="None"', 'model="m2",version="None"'):
        assert counts[victim] == 1.0, counts  # called by its own name once, before the window
    index = {(e["name"], e.get("version")) for e in world.facts["index"]}  # type: ignore[attr-defined]
    assert {("loop", None), ("b", None), ("x", None), ("u", None), ("a", "1")} <= index
    assert world.statuses[("ranker", "1")] == "in-use" and world.statuses[("ranker", "2")] == "safe"
    status, _ = world.facts["b_reload_without_a1"]  # type: ignore[misc]
    assert status != 200  # b cannot load once a1 is gone


@pytest.mark.mlserver
def test_grpc_calls_naming_no_version_leave_no_version_safe(world: World) -> None:
    """Held: the empty version label (gRPC) is unattributed, as 'None' is."""
    for version in ("1", "2"):
        assert world.statuses[("g", version)] == "unknown"
        assert "no version label" in world.reasons[("g", version)], world.reasons[("g", version)]


@pytest.mark.mlserver
def test_a_loop_alias_is_not_safe(world: World) -> None:
    assert world.statuses[("u", "None")] != "safe", world.reasons[("u", "None")]


@pytest.mark.mlserver
def test_a_version_another_model_loads_from_is_not_safe(world: World) -> None:
    assert world.statuses[("a", "1")] != "safe", world.reasons[("a", "1")]


@pytest.mark.mlserver
def test_a_version_whose_settings_file_another_model_uses_is_not_safe(world: World) -> None:
    assert world.statuses[("m2", "None")] != "safe", world.reasons[("m2", "None")]


# --- unbounded waits: a FIFO where a file is expected ---------------------------------------


def _run_bounded(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    with serve(full_answer) as url:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
        return subprocess.run(
            [sys.executable, "-m", "retire", "report", "--prometheus", url, "--deadline", "3s", *args],
            capture_output=True, text=True, timeout=25, env=env, cwd=tmp_path,
        )  # fmt: skip


def test_a_fifo_model_settings_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "repo" / "m").mkdir(parents=True)
    os.mkfifo(tmp_path / "repo" / "m" / "model-settings.json")
    run = _run_bounded(
        tmp_path, "--preset", "mlserver", "--model-dir", str(tmp_path / "repo"), "--format", "json"
    )
    # Bounded, and kept as ignored data with its reason, as every file MLServer cannot load.
    assert run.returncode == 0, run.stderr
    ignored = {Path(e["path"]).name: e["reason"] for e in json.loads(run.stdout)["ignored"]}
    assert "not a regular file" in ignored["model-settings.json"]


def test_a_fifo_model_config_is_bounded(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "models.config")
    run = _run_bounded(tmp_path, "--model-config", str(tmp_path / "models.config"))
    assert run.returncode == 2, run.stderr


# --- the config reader -----------------------------------------------------------------------


def test_a_model_listed_twice_is_refused(tmp_path: Path) -> None:
    for v in (1, 2, 3):
        (tmp_path / "m" / str(v)).mkdir(parents=True)
    path = tmp_path / "models.config"
    path.write_text(
        "model_config_list {\n"
        "  config { name: 'm' base_path: 'm' model_version_policy { specific { versions: 1 } } }\n"
        "  config { name: 'm' base_path: 'm' model_version_policy { specific { versions: 2 } } }\n"
        "}\n"
    )
    with pytest.raises(InventoryError, match=r"more than once|multiple times|twice"):
        read_tfserving_config(path)


HELD = {
    "field twice": "model_version_policy { specific { versions: 1 } } model_version_policy { all {} }",
    "two kinds": "model_version_policy { specific { versions: 1 } all {} }",
    "int64 overflow": "model_version_policy { specific { versions: 9223372036854775808 } }",
    "extension": "model_version_policy { [ext.latest] { } }",
    "uint32 negative": "model_version_policy { latest { num_versions: -1 } }",
    "field number": "7 { all {} }",
}


@pytest.mark.parametrize("body", HELD.values(), ids=HELD.keys())
def test_misread_policies_are_refused_in_one_line(tmp_path: Path, body: str) -> None:
    """Held: what TF Serving refuses, retire refuses with one line naming file:line:column."""
    path = tmp_path / "models.config"
    path.write_text(f"model_config_list {{ config {{ name: 'm' base_path: '/m' {body} }} }}\n")
    with pytest.raises(InventoryError) as e:
        read_tfserving_config(path)
    assert "\n" not in str(e.value) and str(e.value).startswith(f"{path}:1:")


def test_triton_near_miss_and_bom_and_crlf(tmp_path: Path) -> None:
    """Held: CRLF lines read as LF; a BOM and TF Serving's field name in config.pbtxt are refused."""
    path = tmp_path / "config.pbtxt"
    path.write_bytes(b"name: 'x'\r\nversion_policy {\r\n specific { versions: [2, 3] }\r\n}\r\n")
    assert read_triton_policy(path).versions == (2, 3)
    path.write_bytes(b"\xef\xbb\xbfversion_policy { all {} }\n")
    with pytest.raises(InventoryError, match="cannot parse"):
        read_triton_policy(path)
    path.write_text("model_version_policy { all {} }\n")
    with pytest.raises(InventoryError, match="did you mean version_policy"):
        read_triton_policy(path)

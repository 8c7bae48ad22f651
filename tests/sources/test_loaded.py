"""Contract tests of retire.sources.loaded: the three servers' status APIs, answered in each server's
documented format by small real HTTP servers on 127.0.0.1 (TF Serving and TorchServe do not run
here; the real Triton is asked in tests/e2e/test_triton.py), and every way they can fail."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from retire.errors import EXIT_PROMETHEUS, ServerError
from retire.sources.loaded import Loaded
from retire.sources.prometheus.connection import Connection
from tests.conftest import ask_loaded as ask
from tests.fake_servers import Route, serve_routes


def ok(payload: Any, status: int = 200) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(payload).encode()


# TF Serving, GET /v1/models/<name>: GetModelStatusResponse in JSON (proto3 mapping: int64
# versions may come as strings); states UNKNOWN, START, LOADING, AVAILABLE, UNLOADING, END.
TFS_HALF = {
    "model_version_status": [
        {"version": "1", "state": "END", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": 3, "state": "AVAILABLE", "status": {}},
        {"version": "4", "state": "LOADING", "status": {"error_code": "OK", "error_message": ""}},
    ]
}
TFS_NOT_FOUND = {"error": "Could not find any versions of model retired"}

# Triton, POST /v2/repository/index: [{name, version?, state, reason?}] (protocol docs); a model
# never loaded comes as {name} alone.
TRITON_INDEX = [
    {"name": "detector", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"},
    {"name": "detector", "version": "2", "state": "READY"},
    {"name": "detector", "version": "3", "state": "READY"},
    {"name": "ranker", "version": "4", "state": "UNLOADING"},
    {"name": "idle_model", "state": "UNAVAILABLE", "reason": "unloaded"},
    {"name": "never_loaded"},  # Triton 2.51, explicit model control, a model never loaded
]


def torchserve_version(version: str, *statuses: str) -> dict[str, Any]:
    """One element of TorchServe's `GET /models/<name>/all` answer (management API docs)."""
    workers = [
        {
            "id": f"900{i}",
            "startTime": "2026-11-25T10:00:00.000Z",
            "status": s,
            "memoryUsage": 89247744,
            "pid": 4000 + i,
            "gpu": False,
            "gpuUsage": "N/A",
        }
        for i, s in enumerate(statuses)
    ]
    return {
        "modelName": "bert",
        "modelVersion": version,
        "modelUrl": f"bert_{version}.mar",
        "runtime": "python",
        "minWorkers": len(statuses),
        "maxWorkers": len(statuses),
        "batchSize": 1,
        "maxBatchDelay": 100,
        "loadedAtStartup": True,
        "workers": workers,
        "jobQueueStatus": {"remainingCapacity": 100, "pendingRequests": 0},
    }


TS_BERT = [
    torchserve_version("1.0", "READY"),
    torchserve_version("2.0", "READY", "UNLOADING"),
    torchserve_version("3.0"),
    torchserve_version("4.0", "UNLOADING"),
]
TS_NOT_FOUND = {"code": 404, "type": "ModelNotFoundException", "message": "Model not found: resnet"}


def test_tfserving_documented_answer() -> None:
    routes: dict[tuple[str, str], Route] = {
        ("GET", "/v1/models/half"): ok(TFS_HALF),
        ("GET", "/v1/models/retired"): ok(TFS_NOT_FOUND, 404),
    }
    with serve_routes(routes) as url:
        got = ask("tfserving-patched", url, ["half", "retired"])
    assert got.server == "tfserving"
    assert dict(got.versions) == {
        ("half", "1"): False,
        ("half", "2"): True,
        ("half", "3"): True,
        ("half", "4"): False,
    }
    assert got.states[("half", "4")] == "LOADING" and got.states[("half", "1")] == "END"
    assert got.loaded("half", "2") is True
    assert got.loaded("half", "9") is False  # answered for, not listed: not loaded
    assert got.loaded("retired", "1") is False  # the server serves no version of it
    assert got.loaded("never_asked", "1") is None  # unknown, never "not loaded"


def test_triton_documented_answer() -> None:
    bodies: list[bytes] = []

    def index(body: bytes) -> tuple[int, str, bytes]:
        bodies.append(body)
        return ok(TRITON_INDEX)

    with serve_routes({("POST", "/v2/repository/index"): index}) as url:
        got = ask("triton", url, ["detector", "on_disk_only"])
    assert json.loads(bodies[0]) == {}  # all models, not only the ready ones
    assert dict(got.versions) == {
        ("detector", "1"): False,
        ("detector", "2"): True,
        ("detector", "3"): True,
        ("ranker", "4"): False,
    }
    assert got.states[("ranker", "4")] == "UNLOADING"
    assert got.models == {"detector", "ranker", "idle_model", "never_loaded", "on_disk_only"}
    assert got.loaded("idle_model", "1") is False and got.loaded("never_loaded", "1") is False
    assert got.loaded("on_disk_only", "1") is False  # asked, and not in the index: not loaded


def test_torchserve_documented_answer() -> None:
    routes: dict[tuple[str, str], Route] = {
        ("GET", "/models/bert/all"): ok(TS_BERT),
        ("GET", "/models/resnet/all"): ok(TS_NOT_FOUND, 404),
    }
    with serve_routes(routes) as url:
        got = ask("torchserve", url, ["bert", "resnet"])
    assert dict(got.versions) == {
        ("bert", "1.0"): True,
        ("bert", "2.0"): True,
        ("bert", "3.0"): False,
        ("bert", "4.0"): False,
    }
    assert got.states[("bert", "3.0")] == "NO_WORKERS" and got.states[("bert", "4.0")] == "UNLOADING"
    assert got.loaded("resnet", "1.0") is False


def test_model_names_are_quoted_and_credentials_sent() -> None:
    log: list[tuple[str, str, dict[str, str]]] = []
    routes: dict[tuple[str, str], Route] = {("GET", "/v1/models/a%2Fb%20c"): ok(TFS_HALF)}
    conn = Connection(headers=(("X-Scope-OrgID", "team-a"),), bearer_token="s3cret-token")
    with serve_routes(routes, log) as url:
        got = ask("tfserving", url + "/", ["a/b c"], connection=conn)
    assert got.loaded("a/b c", "2") is True
    assert log[0][2]["Authorization"] == "Bearer s3cret-token" and log[0][2]["X-Scope-OrgID"] == "team-a"


def test_the_answer_is_frozen() -> None:
    with serve_routes({("POST", "/v2/repository/index"): ok(TRITON_INDEX)}) as url:
        got = ask("triton", url)
    assert isinstance(got, Loaded)
    with pytest.raises(AttributeError):
        got.server = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        got.versions[("detector", "1")] = True  # type: ignore[index]


BAD: list[tuple[str, str, str, Route, str]] = [
    # server, method, path, answer, what the message must say
    ("tfserving", "GET", "/v1/models/m", (200, "text/html", b"<html>Sign in</html>"), "text/html, not JSON"),
    ("tfserving", "GET", "/v1/models/m", ok({"error": "Internal: boom"}, 500), "HTTP 500: Internal: boom"),
    (
        "tfserving",
        "GET",
        "/v1/models/m",
        ok({"model_version_status": [{"version": "1"}]}),
        "without version and state",
    ),
    ("tfserving", "GET", "/v1/models/m", ok({"models": []}), "without a model_version_status list"),
    (
        "tfserving",
        "GET",
        "/v1/models/m",
        ok({"error": "Servable not found for request: Latest(other)"}, 404),
        "HTTP 404",
    ),
    (
        "tfserving",
        "GET",
        "/v1/models/m",
        ok({"error": "Could not find any versions of model m2"}, 404),
        "HTTP 404",
    ),
    (
        "tfserving",
        "GET",
        "/v1/models/m",
        ok({"model_version_status": [{"version": True, "state": "AVAILABLE"}]}),
        "without version",
    ),
    (
        "triton",
        "POST",
        "/v2/repository/index",
        ok({"error": "failed to poll"}, 400),
        "HTTP 400: failed to poll",
    ),
    ("triton", "POST", "/v2/repository/index", ok({"models": []}), "not a list of models"),
    ("triton", "POST", "/v2/repository/index", ok([{"version": "1", "state": "READY"}]), "without a name"),
    (
        "triton",
        "POST",
        "/v2/repository/index",
        ok([{"name": "m", "version": 1, "state": "READY"}]),
        "unexpected types",
    ),
    ("triton", "POST", "/v2/repository/index", (200, "application/json", b"[{"), "not JSON"),
    (
        "triton",
        "POST",
        "/v2/repository/index",
        (302, "text/html", b"<a href='/login'>login</a>"),
        "HTTP 302 with text/html",
    ),
    ("triton", "POST", "/v2/repository/index", (200, "application/json", b""), "not a list of models"),
    (
        "torchserve",
        "GET",
        "/models/m/all",
        ok({"code": 500, "type": "InternalServerException", "message": "x"}, 500),
        "HTTP 500: x",
    ),
    (
        "torchserve",
        "GET",
        "/models/m/all",
        ok(
            {"code": 404, "type": "ResourceNotFoundException", "message": "Requested resource is not found"},
            404,
        ),
        "HTTP 404",
    ),
    (
        "torchserve",
        "GET",
        "/models/m/all",
        ok([{"modelName": "m", "modelVersion": "1.0"}]),
        "without modelVersion and workers",
    ),
    (
        "torchserve",
        "GET",
        "/models/m/all",
        ok([{**torchserve_version("1.0", "READY"), "modelName": "other"}]),
        "'other' when asked for 'm'",
    ),
    ("torchserve", "GET", "/models/m/all", ok({"modelName": "m"}), "not a list of model versions"),
]


@pytest.mark.parametrize(
    ("server", "method", "path", "answer", "says"), BAD, ids=[f"{b[0]}-{b[4]}" for b in BAD]
)
def test_unusable_answers_are_server_errors(
    server: str, method: str, path: str, answer: Route, says: str
) -> None:
    with serve_routes({(method, path): answer}) as url, pytest.raises(ServerError) as e:
        ask(server, url, ["m"])
    assert says in e.value.message
    assert e.value.exit_code == EXIT_PROMETHEUS == 3
    assert "\n" not in e.value.message and "--server" in e.value.message


@pytest.mark.parametrize("server", ["tfserving", "triton", "torchserve"])
def test_a_wrong_url_is_an_error_not_an_empty_answer(server: str) -> None:
    """A plain 404 (another service, a proxy, a wrong port) must not read as "nothing loaded"."""
    with serve_routes({}) as url, pytest.raises(ServerError, match="HTTP 404"):
        ask(server, url, ["m"])


def test_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(
            ServerError, match=r"cannot reach model server http://127\.0\.0\.1:\d+/v2/repository/index"
        ):
            ask("triton", f"http://127.0.0.1:{port}")


def test_hanging_server_times_out() -> None:
    def slow(body: bytes) -> tuple[int, str, bytes]:
        time.sleep(3)
        return ok([])

    started = time.monotonic()
    with (
        serve_routes({("POST", "/v2/repository/index"): slow}) as url,
        pytest.raises(ServerError, match=r"within 0\.5s"),
    ):
        ask("triton", url, timeout=0.5)
    assert time.monotonic() - started < 3


def test_secrets_never_in_messages() -> None:
    answer = ok({"error": "bad token s3cret-token for user"}, 401)
    conn = Connection(bearer_token="s3cret-token")
    with serve_routes({("POST", "/v2/repository/index"): answer}) as url, pytest.raises(ServerError) as e:
        ask("triton", url.replace("http://", "http://user:pw-1234@"), connection=conn)
    assert "s3cret-token" not in e.value.message and "pw-1234" not in e.value.message


@pytest.mark.parametrize(
    ("server", "url", "says"),
    [
        ("kserve", "http://127.0.0.1:1", "no status API known for 'kserve'"),
        ("triton", "127.0.0.1:8000", "is not an http(s) URL"),
        ("triton", "ftp://host/x", "is not an http(s) URL"),
    ],
)
def test_bad_arguments(server: str, url: str, says: str) -> None:
    with pytest.raises(ServerError, match=says.replace("(", r"\(").replace(")", r"\)")):
        ask(server, url)

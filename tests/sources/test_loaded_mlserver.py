"""MLServer's status API (`--server` with --preset mlserver), answered as MLServer 1.7.1 answers by
a small real HTTP server on 127.0.0.1 (the real MLServer is asked in tests/e2e/test_mlserver.py),
and every way the answer can be unusable: one ServerError line each."""

from __future__ import annotations

import json
from typing import Any

import pytest

from retire.errors import EXIT_PROMETHEUS, ServerError
from tests.conftest import ask_loaded as ask
from tests.fake_servers import Route, serve_routes


def ok(payload: Any, status: int = 200) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(payload).encode()


# POST /v2/repository/index: every model-settings.json on disk; the state is the model's default
# version's (an unversioned model has no "version" key); a version never loaded says READY too.
INDEX = [
    {"name": "ranker", "version": "1", "state": "READY", "reason": ""},
    {"name": "ranker", "version": "2", "state": "READY", "reason": ""},
    {"name": "ranker", "version": "3", "state": "READY", "reason": ""},
    {"name": "plain", "state": "READY", "reason": ""},
    {"name": "gone", "version": "1", "state": "UNAVAILABLE", "reason": ""},
]
NOT_FOUND = ok({"error": "Model ranker with version 3 not found"}, 404)
READY: dict[tuple[str, str], Route] = {
    ("GET", "/v2/models/ranker/versions/1/ready"): (200, "application/json", b""),
    ("GET", "/v2/models/ranker/versions/2/ready"): (400, "application/json", b""),  # loading
    ("GET", "/v2/models/ranker/versions/3/ready"): NOT_FOUND,
    ("GET", "/v2/models/plain/ready"): (200, "application/json", b""),
}


def test_documented_answer() -> None:
    bodies: list[bytes] = []

    def index(body: bytes) -> tuple[int, str, bytes]:
        bodies.append(body)
        return ok(INDEX)

    with serve_routes({("POST", "/v2/repository/index"): index, **READY}) as url:
        got = ask("mlserver", url, ["ranker", "on_disk_only"])
    assert json.loads(bodies[0]) == {}
    assert dict(got.versions) == {
        ("ranker", "1"): True,
        ("ranker", "2"): False,
        ("ranker", "3"): False,  # the index said READY; the version itself is not loaded
        ("plain", "None"): True,  # no version: joined as its calls are labelled
        ("gone", "1"): False,
    }
    assert got.states[("ranker", "2")] == "NOT_READY" and got.states[("ranker", "3")] == "NOT_LOADED"
    assert got.states[("gone", "1")] == "UNAVAILABLE"
    assert got.loaded("on_disk_only", "1") is False and got.loaded("never_asked", "1") is None
    assert got.server == "mlserver"


def test_names_and_versions_are_quoted() -> None:
    index = ok([{"name": "a/b", "version": "v 1", "state": "READY", "reason": ""}])
    ready = {("GET", "/v2/models/a%2Fb/versions/v%201/ready"): (200, "application/json", b"")}
    with serve_routes({("POST", "/v2/repository/index"): index, **ready}) as url:
        assert ask("mlserver", url).loaded("a/b", "v 1") is True


BAD: list[tuple[Route, Route | None, str]] = [
    # the index's answer, the ready check's answer (None: plain 404), what the message says
    (ok({"detail": "Not Found"}, 404), None, "HTTP 404"),
    (ok({"error": "boom"}, 500), None, "HTTP 500: boom"),
    (ok({"models": []}), None, "not a list of models"),
    (ok([{"version": "1", "state": "READY"}]), None, "without a name"),
    (ok([{"name": "m", "version": 1, "state": "READY"}]), None, "unexpected types"),
    (ok([{"name": "m", "version": "1"}]), None, "unexpected types"),
    ((200, "text/html", b"<html>login</html>"), None, "text/html, not JSON"),
    (ok([{"name": "m", "version": "1", "state": "READY"}]), None, "HTTP 404"),  # no ready API: not MLServer
    (ok([{"name": "m", "version": "1", "state": "READY"}]), ok({"error": "x"}, 500), "HTTP 500: x"),
]


@pytest.mark.parametrize(("index", "ready", "says"), BAD, ids=[b[2] for b in BAD])
def test_unusable_answers_are_server_errors(index: Route, ready: Route | None, says: str) -> None:
    routes: dict[tuple[str, str], Route] = {("POST", "/v2/repository/index"): index}
    if ready is not None:
        routes[("GET", "/v2/models/m/versions/1/ready")] = ready
    with serve_routes(routes) as url, pytest.raises(ServerError) as e:
        ask("mlserver", url, ["m"])
    assert says in e.value.message
    assert e.value.exit_code == EXIT_PROMETHEUS
    assert "\n" not in e.value.message and "--server" in e.value.message


def test_a_hanging_ready_check_times_out() -> None:
    import time

    def slow(body: bytes) -> tuple[int, str, bytes]:
        time.sleep(3)
        return 200, "application/json", b""

    index = ok([{"name": "m", "version": "1", "state": "READY", "reason": ""}])
    routes: dict[tuple[str, str], Route] = {
        ("POST", "/v2/repository/index"): index,
        ("GET", "/v2/models/m/versions/1/ready"): slow,
    }
    started = time.monotonic()
    with serve_routes(routes) as url, pytest.raises(ServerError, match=r"/ready did not answer within 0\.5s"):
        ask("mlserver", url, ["m"], timeout=0.5)
    assert time.monotonic() - started < 3

"""Real hostile HTTP servers on 127.0.0.1: they echo the request (headers and all) in their error
text or warnings, redirect elsewhere, hang until told to stop, or answer odd JSON. The handler sees
the whole request, so a test can check what reached the server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.fake_servers import Server, full_answer


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    kind: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Answer]
# The status APIs retire reads once a run (retire.sources.prometheus.instrument).
STATUS_PATHS = (
    "/api/v1/targets",
    "/api/v1/status/config",
    "/api/v1/rules",
    "/api/v1/status/tsdb",
    "/api/v1/status/runtimeinfo",
    "/api/v1/status/flags",
)


@contextmanager
def serve(handler: Handler, log: list[Request] | None = None) -> Iterator[str]:
    class H(BaseHTTPRequestHandler):
        def _handle(self, method: str) -> None:
            length = int(self.headers.get("content-length", 0) or 0)
            body = self.rfile.read(length).decode(errors="replace") if length else ""
            query = urlsplit(self.path).query
            form = {k: v[0] for k, v in parse_qs(body or query).items()}
            request = Request(method, urlsplit(self.path).path, dict(self.headers), form)
            if log is not None:
                log.append(request)
            try:
                answer = handler(request)
            except (KeyError, ValueError):
                if not request.path.endswith(STATUS_PATHS):
                    raise
                # A handler written for the query API only, asked a status API (retire asks
                # them once a run): answered as a proxy that passes only the query API would.
                answer = Answer(404, b"404 page not found", "text/plain")
            try:
                self.send_response(answer.status)
                self.send_header("content-type", answer.kind)
                self.send_header("content-length", str(len(answer.body)))
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def log_message(self, *args: object) -> None:
            pass

    server = Server(("127.0.0.1", 0), H)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def normal(request: Request) -> Answer:
    """What a healthy, empty Prometheus answers (the label values API included)."""
    if "/api/v1/label/" in request.path:
        return Answer(body=json.dumps({"status": "success", "data": []}).encode())
    status, kind, body = full_answer(request.path, request.form)
    return Answer(status, body, kind)


def echo_headers(request: Request) -> str:
    """The request as a debugging proxy prints it: every header, credentials included."""
    return "; ".join(f"{k}: {v}" for k, v in request.headers.items())


def echo_error(request: Request) -> Answer:
    body = {"status": "error", "errorType": "bad_data", "error": f"bad request: {echo_headers(request)}"}
    return Answer(400, json.dumps(body).encode())


def echo_warning(request: Request) -> Answer:
    """A success whose warning repeats the request (a Thanos store's error text can)."""
    answer = normal(request)
    if "/api/v1/label/" in request.path:
        return answer
    doc = json.loads(answer.body)
    doc["warnings"] = [f"store said: {echo_headers(request)}"]
    return Answer(body=json.dumps(doc).encode())


def with_data(query: Callable[[Request], object] | None = None, **top: object) -> Handler:
    """Answers whose `data` (instant and range queries) and top-level fields a test chooses."""

    def handler(request: Request) -> Answer:
        if "/api/v1/label/" in request.path:
            return normal(request)
        doc = json.loads(normal(request).body)
        if query is not None:
            data = query(request)
            if data is not None:
                doc["data"] = data
        doc.update(top)
        return Answer(body=json.dumps(doc).encode())

    return handler


def series(labels: dict[str, object], value: object = "0", t: object = 1.0) -> dict[str, object]:
    return {"resultType": "vector", "result": [{"metric": labels, "value": [t, value]}]}

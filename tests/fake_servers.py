"""Small, real, misbehaving HTTP servers on 127.0.0.1 for fault tests (no patched functions)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Handler = Callable[[str, dict[str, str]], tuple[int, str, bytes]]


class Server(ThreadingHTTPServer):
    """A threading HTTP server whose listen backlog holds a burst of connections: retire opens one
    per query (no keep-alive), a dozen at once, and the default backlog of 5 drops some, which
    costs a second each (the client's SYN is sent again) and trips a test's short --timeout."""

    request_queue_size = 128
    daemon_threads = True


FLAT = {"model_name": "m", "model_version": "1", "instance": "tfs-0"}


def full_answer(
    path: str, form: dict[str, str], *, flat: dict[str, str] | None = None, **extra: object
) -> tuple[int, str, bytes]:
    """A well-formed answer: one idle version (`flat`, default m/1) whose counter stayed at 7
    all window, so the queries are shown to reach the fleet, on a target scraped every minute up to
    the instant; for range queries one series present throughout; no series on the series API (no
    --selector is tested against these servers)."""
    flat = FLAT if flat is None else flat
    if "/api/v1/query" not in path and not path.endswith("/series"):  # the status APIs: none here
        return 404, "text/plain", b"404 page not found"
    if path.endswith("/series"):
        return 200, "application/json", json.dumps({"status": "success", "data": []}).encode()
    if path.endswith("/query_range"):
        start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
        n = round((end - start) / step) + 1
        values = [[start + i * step, "1"] for i in range(n)]
        data = {"resultType": "matrix", "result": [{"metric": {}, "values": values}]}
    elif form["query"].startswith("up{") and form["query"].endswith("]"):  # the target's recent scrapes
        at = float(form["time"])
        target = {k: v for k, v in flat.items() if k in ("job", "instance")}
        values = [[at - 60 * i, "1"] for i in (2, 1, 0)]
        data = {
            "resultType": "matrix",
            "result": [{"metric": {"__name__": "up", **target}, "values": values}],
        }
    else:
        query, at = form["query"], float(form["time"])
        per_version = {k: v for k, v in flat.items() if k != "instance"}
        if query.startswith("timestamp("):  # its newest sample: scraped at the instant
            result = [{"metric": flat, "value": [at, f"{at:g}"]}]
        elif query.startswith(("max_over_time(sum", "sum by")):  # the busiest and the last step
            result = [{"metric": per_version, "value": [at, "0"]}]
        elif query.startswith("(count_over_time("):  # unlabelled_series: every series has both labels
            result = []
        elif query.startswith("resets("):  # the counter never went down
            result = [{"metric": flat, "value": [at, "0"]}]
        else:  # the series' last value, and their value at the window's start
            result = [{"metric": flat, "value": [at, "7"]}]
        data = {"resultType": "vector", "result": result}
    return 200, "application/json", json.dumps({"status": "success", "data": data, **extra}).encode()


@contextmanager
def serve(
    handler: Handler,
    prefix: str = "",
    require: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
    log: list[tuple[str, dict[str, str], dict[str, str]]] | None = None,
) -> Iterator[str]:
    """Serve `handler` under `prefix`; with `require`, answer 401 unless those headers are sent
    (as Mimir does without X-Scope-OrgID, or any server without its token)."""

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            """The label values API: the fakes export no series, so no label has values."""
            if log is not None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                log.append((self.path, query, dict(self.headers)))
            missing = [k for k, v in (require or {}).items() if self.headers.get(k) != v]
            ok = not missing and self.path.startswith(prefix + "/api/v1/label/")
            body = json.dumps({"status": "success", "data": []}).encode() if ok else b"unauthorized"
            status = 200 if ok else 401
            if not missing and self.path.startswith(prefix + "/api/v1/") and not ok:
                status, body = 404, b"404 page not found"  # the status APIs: not served here
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json" if ok else "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the run ended (an error elsewhere) before this answer

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if log is not None:
                log.append((self.path, form, dict(self.headers)))
            missing = [k for k, v in (require or {}).items() if self.headers.get(k) != v]
            if not self.path.startswith(prefix + "/api/v1/"):
                status, kind, body = 404, "text/plain", b"404 page not found"
            elif missing:
                status, kind, body = 401, "text/plain", f"no org id / unauthorized ({missing[0]})".encode()
            else:
                status, kind, body = handler(self.path, form)
            try:
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = Server(("127.0.0.1", 0), H)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}{prefix}"
    finally:
        server.shutdown()
        server.server_close()


def html(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
    return 200, "text/html", b"<html><body>Grafana login</body></html>"


def api_error(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
    body = {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unexpected"}
    return 400, "application/json", json.dumps(body).encode()


def bad_gateway(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
    return 502, "application/json", b'{"oops": true}'


def malformed(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
    return 200, "application/json", b'{"status": "success", "data": {"resultType": "vector"}}'


def hang(seconds: float) -> Handler:
    def handler(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
        time.sleep(seconds)
        return full_answer(path, form)

    return handler


def with_warnings(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
    return full_answer(path, form, warnings=["partial response: store 10.0.0.7 unreachable"])


def partial(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
    return full_answer(path, form, isPartial=True)


def nan_values(path: str, form: dict[str, str]) -> tuple[int, str, bytes]:
    if "max_over_time" in form["query"]:
        result = [{"metric": {"model_name": "m", "model_version": "1"}, "value": [0, "NaN"]}]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return 200, "application/json", json.dumps(body).encode()
    return full_answer(path, form)


Route = tuple[int, str, bytes] | Callable[[bytes], tuple[int, str, bytes]]


@contextmanager
def serve_routes(
    routes: dict[tuple[str, str], Route], log: list[tuple[str, str, dict[str, str]]] | None = None
) -> Iterator[str]:
    """Answer `(method, path)` with a fixed (status, content type, body), or with a function of the
    request body; anything else gets a plain-text 404, as a proxy or another service would."""

    class H(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if log is not None:
                log.append((method, self.path, dict(self.headers)))
            route = routes.get((method, self.path), (404, "text/plain", b"404 page not found"))
            status, kind, payload = route(body) if callable(route) else route
            try:
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, *args: object) -> None:
            pass

    server = Server(("127.0.0.1", 0), H)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

"""Real servers on 127.0.0.1 that answer too slowly ever to finish, yet fast enough never to trip
a timeout per read: a byte at a time in the HTTP status line, the headers or the body, an endless
chunked body, an SMTP greeting or reply that never ends; or nothing at all. Each conversation stops
when the test's `with` block ends (the server closes its side)."""

from __future__ import annotations

import itertools
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from urllib.parse import parse_qs, urlsplit

from tests.hostile_servers import Answer, Request

PAUSE = 0.2  # between two trickled bytes: far under any test's timeout
HTTP_WAYS = ("status", "headers", "body", "chunked", "silent")

Talk = Callable[[socket.socket, Callable[[], bool]], None]


@contextmanager
def _tcp(talk: Talk) -> Iterator[int]:
    """Accept connections on 127.0.0.1 and run `talk(conn, stopped)` for each in a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.settimeout(0.1)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def one(conn: socket.socket) -> None:
        try:
            talk(conn, stop.is_set)
        except OSError:
            pass  # the client hung up: what a cut connection looks like from here
        finally:
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conns.append(conn)
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()
        for c in conns:
            with suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


def _send_slowly(conn: socket.socket, data: Iterable[int], stopped: Callable[[], bool]) -> None:
    for byte in data:
        if stopped():
            return
        conn.sendall(bytes([byte]))
        time.sleep(PAUSE)


def _read_request(conn: socket.socket) -> Request:
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionResetError
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += conn.recv(65536)
    query = urlsplit(target).query
    form = {k: v[0] for k, v in parse_qs(body.decode() or query).items()}
    return Request(method, urlsplit(target).path, headers, form)


def _endless(pattern: bytes) -> Iterator[int]:
    return itertools.chain.from_iterable(itertools.repeat(pattern))


@contextmanager
def http(
    way: str | Callable[[Request], str],
    answer: Callable[[Request], Answer],
    log: list[Request] | None = None,
) -> Iterator[str]:
    """An HTTP server whose every answer is `answer(request)`, sent `way` (or `way(request)`):
    'status', 'headers' or 'body' trickle from the start of that part on, 'chunked' sends the head
    at once and then an endless chunked body a byte at a time, 'silent' reads the request and never
    answers, 'prompt' answers at once as a healthy server does."""

    def talk(conn: socket.socket, stopped: Callable[[], bool]) -> None:
        request = _read_request(conn)
        if log is not None:
            log.append(request)
        how = way(request) if callable(way) else way
        assert how in (*HTTP_WAYS, "prompt"), how
        if how == "silent":
            while not stopped():
                time.sleep(0.05)
            return
        a = answer(request)
        status = f"HTTP/1.1 {a.status} Whatever\r\n".encode()
        fields = {"Content-Type": a.kind, **a.headers}
        if how == "chunked":
            fields["Transfer-Encoding"] = "chunked"
        else:
            fields["Content-Length"] = str(len(a.body))
        head = "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n"
        if how == "prompt":
            conn.sendall(status + head + a.body)
        elif how == "status":
            _send_slowly(conn, status + head + a.body, stopped)
        elif how == "headers":
            conn.sendall(status)
            _send_slowly(conn, head + a.body, stopped)
        elif how == "body":
            conn.sendall(status + head)
            _send_slowly(conn, a.body, stopped)
        else:  # an endless chunked body of spaces, one chunk a byte
            conn.sendall(status + head)
            _send_slowly(conn, _endless(b"1\r\n \r\n"), stopped)

    with _tcp(talk) as port:
        yield f"http://127.0.0.1:{port}"


def json_answer(doc: object, status: int = 200) -> Callable[[Request], Answer]:
    return lambda request: Answer(status, json.dumps(doc).encode())


@contextmanager
def smtp(way: str, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """An SMTP server that trickles: 'greeting' an endless multi-line 220 greeting, 'reply' a
    prompt greeting and then an endless multi-line reply to the first command. With `tls`, it
    speaks TLS from the start (SMTPS)."""
    assert way in ("greeting", "reply"), way

    def talk(conn: socket.socket, stopped: Callable[[], bool]) -> None:
        if tls is not None:
            conn.settimeout(10)
            conn = tls.wrap_socket(conn, server_side=True)
        if way == "greeting":
            _send_slowly(conn, _endless(b"220-slow.example\r\n"), stopped)
            return
        conn.sendall(b"220 slow.example ESMTP\r\n")
        conn.settimeout(10)
        conn.recv(1024)
        _send_slowly(conn, _endless(b"250-slow.example\r\n"), stopped)

    with _tcp(talk) as port:
        yield port

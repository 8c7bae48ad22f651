"""Bounds on waiting: the whole run's (`--deadline`), and each whole conversation's with a server.

httpx's timeouts and smtplib's socket timeout bound one operation each: one read, one write. A
server that sends a byte every few seconds (in the status line, the headers, an endless chunked
body, an SMTP greeting) never trips them, and the run waits forever. So every conversation runs
under a `Watchdog`: a timer that, when the conversation's time is up, shuts its sockets down. The
read blocked on them returns at once, the library raises, and the caller, seeing `fired`, reports
the timeout in its own words.

Why a timer and not a check between reads: the reads that wait are inside httpx (status line,
headers) and smtplib (greeting, replies), where no caller code runs between two of them; the
timer needs nothing from those libraries but the socket. Shutting the socket down, not closing
it, is what wakes a read blocked in another thread (close(2) does not, on Linux).

What no timer reaches: a host name's DNS lookup (the C library's resolver has its own bounded
retries), and the disk. Leaf module: imported by sources, delivery, actions and the CLI alike.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from retire.durations import format_duration


class Deadline:
    """The instant after which a run starts no new wait (monotonic clock), and the duration the
    user gave, for messages. `None`: no bound (a library caller's choice)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.end = math.inf if seconds is None else time.monotonic() + seconds

    def left(self) -> float:
        """Seconds until the deadline (negative once it passed; infinite without one)."""
        return self.end - time.monotonic()

    @property
    def passed(self) -> bool:
        return self.left() <= 0

    @property
    def shown(self) -> str:
        """The duration as the user wrote it: `10m`, `2s`."""
        return "none" if self.seconds is None else format_duration(self.seconds)

    def limit(self, timeout: float) -> tuple[float, bool]:
        """The bound of one conversation that may take `timeout`: the smaller of it and the time
        left, and whether the run's deadline is the smaller (messages name the right option)."""
        left = self.left()
        return (left, True) if left < timeout else (timeout, False)


NO_DEADLINE = Deadline(None)

# The httpcore trace events that hand over a new connection's stream (plain, then TLS).
_NEW_STREAM = (".connect_tcp.complete", ".start_tls.complete")
_STARTS = (".connect_tcp.started", ".start_tls.started")


class Watchdog:
    """Shuts down the sockets of one conversation `seconds` after it starts (a context manager).

    Thread-safe: the timer fires in its own thread; a socket handed over after it fired is shut
    down at once. `fired` tells the caller that whatever the library raised (a reset, an
    incomplete body, an EOF) is the timeout's doing.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + max(seconds, 0.0)
        self.fired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets.clear()  # the conversation is over: never touch its sockets again

    def left(self) -> float:
        """Seconds left, at least a millisecond (a socket timeout of 0 would mean non-blocking)."""
        return max(self.end - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down when the time is up (now, if it is already)."""
        with self._lock:
            if self.fired:
                _shut(sock)
            else:
                self._sockets.append(sock)

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpx's `trace` request extension: learn each new connection's socket (plain, then
        TLS). Connections must not be reused (no keep-alive): a reused connection's socket is
        never handed to the request that reuses it. Before a connect or TLS handshake, its own
        timeout is narrowed to the time left (the handshake runs on a socket not handed over yet)."""
        if event.endswith(_STARTS) and isinstance(info, dict) and "timeout" in info:
            given = info["timeout"]
            info["timeout"] = self.left() if given is None else min(given, self.left())
        if event.endswith(_NEW_STREAM):
            stream = info.get("return_value")
            get = getattr(stream, "get_extra_info", None)
            sock = get("socket") if callable(get) else None
            if isinstance(sock, socket.socket):
                self.watch(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    """Shut the connection down under whatever reads it. The plain socket's method, also for a
    TLS socket: SSLSocket.shutdown drops its TLS state first, under a read in another thread."""
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)

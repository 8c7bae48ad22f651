"""The real `python -m retire` in a process of its own, without paying for a new interpreter.

The offload and unload tests run retire in a child process (a crash test needs a process to
SIGKILL, and a run must not share the test's state). Starting Python and importing pandas for
each of several hundred runs cost minutes of CPU, so a server process (one per test process,
started on first use) imports retire and its dependencies once and forks a child per run. Each
child is a fresh copy of that process: nothing of retire has run in it yet. It takes the run's
environment, working directory, argv and standard streams, then runs `retire` as `python -m`
does (runpy, `__main__`); `crash_after` arms tests/crash.py's hook first, as
`python -m tests.crash` does. The server is single-threaded, so forking it is safe.

Protocol, one Unix-socket connection per run: the client sends one JSON line (argv, env, cwd,
crash_after) with the descriptors for stdout and stderr attached; the server forks a helper
for the connection, which forks the run, sends `{"pid": ...}`, waits for it and sends
`{"returncode": ...}` (negative: killed by that signal, as subprocess reports it).
"""

from __future__ import annotations

import atexit
import io
import json
import locale
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

PRELOAD = ("pandas", "numpy", "httpx", "rich.console", "typer", "retire.cli", "tests.crash")
ROOT = Path(__file__).resolve().parents[1]


def _run(request: dict[str, Any], out: int, err: int) -> int:
    """In the forked child: become `python -m retire` with the request's argv, env and cwd."""
    import runpy

    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    for fd in (null, out, err):
        os.close(fd)
    encoding = locale.getpreferredencoding(False)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=encoding)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding=encoding)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding=encoding, errors="backslashreplace", line_buffering=True
    )
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    code = 0
    try:
        if request["crash_after"] is not None:
            from tests.crash import arm

            arm(int(request["crash_after"]))
        sys.argv = ["retire", *request["argv"]]
        runpy.run_module("retire", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    # Shut down as the interpreter does at exit: wait for non-daemon threads (and executors),
    # run atexit callbacks, flush the streams; only then leave (os._exit in the caller).
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            code = code or 120  # as Python does when it cannot flush at exit
    return code


def _serve_one(conn: socket.socket) -> None:
    """In the per-connection helper: fork the run, report its pid, then how it ended."""
    message, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 2)
    while not message.endswith(b"\n"):
        more = conn.recv(1 << 16)
        if not more:
            os._exit(1)
        message += more
    request = json.loads(message)
    out, err = fds
    pid = os.fork()
    if pid == 0:
        conn.close()
        os._exit(_run(request, out, err))
    os.close(out)
    os.close(err)
    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    conn.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode() + b"\n")


def serve(path: str) -> None:
    """The server: preload, then fork a helper per connection until stdin closes (the test
    process that started it is gone)."""
    for name in PRELOAD:
        __import__(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # helpers are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(sys.stdin, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sys.stdin:
                return
            conn, _ = listener.accept()
            if os.fork() == 0:
                listener.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                try:
                    _serve_one(conn)
                finally:
                    os._exit(0)
            conn.close()


class _Server:
    """The test process's server, started on first use, stopped at exit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen[str] | None = None
        self.dir = ""

    def address(self) -> str:
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self.dir = tempfile.mkdtemp(prefix="retire-forked-")
                path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "tests.forked", f"{self.dir}/socket"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": path},
                )
                assert self.process.stdout is not None
                if self.process.stdout.readline().strip() != "ready":  # bounded: it exits on failure
                    raise RuntimeError("tests/forked.py: the fork server did not start")
                atexit.register(self.stop)
            return f"{self.dir}/socket"

    def stop(self) -> None:
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the server returns on EOF
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.dir:
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)


_SERVER = _Server()


def run(
    argv: list[str], env: dict[str, str], cwd: Path | None, crash_after: int | None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """`python -m retire *argv` as subprocess.run(capture_output=True, text=True) reports it."""
    request = {"argv": argv, "env": env, "cwd": str(cwd or Path.cwd()), "crash_after": crash_after}
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn,
    ):
        conn.connect(_SERVER.address())
        conn.settimeout(timeout)
        message = json.dumps(request).encode() + b"\n"
        sent = socket.send_fds(conn, [message], [out.fileno(), err.fileno()])
        conn.sendall(message[sent:])
        answers = conn.makefile("rb")
        pid = int(json.loads(answers.readline())["pid"])
        try:
            returncode = int(json.loads(answers.readline())["returncode"])
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            raise subprocess.TimeoutExpired(["retire", *argv], timeout) from None
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(io.TextIOWrapper(f, encoding=locale.getpreferredencoding(False)).read())
    return subprocess.CompletedProcess(["retire", *argv], returncode, texts[0], texts[1])


if __name__ == "__main__":
    serve(sys.argv[1])

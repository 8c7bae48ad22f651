"""Run a command under real pseudo-terminals of a given size, as a person at a terminal sees it.

Used by the terminal-layout tests and by scripts/readme.py. stdout and stderr each get their own
pseudo-terminal, so a test can tell a progress bar on stderr from the report on stdout and both
believe they are on a terminal.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass(frozen=True)
class TerminalRun:
    exit_code: int
    raw: str  # stdout as written, escape codes included
    stderr_raw: str

    @property
    def text(self) -> str:
        """stdout without escape codes, with the terminal's \\r\\n as \\n."""
        return plain(self.raw)

    @property
    def stderr(self) -> str:
        return plain(self.stderr_raw)


def plain(raw: str) -> str:
    return ANSI.sub("", raw).replace("\r\n", "\n")


def _terminal(columns: int, rows: int) -> tuple[int, int]:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return leader, follower


def run_in_terminal(
    argv: Sequence[str],
    columns: int,
    *,
    rows: int = 50,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 120.0,
) -> TerminalRun:
    """Run `argv` with stdout and stderr on two `columns`-wide pseudo-terminals; stdin is empty."""
    environment = dict(os.environ if env is None else env)
    environment.pop("COLUMNS", None)
    environment.pop("NO_COLOR", None)
    environment.setdefault("TERM", "xterm-256color")
    if environment["TERM"] == "dumb":
        environment["TERM"] = "xterm-256color"
    out_leader, out_follower = _terminal(columns, rows)
    err_leader, err_follower = _terminal(columns, rows)
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out_follower,
            stderr=err_follower,
            env=environment,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        os.close(out_follower)
        os.close(err_follower)
    chunks: dict[int, bytes] = {out_leader: b"", err_leader: b""}
    open_fds = [out_leader, err_leader]
    deadline = time.monotonic() + timeout
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                process.kill()
                raise TimeoutError(f"{argv[0]} did not finish within {timeout:.0f}s")
            ready, _, _ = select.select(open_fds, [], [], min(left, 1.0))
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the other end is closed
                    data = b""
                if data:
                    chunks[fd] += data
                else:
                    open_fds.remove(fd)
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(out_leader)
        os.close(err_leader)
    decode = lambda b: b.decode("utf-8", errors="replace")  # noqa: E731
    return TerminalRun(code, decode(chunks[out_leader]), decode(chunks[err_leader]))

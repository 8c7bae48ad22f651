"""`python -m tests.crash N retire-args...`: run retire, killed (SIGKILL, no cleanup, like a power
cut) right after its N-th journal write. The crash tests run offload, resume and restore this way
(through tests/forked.py, which forks the same run from a preloaded process); the hook is
`Journal.after_write`, which shipped code never sets."""

from __future__ import annotations

import os
import signal
import sys

from retire.actions.journal import Journal


def arm(limit: int) -> None:
    """SIGKILL this process right after its `limit`-th journal write."""
    writes = 0

    def after_write() -> None:
        nonlocal writes
        writes += 1
        if writes >= limit:
            os.kill(os.getpid(), signal.SIGKILL)

    Journal.after_write = after_write


def main() -> None:
    limit, sys.argv[1:] = int(sys.argv[1]), sys.argv[2:]
    arm(limit)
    from retire.cli import main as retire

    retire()


if __name__ == "__main__":
    main()

"""`--since-last FILE`: what changed since the previous report.

The file is the previous run's JSON report (the same document `--format json` prints), written
atomically after each successful run, so a crash never leaves a torn state file. A missing or
empty file means a first run. A file that holds anything else (not a retire report) is refused
before any work, and never replaced: run as root, `--since-last /etc/passwd` must not turn the
password file into a report. Devices (`/dev/null`) keep no state and are written in place.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from retire.advisor.changes import History, compare

if TYPE_CHECKING:
    from retire.advisor import Report


def load(path: Path) -> tuple[str | None, dict[tuple[str, str], str] | None, str | None]:
    """(evaluated_at, {(model, version): status}, problem) of the previous report."""
    if _fifo(path):  # reading it would wait for a writer forever
        return None, None, f"previous report {path} is a FIFO, not a file; starting afresh"
    try:
        at, statuses = _read(path)
        return at, statuses, None
    except FileNotFoundError:
        return None, None, None
    except _UNREADABLE as e:  # any bad file: start afresh
        return None, None, f"previous report {path} unreadable ({type(e).__name__}); starting afresh"


_UNREADABLE = (OSError, ValueError, KeyError, TypeError, RecursionError)


def _read(path: Path) -> tuple[str, dict[tuple[str, str], str]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    statuses = {(r["model"], str(r["version"])): r["status"] for r in doc["rows"]}
    return doc["header"]["evaluated_at"], statuses


def save(path: Path, report: Report) -> None:
    """Keep this report for the next run's comparison (atomically: never a torn state file)."""
    from retire.delivery.output import write_atomic
    from retire.errors import OutputError
    from retire.formats.json import report_json

    if _fifo(path):  # a state file is retire's own: nobody reads it from a FIFO
        raise OutputError(f"cannot write --since-last {path}: it is a FIFO; name a file")
    if (why := foreign(path)) is not None:  # it changed since check(): still never replace it
        raise OutputError(_refusal(path, why))
    write_atomic(path, report_json(report))


def foreign(path: Path) -> str | None:
    """Why the regular file at `path` is not a retire report it may replace, or None (missing,
    empty, not a regular file, or a report)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None  # missing (a first run) or unreachable: writing it says why
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        return None
    try:
        _read(path)
    except _UNREADABLE as e:
        return type(e).__name__
    return None


def check(path: Path) -> None:
    """Refuse a --since-last file retire would have to overwrite although it is not its own, before
    any query is sent."""
    from retire.errors import ConfigError

    if (why := foreign(path)) is not None:
        raise ConfigError(_refusal(path, why))


def _refusal(path: Path, why: str) -> str:
    return (
        f"--since-last {path} is not a retire report ({why}), so it is not replaced: name a new "
        "file, or remove this one if it is a state file you no longer need"
    )


def _fifo(path: Path) -> bool:
    """Whether `path` is a FIFO (links followed): reading one waits for a writer, and writing one
    for a reader. Devices stay allowed (`--since-last /dev/null` keeps no state)."""
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False  # missing or unreadable: reading it says why


def since(path: Path, report: Report) -> History:
    """What changed between the report saved at `path` (if any) and this one."""
    previous_at, previous, problem = load(path)
    return History(previous_at, compare(previous, report), problem)

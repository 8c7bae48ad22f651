"""The journal: every step is appended (`<archive>/journal.jsonl`, JSON lines, fsynced) before it
is done and marked after, so a crash at any point leaves what `--resume` needs to finish it.

It is read back as untrusted input: a torn last line is the one thing a crash can leave, and
is cut off; any other damage, or a record whose paths are not exactly where retire would have
put them, refuses the run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from retire.actions.paths import MODELS, normal_absolute, os_problem, real_archive
from retire.advisor.plan import exactly
from retire.errors import OffloadError
from retire.sources.disk.inventory import unsafe_component

JOURNAL = "journal.jsonl"
OPS = ("offload", "restore")
PHASES = ("begin", "verified", "done", "failed")


class Journal:
    """Append-only JSON lines, fsynced after each record; read as untrusted input."""

    # Called after each record is on disk. The crash tests set it (tests/crash.py) to kill the
    # process there, as a power cut would; nothing in retire sets it, nor reads the environment.
    after_write: ClassVar[Callable[[], None] | None] = None

    def __init__(
        self,
        archive: Path,
        name: str = JOURNAL,
        problem: Callable[[object, Path], str | None] | None = None,
        resume: str = "retire offload --resume",
    ) -> None:
        """`name` and `problem`: another journal in the same archive, with its own record check
        (`retire unload` keeps `unload.jsonl`, actions/unload.py). `resume`: the command that
        finishes its unfinished steps, for messages."""
        self.resume = resume
        self.archive = real_archive(archive)
        self.path = self.archive / name
        self._problem = problem or _record_problem

    def records(self) -> list[dict[str, Any]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)  # the archive's contents are untrusted
        except FileNotFoundError:
            return []
        except OSError as e:
            raise OffloadError(f"cannot read the journal {self.path}: {os_problem(e)} (a symlink?)") from None
        try:
            with os.fdopen(fd, "rb") as f:
                text = f.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise OffloadError(f"cannot read the journal {self.path}: {e}") from None
        out = []
        lines = text.splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except (ValueError, RecursionError):
                # A torn last line is the one write a crash can interrupt; anything else is damage.
                if n == len(lines) and not text.endswith("\n"):
                    break
                raise OffloadError(f"{self.path}:{n} is not valid JSON; the journal is damaged") from None
            problem = self._problem(doc, self.archive)
            if problem:
                raise OffloadError(
                    f"{self.path}:{n} is not a journal record retire wrote ({problem}); the journal is "
                    "damaged or edited: nothing was moved"
                )
            out.append(doc)
        return out

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps({**record, "time": time.time()}).encode() + b"\n"
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "ab") as f:
                _drop_torn_tail(fd)
                f.write(line)
                f.flush()
                os.fsync(fd)
        except OSError as e:
            raise OffloadError(f"cannot write the journal {self.path}: {os_problem(e)}") from None
        if Journal.after_write is not None:
            Journal.after_write()

    def unfinished(self) -> list[dict[str, Any]]:
        """Steps begun (or verified) and never marked done or failed: `--resume` completes them."""
        state: dict[int, dict[str, Any]] = {}
        for r in self.records():
            if r["phase"] in ("begin", "verified"):
                state[r["step"]] = r
            else:
                state.pop(r["step"], None)
        return list(state.values())

    def next_step(self) -> int:
        return 1 + max((r["step"] for r in self.records()), default=0)


def _drop_torn_tail(fd: int) -> None:
    """A crash can tear only the last record, and only before it was fsynced, so before the step
    it announced was begun: cut it off rather than append after it (which would bury it)."""
    size = os.fstat(fd).st_size
    start = max(0, size - (1 << 16))  # a record is far shorter
    tail = os.pread(fd, size - start, start)
    if not tail or tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    if cut >= 0 or start == 0:
        os.ftruncate(fd, start + cut + 1)


def _record_problem(doc: object, archive: Path) -> str | None:
    """What is wrong with a journal record, or None. Its paths are checked as strictly as a
    move's: absolute, normalised, the destination exactly where retire would put it."""
    if not isinstance(doc, dict):
        return "not an object"
    if not exactly(doc.get("step"), int) or doc["step"] < 1:
        return "no step number"
    if doc.get("phase") not in PHASES or doc.get("op") not in OPS:
        return "unknown phase or op"
    for key in ("model", "version", "src", "dst"):
        if not isinstance(doc.get(key), str):
            return f"no {key}"
    if not exactly(doc.get("size_bytes"), int):
        return "no size_bytes"
    for key in ("model", "version"):
        if unsafe_component(doc[key]):
            return f"{key} {doc[key]!r} is not a safe name"
    src, dst = doc["src"], doc["dst"]
    if not normal_absolute(src) or src == "/":
        return f"src {src!r} is not an absolute, normalised path"
    if unsafe_component(os.path.basename(src)):
        return f"src {src!r} does not end in a safe name"
    expected = str(archive / MODELS / doc["model"] / os.path.basename(src))
    if dst != expected:
        return f"dst {dst!r} is not {expected!r}"
    root = doc.get("root")
    if root is not None and (
        not isinstance(root, str) or not normal_absolute(root) or not src.startswith(root.rstrip("/") + "/")
    ):
        return f"root {root!r} is not an absolute path above src"
    return None

"""From advice to action: move safe version directories out of the served tree, and back.

Safety properties, each tested for real (tests/test_offload.py):
- only versions whose verdict is `safe` in a report made immediately before acting are moved; a
  version that got a call since the plan was made is skipped and reported;
- nothing is ever deleted: a move is an atomic rename on one filesystem; across filesystems it is a
  copy to `<dst>.partial`, verified file by file (size and SHA-256), renamed into place, and only
  then is the source removed;
- every step is appended to a journal (`<archive>/journal.jsonl`, JSON lines, fsynced) *before* it
  is done and marked done after, so a crash at any point leaves a state that `--resume` completes
  and `restore` reverses;
- one run at a time: an exclusive lock on `<archive>/.lock`;
- the archive must not be inside a model root (TF Serving would serve it), nor a root inside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retire.errors import RetireError

if TYPE_CHECKING:
    from retire.advisor import Report

EXIT_REFUSED = 6
JOURNAL = "journal.jsonl"


class OffloadError(RetireError):
    """retire refused to act, or could not; the journal says what, if anything, was done."""

    exit_code = EXIT_REFUSED


@dataclass(frozen=True)
class Move:
    model: str
    version: str
    src: str
    dst: str
    size_bytes: int


@dataclass(frozen=True)
class Plan:
    archive: str
    moves: tuple[Move, ...]
    evaluated_at: float

    def to_json(self) -> str:
        doc = {
            "archive": self.archive,
            "evaluated_at": self.evaluated_at,
            "moves": [asdict(m) for m in self.moves],
        }
        return json.dumps(doc, indent=2) + "\n"

    @staticmethod
    def from_json(text: str, where: str) -> Plan:
        try:
            doc = json.loads(text)
            moves = tuple(Move(**m) for m in doc["moves"])
            return Plan(str(doc["archive"]), moves, float(doc["evaluated_at"]))
        except (ValueError, KeyError, TypeError) as e:
            raise OffloadError(
                f"{where} is not a plan written by `retire plan --format json` ({e})"
            ) from None


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def check_archive(archive: Path, roots: tuple[str, ...]) -> None:
    for root in roots:
        if _inside(archive, Path(root)) or _inside(Path(root), archive):
            raise OffloadError(
                f"--archive-dir {archive} overlaps the model root {root}; TF Serving would keep serving "
                "what is archived there: choose a directory outside every model root"
            )


def make_plan(report: Report, archive: Path, only: tuple[tuple[str, str], ...] = ()) -> Plan:
    """Moves for the report's safe versions (or exactly `only`, each of which must be safe)."""
    rows = {(r.model, r.version): r for r in report.rows()}
    if only:
        chosen = []
        for key in only:
            row = rows.get(key)
            if row is None or row.status.value != "safe":
                status = row.status.value if row else "not found"
                raise OffloadError(f"--only {key[0]}:{key[1]} is {status}, not safe: nothing was moved")
            chosen.append(row)
    else:
        if report.summary.unknown:
            raise OffloadError(
                f"{report.summary.unknown} version(s) are unknown (evidence incomplete); refusing to act. "
                "Fix the evidence, or name exactly the versions to move with --only MODEL:VERSION"
            )
        chosen = report.safe_rows()
    moves = []
    for r in chosen:
        assert r.path is not None
        dst = archive / "models" / r.model / Path(r.path).name
        moves.append(Move(r.model, r.version, r.path, str(dst), int(r.size_bytes or 0)))
    return Plan(str(archive), tuple(moves), report.header.evaluated_at)


# --------------------------------------------------------------------------------------------
# The journal


class Journal:
    """Append-only JSON lines, fsynced after each record."""

    def __init__(self, archive: Path) -> None:
        self.path = archive / JOURNAL

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                # A torn last line is the one write a crash can interrupt; anything else is damage.
                if n == len(lines):
                    break
                raise OffloadError(f"{self.path}:{n} is not valid JSON; the journal is damaged") from None
        return out

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps({**record, "time": time.time()}) + "\n"
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        _crash_point()

    def unfinished(self) -> list[dict[str, Any]]:
        """Steps begun and never marked done (a crash): `--resume` completes them."""
        state: dict[int, dict[str, Any]] = {}
        for r in self.records():
            if r["phase"] == "begin":
                state[r["step"]] = r
            elif r["phase"] == "done":
                state.pop(r["step"], None)
        return list(state.values())

    def next_step(self) -> int:
        return 1 + max((r["step"] for r in self.records()), default=0)


def _crash_point() -> None:
    """For the crash tests: `RETIRE_CRASH_AFTER_JOURNAL_WRITES=N` kills this process (SIGKILL,
    no cleanup, like a power cut) right after its N-th journal write."""
    limit = os.environ.get("RETIRE_CRASH_AFTER_JOURNAL_WRITES")
    if limit is None:
        return
    _crash_point.count = getattr(_crash_point, "count", 0) + 1  # type: ignore[attr-defined]
    if _crash_point.count >= int(limit):  # type: ignore[attr-defined]
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def locked(archive: Path) -> Iterator[None]:
    archive.mkdir(parents=True, exist_ok=True)
    with (archive / ".lock").open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OffloadError(
                f"another retire offload or restore is running on {archive} (it holds {archive / '.lock'}); "
                "wait for it to finish"
            ) from None
        yield


# --------------------------------------------------------------------------------------------
# Moving one directory, crash-safely


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(root: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink():
                out[str(p.relative_to(root))] = (-1, os.readlink(p))
            else:
                out[str(p.relative_to(root))] = (p.stat().st_size, _digest(p))
    return out


def move_dir(src: Path, dst: Path) -> None:
    """Move a directory tree; idempotent, so a resumed step can call it again at any point."""
    partial = dst.with_name(dst.name + ".partial")
    if dst.exists() and not src.exists():
        return  # done before a crash
    if dst.exists() and src.exists():
        # A cross-filesystem copy finished but its source was not removed yet: check, then remove.
        if _manifest(src) != _manifest(dst):
            raise OffloadError(f"{src} and {dst} both exist and differ; resolve by hand before resuming")
        shutil.rmtree(src)
        return
    if not src.exists():
        raise OffloadError(f"{src} is gone and was never archived; nothing to move")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dst)  # one filesystem: atomic
        return
    except OSError as e:
        if e.errno != 18:  # EXDEV: another filesystem
            raise
    if partial.exists():
        shutil.rmtree(partial)  # our own unfinished copy from a crash, never user data
    shutil.copytree(src, partial, symlinks=True, copy_function=shutil.copy2)
    if _manifest(src) != _manifest(partial):
        raise OffloadError(f"copy of {src} to {partial} does not match its source; nothing was removed")
    os.rename(partial, dst)
    shutil.rmtree(src)


def _check_writable(path: Path) -> None:
    if not os.access(path, os.W_OK | os.X_OK):
        raise OffloadError(
            f"{path} is not writable by this user; nothing was moved (run as the owner of the model tree)"
        )


def apply(plan: Plan, moves: tuple[Move, ...], on_step: Callable[[str], None]) -> list[Move]:
    """Carry out `moves` (already re-checked against fresh evidence), journal first."""
    archive = Path(plan.archive)
    journal = Journal(archive)
    if journal.unfinished():
        raise OffloadError(
            f"{archive} has unfinished steps from an interrupted run: run `retire offload --resume` first"
        )
    for m in moves:  # refuse before the first move, not half-way
        _check_writable(Path(m.src).parent)
        if Path(m.dst).exists():
            raise OffloadError(f"{m.dst} already exists in the archive; nothing was moved")
    done = []
    step = journal.next_step()
    for m in moves:
        journal.append({"step": step, "phase": "begin", "op": "offload", **asdict(m)})
        move_dir(Path(m.src), Path(m.dst))
        journal.append({"step": step, "phase": "done", "op": "offload", **asdict(m)})
        on_step(f"moved {m.src} -> {m.dst}")
        done.append(m)
        step += 1
    return done


def resume(archive: Path, on_step: Callable[[str], None]) -> int:
    """Complete every step an interrupted run began; returns how many."""
    journal = Journal(archive)
    pending = journal.unfinished()
    for r in pending:
        src, dst = Path(r["src"]), Path(r["dst"])
        if r["op"] == "restore":
            src, dst = Path(r["dst"]), Path(r["src"])
        move_dir(src, dst)
        journal.append({**{k: v for k, v in r.items() if k != "time"}, "phase": "done"})
        on_step(f"completed {r['op']} of {r['model']} {r['version']}: {src} -> {dst}")
    return len(pending)


def restore(archive: Path, model: str | None, version: str | None, on_step: Callable[[str], None]) -> int:
    """Move archived versions back where they were served from (all, or one model/version)."""
    journal = Journal(archive)
    if journal.unfinished():
        raise OffloadError(
            f"{archive} has unfinished steps from an interrupted run: run `retire offload --resume` first"
        )
    archived: dict[tuple[str, str], dict[str, Any]] = {}
    for r in journal.records():
        if r["phase"] != "done":
            continue
        key = (r["model"], r["version"])
        if r["op"] == "offload":
            archived[key] = r
        elif r["op"] == "restore":
            archived.pop(key, None)
    chosen = [
        r
        for key, r in archived.items()
        if (model is None or key[0] == model) and (version is None or key[1] == version)
    ]
    if not chosen:
        raise OffloadError(f"nothing archived in {archive} matches; see {journal.path}")
    for r in chosen:
        if Path(r["src"]).exists():
            raise OffloadError(f"{r['src']} exists again; refusing to overwrite it (nothing was restored)")
    step = journal.next_step()
    for r in chosen:
        fields = {k: r[k] for k in ("model", "version", "src", "dst", "size_bytes")}
        journal.append({"step": step, "phase": "begin", "op": "restore", **fields})
        move_dir(Path(r["dst"]), Path(r["src"]))
        journal.append({"step": step, "phase": "done", "op": "restore", **fields})
        on_step(f"restored {r['dst']} -> {r['src']}")
        step += 1
    return len(chosen)

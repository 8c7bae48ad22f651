"""From advice to action: move safe version directories out of the served tree, and back.

Safety properties, each tested for real (tests/actions/test_offload.py, tests/actions/test_offload_safety.py):
- only versions whose verdict is `safe` in a report made immediately before acting, at the present,
  are moved; a version that got a call since the plan was made is skipped and reported;
- everything read from outside is untrusted: a plan must name exactly what the fresh scan finds
  (same source, same destination, same archive), and a journal record must have the right shape
  and paths (absolute, normalised, the destination exactly `<archive>/models/<model>/<name>`);
- a source is a real directory (or a TorchServe `.mar` file) reached from `/` without a single
  symlink (model roots are resolved once, when they are named); the destination is reached the
  same way inside the archive, whose directories retire creates itself, never following a link;
- model and version names must be plain path components (no `/`, `.`, `..`, NUL or control
  characters);
- nothing is ever deleted: a move is an atomic rename on one filesystem; across filesystems it is
  a copy to `<dst>.partial` (iterative, files fsynced), verified entry by entry (type, mode, size,
  SHA-256, link target), renamed into place, journaled as verified, and only then is the source
  removed;
- every step is appended to a journal (`<archive>/journal.jsonl`, JSON lines, fsynced) *before* it
  is done and marked done after; a failure (no space, I/O error) undoes the step's partial copy
  and journals it as failed, and a crash at any point leaves a state that `--resume` completes;
- one run at a time per archive (`<archive>/.lock`) and per model root (a lock on the root
  directory itself); the locks are taken without waiting (a held lock is a refusal), and the
  re-check made under them ends by the run's `--deadline`, so a slow server cannot hold them past
  it; once the deadline has passed no further move starts (one under way is finished: a move is
  never cut midway), and the locks go with the run;
- the archive must not be inside a model root (TF Serving would serve it), nor a root inside it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from retire.deadline import NO_DEADLINE, Deadline
from retire.errors import OffloadError
from retire.servers import canonical_version
from retire.sources.disk.inventory import unsafe_component

if TYPE_CHECKING:
    from retire.advisor import Report, Row

JOURNAL = "journal.jsonl"
MODELS = "models"  # <archive>/models/<model>/<version>
PARTIAL = ".partial"
OPS = ("offload", "restore")
PHASES = ("begin", "verified", "done", "failed")


@dataclass(frozen=True)
class Move:
    model: str
    version: str
    src: str
    dst: str
    size_bytes: int


_MOVE_FIELDS = {"model": str, "version": str, "src": str, "dst": str, "size_bytes": int}


@dataclass(frozen=True)
class Plan:
    archive: str
    moves: tuple[Move, ...]
    evaluated_at: float

    def to_json(self) -> str:
        from retire.advisor import iso

        doc = {
            "archive": self.archive,
            "evaluated_at": iso(self.evaluated_at),  # RFC 3339, as in the report
            "moves": [asdict(m) for m in self.moves],
        }
        return json.dumps(doc, indent=2) + "\n"

    @staticmethod
    def from_json(text: str, where: str) -> Plan:
        """Only the shape is checked here; `checked_moves` compares every move with a fresh scan."""
        bad = f"{where} is not a plan written by `retire plan --format json`"
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as e:  # RecursionError: nesting deeper than any plan
            raise OffloadError(f"{bad} ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("moves"), list):
            raise OffloadError(f"{bad} (no list of moves)")
        when = _instant(doc.get("evaluated_at"))
        if not isinstance(doc.get("archive"), str) or when is None:
            raise OffloadError(f"{bad} (no archive or evaluated_at)")
        moves = []
        for n, m in enumerate(doc["moves"]):
            if (
                not isinstance(m, dict)
                or set(m) != set(_MOVE_FIELDS)
                or not all(_typed(m[k], t) for k, t in _MOVE_FIELDS.items())
            ):
                raise OffloadError(f"{bad} (moves[{n}] is not {{model, version, src, dst, size_bytes}})")
            moves.append(Move(**m))
        return Plan(doc["archive"], tuple(moves), when)


def _typed(value: object, kind: type) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


def _instant(value: object) -> float | None:
    """`evaluated_at` as written (RFC 3339), or Unix seconds from plans of earlier versions."""
    from datetime import datetime

    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------
# Paths: what may be moved, and where to


def real_archive(archive: Path) -> Path:
    """The archive as an absolute path without symlinks: the user names it, retire follows
    nothing below it."""
    return Path(os.path.realpath(archive))


def _inside(child: Path, parent: Path) -> bool:
    try:
        Path(os.path.realpath(child)).relative_to(os.path.realpath(parent))
        return True
    except ValueError:
        return False


def check_archive(archive: Path, roots: Iterable[str]) -> None:
    for root in roots:
        if _inside(archive, Path(root)) or _inside(Path(root), archive):
            raise OffloadError(
                f"--archive-dir {archive} overlaps the model root {root}; TF Serving would keep serving "
                "what is archived there: choose a directory outside every model root"
            )


def _name_ok(what: str, name: str) -> None:
    why = unsafe_component(name)
    if why is not None:
        raise OffloadError(f"{what} {name!r} is not a safe directory name ({why}); refusing to move it")


def _normal_absolute(path: str) -> bool:
    return os.path.isabs(path) and os.path.normpath(path) == path and not path.startswith("//")


def source_of(row: Row, roots: Iterable[str]) -> tuple[str, str]:
    """(resolved model root, absolute source) for a scanned version, or a refusal.

    The root is resolved (it may be reached through a symlink: the user named it); below it not a
    single component may be a symlink, and the source must be a directory or a `.mar` file.
    """
    _name_ok("model name", row.model)
    _name_ok("version", row.version)
    if row.path is None:
        raise OffloadError(f"{row.model} {row.version} is not on disk; nothing to move")
    path = os.path.abspath(row.path)
    for root in roots:
        base = os.path.abspath(root)
        rel = os.path.relpath(path, base)
        if rel == "." or rel.startswith(".."):
            continue
        real_root = os.path.realpath(base)
        src = os.path.join(real_root, rel)
        _check_source(src, real_root, row)
        return real_root, src
    raise OffloadError(f"{row.path} is not inside any model root; refusing to move it")


def _check_source(src: str, root: str, row: Row) -> None:
    where = f"{row.model} {row.version} ({src})"
    current = root
    for part in os.path.relpath(src, root).split(os.sep):
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except OSError as e:
            raise OffloadError(f"cannot read {current}: {e.strerror}; {where} was not moved") from None
        if stat.S_ISLNK(st.st_mode):
            raise OffloadError(
                f"{current} is a symlink; retire never moves a version through a symlink, so {where} "
                "was not moved (offload the directory it points to under its own name)"
            )
    if not (stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and src.endswith(".mar"))):
        raise OffloadError(f"{where} is neither a directory nor a .mar model archive; refusing to move it")


def destination(archive: Path, model: str, src: str) -> str:
    """Where a version goes: `<archive>/models/<model>/<name of the source>`, nothing else."""
    _name_ok("model name", model)
    name = os.path.basename(src)
    _name_ok("version directory", name)
    return str(real_archive(archive) / MODELS / model / name)


def make_plan(report: Report, archive: Path, only: tuple[tuple[str, str], ...] = ()) -> Plan:
    """Moves for the report's safe versions (or exactly `only`, each of which must be safe)."""
    rows = {(r.model, r.version): r for r in report.rows()}
    if only:
        chosen = []
        for key in only:
            # As written first (TorchServe's `01` and `1` are two versions), then by TF Serving's
            # number rule (`007` names `7`), as --pin reads it.
            row = rows.get(key) or rows.get((key[0], canonical_version(key[1])))
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
        _, src = source_of(r, report.header.model_roots)
        dst = destination(archive, r.model, src)
        moves.append(Move(r.model, r.version, src, dst, int(r.size_bytes or 0)))
    return Plan(str(real_archive(archive)), tuple(moves), report.header.evaluated_at)


@dataclass(frozen=True)
class Checked:
    move: Move
    root: str


def checked_moves(
    plan: Plan, fresh: Report, archive: Path, where: str, on_skip: Callable[[str], None]
) -> list[Checked]:
    """The plan's moves that are still safe in the fresh report, each exactly as the fresh scan
    finds it. A move naming another source or destination than the scan's refuses the whole plan:
    plans are files, and files can be edited."""
    if plan.archive != str(real_archive(archive)):
        raise OffloadError(
            f"{where} was made for the archive {plan.archive!r}, not --archive-dir {real_archive(archive)}; "
            "nothing was moved (make a new plan with this --archive-dir)"
        )
    now = {(r.model, r.version): r for r in fresh.rows()}
    seen: set[tuple[str, str]] = set()
    out = []
    for m in plan.moves:
        if (m.model, m.version) in seen:
            raise OffloadError(f"{where} names {m.model} {m.version} twice; nothing was moved")
        seen.add((m.model, m.version))
        r = now.get((m.model, m.version))
        if r is None or r.status.value != "safe":
            why = f"now {r.status.value} ({r.reason})" if r else "no longer on disk"
            on_skip(f"skipped {m.model} {m.version}: {why}")
            continue
        root, src = source_of(r, fresh.header.model_roots)
        dst = destination(archive, r.model, src)
        if (m.src, m.dst) != (src, dst):
            raise OffloadError(
                f"{where} moves {m.model} {m.version} from {m.src!r} to {m.dst!r}, but this scan finds it "
                f"at {src} (to go to {dst}); refusing the plan, nothing was moved (make a new one)"
            )
        out.append(Checked(Move(m.model, m.version, src, dst, int(r.size_bytes or 0)), root))
    return out


def read_plan(path: Path) -> Plan:
    """A plan file written by `retire plan --format json` (its shape only; see `checked_moves`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise OffloadError(f"cannot read --plan {path}: {e}") from None
    return Plan.from_json(text, str(path))


def plan_for(
    report: Report,
    archive: Path,
    plan_file: Path | None,
    only: tuple[tuple[str, str], ...],
    on_skip: Callable[[str], None],
) -> Plan:
    """What `offload` would move: the --plan file's moves still safe in `report` (a plan file is
    untrusted: each move must be what the scan finds), or a new plan from `report`."""
    check_archive(archive, report.header.model_roots)
    if plan_file is None:
        return make_plan(report, archive, only)
    plan = read_plan(plan_file)
    checked_moves(plan, report, archive, str(plan_file), on_skip)
    return plan


def recheck(
    plan: Plan,
    fresh: Callable[[], Report],
    archive: Path,
    roots: Iterable[str],
    where: str,
    say: Callable[[str], None],
    deadline: Deadline = NO_DEADLINE,
) -> list[Move]:
    """Carry out `plan`, re-checked against `fresh()`: a report made under the locks, right before
    acting. Safe in the fresh report is the whole test: any doubt (a gap, a warning) has already
    turned every would-be-safe version unknown there, and a version called since the plan was made
    is skipped and reported. Journals into `archive`, the archive that was locked and checked.
    `fresh()` must end by `deadline` (the run's); no move starts after it."""
    roots = tuple(roots)
    with locked(archive), locked_roots(roots):
        report = fresh()
        unlocked = {os.path.realpath(r) for r in report.header.model_roots} - {
            os.path.realpath(r) for r in roots
        }
        if unlocked:  # a library caller passes the roots and the report separately
            raise OffloadError(
                f"the fresh report's model root(s) {', '.join(sorted(unlocked))} were not locked; "
                "nothing was moved"
            )
        check_archive(archive, report.header.model_roots)
        return apply(archive, checked_moves(plan, report, archive, where, say), say, deadline)


class PlanFormat(StrEnum):
    """How `retire plan` prints a plan: for people, or for `offload --plan`."""

    TEXT = "text"
    JSON = "json"


def render_plan(plan: Plan, fmt: PlanFormat, model_config: bool, advice: tuple[str, ...] = ()) -> str:
    return plan.to_json() if fmt is PlanFormat.JSON else plan_text(plan, model_config, advice)


def plan_text(plan: Plan, model_config: bool, advice: tuple[str, ...] = ()) -> str:
    """The plan for people, directory names with control characters escaped. The model config
    note only where there is a model config file; the server-config changes that would free
    loaded idle versions (retire never edits a config)."""
    from retire.advisor import human_bytes
    from retire.escape import printable

    tail = ["to free memory, change the server config (retire does not edit it):"]
    tail += [f"  {a}" for a in advice]
    if not plan.moves:
        lines = ["plan: nothing to move (no version is safe to offload)", *(tail if advice else [])]
        return "\n".join(map(printable, lines)) + "\n"
    lines = [f"plan: move {len(plan.moves)} version(s) to {plan.archive}"]
    lines += [f"  mv {m.src} -> {m.dst}  ({human_bytes(m.size_bytes)})" for m in plan.moves]
    if model_config:
        lines.append(
            "config: no change (a version listed under a `specific` policy or a version label is "
            "protected, so it is never moved)"
        )
    if advice:
        lines += tail
    return "\n".join(map(printable, lines)) + "\n"


# --------------------------------------------------------------------------------------------
# The journal


class Journal:
    """Append-only JSON lines, fsynced after each record; read as untrusted input."""

    # Called after each record is on disk. The crash tests set it (tests/crash.py) to kill the
    # process there, as a power cut would; nothing in retire sets it, nor reads the environment.
    after_write: ClassVar[Callable[[], None] | None] = None

    def __init__(self, archive: Path) -> None:
        self.archive = real_archive(archive)
        self.path = self.archive / JOURNAL

    def records(self) -> list[dict[str, Any]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)  # the archive's contents are untrusted
        except FileNotFoundError:
            return []
        except OSError as e:
            raise OffloadError(f"cannot read the journal {self.path}: {_problem(e)} (a symlink?)") from None
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
            problem = _record_problem(doc, self.archive)
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
            raise OffloadError(f"cannot write the journal {self.path}: {_problem(e)}") from None
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
    if not _typed(doc.get("step"), int) or doc["step"] < 1:
        return "no step number"
    if doc.get("phase") not in PHASES or doc.get("op") not in OPS:
        return "unknown phase or op"
    for key in ("model", "version", "src", "dst"):
        if not isinstance(doc.get(key), str):
            return f"no {key}"
    if not _typed(doc.get("size_bytes"), int):
        return "no size_bytes"
    for key in ("model", "version"):
        if unsafe_component(doc[key]):
            return f"{key} {doc[key]!r} is not a safe name"
    src, dst = doc["src"], doc["dst"]
    if not _normal_absolute(src) or src == "/":
        return f"src {src!r} is not an absolute, normalised path"
    if unsafe_component(os.path.basename(src)):
        return f"src {src!r} does not end in a safe name"
    expected = str(archive / MODELS / doc["model"] / os.path.basename(src))
    if dst != expected:
        return f"dst {dst!r} is not {expected!r}"
    root = doc.get("root")
    if root is not None and (
        not isinstance(root, str) or not _normal_absolute(root) or not src.startswith(root.rstrip("/") + "/")
    ):
        return f"root {root!r} is not an absolute path above src"
    return None


@contextlib.contextmanager
def locked(archive: Path) -> Iterator[None]:
    """One run at a time per archive."""
    try:
        archive.mkdir(parents=True, exist_ok=True)
        fd = os.open(real_archive(archive) / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        f = os.fdopen(fd, "r+")
    except OSError as e:
        raise OffloadError(f"cannot use --archive-dir {archive}: {_problem(e)}") from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OffloadError(
                f"another retire offload or restore is running on {archive} (it holds {archive / '.lock'}); "
                "wait for it to finish"
            ) from None
        yield


@contextlib.contextmanager
def locked_roots(roots: Iterable[str]) -> Iterator[None]:
    """One offload at a time per model root, whatever its archive: a lock on the root directory
    itself (nothing is written into the served tree)."""
    with contextlib.ExitStack() as stack:
        for root in sorted({os.path.realpath(r) for r in roots}):
            try:
                fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue  # a root that is gone has nothing to move; the checks per move say so
            stack.callback(os.close, fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OffloadError(
                    f"another retire run is moving versions in the model root {root} (it holds a lock on "
                    "that directory), perhaps to another archive; wait for it to finish"
                ) from None
        yield


# --------------------------------------------------------------------------------------------
# Walking without following symlinks


def _open_dir(path: Path) -> int:
    """`path` opened from `/` one component at a time, following no symlink: what is checked is
    what is used."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    current = Path("/")
    try:
        for part in path.parts[1:]:
            current = current / part
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(current):
                    raise OffloadError(
                        f"{current} is a symlink; retire never follows one while moving versions "
                        f"(under {path}): replace it with the directory itself, or remove it"
                    ) from None
                raise OffloadError(f"cannot open {current}: {e.strerror}") from None
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def _dir(path: Path) -> Iterator[int]:
    fd = _open_dir(path)
    try:
        yield fd
    finally:
        os.close(fd)


def _kind(dir_fd: int, name: str) -> str | None:
    """What `name` is in the directory, without following it: dir, file, link, other or None."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "file" if stat.S_ISREG(st.st_mode) else "other"


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entry(path: str, st: os.stat_result) -> tuple[object, ...]:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", mode)
    if stat.S_ISREG(st.st_mode):
        return ("file", mode, st.st_size, _digest(path))
    return ("other", st.st_mode)


def _manifest(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below root (root itself as '.'): type, mode, size, SHA-256, link target.
    Iterative: a tree of any depth."""
    out = {".": _entry(str(root), os.lstat(root))}
    stack = [(str(root), "")] if out["."][0] == "dir" else []
    while stack:
        current, rel = stack.pop()
        with os.scandir(current) as entries:
            for e in entries:
                name = f"{rel}/{e.name}" if rel else e.name
                out[name] = _entry(e.path, e.stat(follow_symlinks=False))
                if out[name][0] == "dir":
                    stack.append((e.path, name))
    return out


def _copy_file(src: str, dst: str) -> None:
    with open(src, "rb") as fin, open(dst, "xb") as fout:  # x: never through an existing name
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst, follow_symlinks=False)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(src: Path, dst: Path) -> None:
    """Copy a file or a tree, symlinks as symlinks, iteratively (any depth); data fsynced."""
    if not stat.S_ISDIR(os.lstat(src).st_mode):
        _copy_file(str(src), str(dst))
        return
    os.mkdir(dst, 0o700)
    dirs = [(str(src), str(dst))]
    stack = [dirs[0]]
    while stack:
        s, d = stack.pop()
        with os.scandir(s) as entries:
            for e in entries:
                target = os.path.join(d, e.name)
                if e.is_symlink():
                    os.symlink(os.readlink(e.path), target)
                elif e.is_dir(follow_symlinks=False):
                    os.mkdir(target, 0o700)
                    dirs.append((e.path, target))
                    stack.append((e.path, target))
                elif e.is_file(follow_symlinks=False):
                    _copy_file(e.path, target)
                else:
                    raise OSError(errno.EINVAL, "not a file, directory or symlink", e.path)
    for s, d in reversed(dirs):  # children first, so no later write changes a parent's times
        shutil.copystat(s, d, follow_symlinks=False)
        _fsync_dir(d)


def _remove(path: Path) -> None:
    """Remove a file, symlink or tree, iteratively (any depth); never follows a symlink."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    order: list[str] = []
    stack = [str(path)]
    while stack:
        current = stack.pop()
        order.append(current)
        with os.scandir(current) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    os.unlink(e.path)
    for d in reversed(order):  # a directory is listed before everything below it
        os.rmdir(d)


def _problem(e: OSError) -> str:
    where = f" ({e.filename})" if e.filename else ""
    return f"{e.strerror or e}{where}"


# --------------------------------------------------------------------------------------------
# One step, crash-safely


def _ends(record: dict[str, Any]) -> tuple[Path, Path]:
    """(from, to) of a step: offload moves src to dst, restore dst back to src."""
    src, dst = Path(record["src"]), Path(record["dst"])
    return (src, dst) if record["op"] == "offload" else (dst, src)


def _run_step(journal: Journal, record: dict[str, Any], verified: bool = False) -> None:
    """Carry out, or finish, one step whose `begin` is journaled. Idempotent: a resumed step
    calls it again whatever the crash left. On return the step is journaled done; when it
    cannot be done, the state is put back as before the step, journaled failed, and raised."""
    frm, to = _ends(record)
    partial = to.with_name(to.name + PARTIAL)
    base = {k: v for k, v in record.items() if k not in ("time", "phase", "reason")}
    what = f"{record['op']} of {record['model']} {record['version']}"

    def fail(message: str) -> NoReturn:
        journal.append({**base, "phase": "failed", "reason": message})
        raise OffloadError(f"{what} failed and was undone: {message}")

    def done() -> None:
        journal.append({**base, "phase": "done"})

    with _dir(frm.parent) as src_fd, _dir(to.parent) as dst_fd:
        s, d, p = _kind(src_fd, frm.name), _kind(dst_fd, to.name), _kind(dst_fd, partial.name)
        if verified:  # the copy at `to` was verified; what is left of the source goes
            if d not in ("dir", "file"):
                raise OffloadError(
                    f"{what}: the journal says {to} was copied and verified, but it is gone; "
                    f"{frm} {'still exists' if s else 'is gone too'}: resolve by hand"
                )
            _remove_source(frm, to, what)
            return done()
        if s in ("link", "other") or d in ("link", "other"):
            odd = frm if s in ("link", "other") else to
            fail(f"{odd} is a symlink or special file, not what retire moved; it was left as it is")
        if s is None:
            if d is not None and p is None:
                return done()  # renamed before a crash
            if d is None and p is None:
                fail(f"{frm} is gone and was never moved (someone removed it); nothing to do")
            raise OffloadError(f"{what}: {frm} is gone but {partial} is there; resolve by hand")
        if d is not None:  # a crash between renaming the verified copy and journaling it
            if _same(frm, to):
                journal.append({**base, "phase": "verified"})
                _remove_source(frm, to, what)
                return done()
            fail(f"{to} already exists and is not a copy of {frm}; both were left as they are")
        try:
            os.rename(frm.name, to.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)  # one filesystem: atomic
        except OSError as e:
            if e.errno != errno.EXDEV:
                fail(f"cannot move {frm} to {to}: {_problem(e)}")
        else:
            _sync(dst_fd)
            return done()
        _copy_verified(frm, to, partial, p is not None, dst_fd, fail)
        journal.append({**base, "phase": "verified"})
        _remove_source(frm, to, what)
        return done()


def _sync(dir_fd: int) -> None:
    """Make a rename durable; the rename is done either way, so a failure here changes nothing."""
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)


def _same(a: Path, b: Path) -> bool:
    try:
        return _manifest(a) == _manifest(b)
    except OSError:
        return False


def _copy_verified(
    frm: Path, to: Path, partial: Path, reuse: bool, dst_fd: int, fail: Callable[[str], NoReturn]
) -> None:
    """Across filesystems: copy to `partial` (or reuse a crash's partial copy when it verifies),
    verify, rename into place. On any failure the partial copy is removed and the step fails."""
    try:
        if not (reuse and _same(frm, partial)):
            _remove(partial)
            _copy(frm, partial)
        problem = None if _same(frm, partial) else f"the copy {partial} does not match {frm}"
        if problem is None:
            os.rename(partial.name, to.name, src_dir_fd=dst_fd, dst_dir_fd=dst_fd)
    except OSError as e:
        problem = f"{_problem(e)} while copying {frm} to {partial}"
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            problem += f" (free space on the filesystem of {to.parent}, then run the command again)"
    if problem is None:
        _sync(dst_fd)
        return
    try:
        _remove(partial)
    except OSError as e:
        raise OffloadError(
            f"{problem}, and the partial copy could not be removed ({_problem(e)}); "
            "fix that, then run `retire offload --resume`"
        ) from None
    fail(f"{problem}; the partial copy was removed, {frm} is untouched")


def _remove_source(frm: Path, to: Path, what: str) -> None:
    try:
        _remove(frm)
    except OSError as e:
        raise OffloadError(
            f"{what}: the copy {to} is verified, but removing {frm} failed ({_problem(e)}); "
            "fix that, then run `retire offload --resume` to finish"
        ) from None


# --------------------------------------------------------------------------------------------
# Offload, resume, restore


def _check_writable(path: Path) -> None:
    if not os.access(path, os.W_OK | os.X_OK):
        raise OffloadError(
            f"{path} is not writable by this user; nothing was moved (run as the owner of the model tree)"
        )


def _archive_dir_for(archive: Path, model: str) -> None:
    """Make `<archive>/models/<model>/`, one level at a time, never through a symlink."""
    with _dir(archive) as fd:
        for part in (MODELS, model):
            try:
                os.mkdir(part, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as e:
                raise OffloadError(f"cannot create {archive / part}: {e.strerror}") from None
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                where = archive / MODELS / model if part == model else archive / MODELS
                raise OffloadError(
                    f"{where} is not a directory (a symlink?); retire never follows a link inside the "
                    "archive: remove it. Nothing was moved"
                ) from None
            os.close(fd)
            fd = nxt


def _preflight_offload(archive: Path, c: Checked) -> None:
    src, dst = Path(c.move.src), Path(c.move.dst)
    _check_writable(src.parent)
    with _dir(src.parent) as fd:
        if _kind(fd, src.name) not in ("dir", "file"):
            raise OffloadError(f"{src} is not a directory or file any more; nothing was moved")
    for inside in (archive / MODELS, archive / MODELS / c.move.model):
        if os.path.islink(inside) or (os.path.lexists(inside) and not inside.is_dir()):
            raise OffloadError(
                f"{inside} is a symlink or not a directory; retire never follows a link inside the "
                "archive: remove it. Nothing was moved"
            )
    for path in (dst, dst.with_name(dst.name + PARTIAL)):
        if os.path.lexists(path):
            raise OffloadError(f"{path} already exists in the archive; nothing was moved")


def apply(
    archive: Path, moves: list[Checked], on_step: Callable[[str], None], deadline: Deadline = NO_DEADLINE
) -> list[Move]:
    """Carry out `moves` (already checked against a fresh scan), journal first. No move starts
    once `deadline` has passed; the one under way is finished (the journal's guarantees hold for
    whole steps), and what was done is said."""
    journal = Journal(archive)
    if journal.unfinished():
        raise OffloadError(
            f"{archive} has unfinished steps from an interrupted run: run `retire offload --resume` first"
        )
    for c in moves:  # refuse before the first move, not half-way
        _preflight_offload(journal.archive, c)
    done: list[Move] = []
    step = journal.next_step()
    for c in moves:
        m = c.move
        if deadline.passed:
            raise OffloadError(
                f"the run's --deadline ({deadline.shown}) passed before {m.model} {m.version} was moved; "
                f"{len(done)} version(s) were moved, the other {len(moves) - len(done)} were not started "
                "(nothing is unfinished): run the command again, or raise --deadline"
            )
        _archive_dir_for(journal.archive, m.model)
        record = {"step": step, "phase": "begin", "op": "offload", **asdict(m), "root": c.root}
        try:
            journal.append(record)
            _run_step(journal, record)
        except OffloadError as e:
            if done:
                raise OffloadError(f"{e.message} ({len(done)} version(s) were moved before it)") from None
            raise
        on_step(f"moved {m.src} -> {m.dst}")
        done.append(m)
        step += 1
    return done


def _roots(records: Iterable[dict[str, Any]]) -> list[str]:
    return [r["root"] for r in records if isinstance(r.get("root"), str)]


def resume(archive: Path, on_step: Callable[[str], None]) -> int:
    """Complete every step an interrupted run began; returns how many."""
    journal = Journal(archive)
    pending = journal.unfinished()
    with locked_roots(_roots(pending)):
        for r in pending:
            _run_step(journal, r, verified=r["phase"] == "verified")
            frm, to = _ends(r)
            on_step(f"completed {r['op']} of {r['model']} {r['version']}: {frm} -> {to}")
    return len(pending)


def _preflight_restore(r: dict[str, Any]) -> None:
    src, dst = Path(r["src"]), Path(r["dst"])
    what = f"{r['model']} {r['version']}"
    try:
        with _dir(src.parent) as fd:
            there = _kind(fd, src.name)
    except OffloadError as e:
        raise OffloadError(f"cannot restore {what}: {e.message} (nothing was restored)") from None
    if there is not None:
        kind = "a symlink" if there == "link" else "something"
        raise OffloadError(f"{src} exists again ({kind}); refusing to overwrite it (nothing was restored)")
    _check_writable(src.parent)
    with _dir(dst.parent) as fd:
        if _kind(fd, dst.name) not in ("dir", "file"):
            raise OffloadError(
                f"the archived copy {dst} of {what} is missing or not a directory or file; "
                "nothing was restored"
            )


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
        else:
            archived.pop(key, None)
    chosen = [
        r
        for key, r in archived.items()
        if (model is None or key[0] == model) and (version is None or key[1] == version)
    ]
    if not chosen:
        raise OffloadError(f"nothing archived in {archive} matches; see {journal.path}")
    with locked_roots(_roots(chosen)):
        for r in chosen:  # refuse before the first move, not half-way
            _preflight_restore(r)
        step = journal.next_step()
        for r in chosen:
            keys = ("model", "version", "src", "dst", "size_bytes", "root")
            record: dict[str, Any] = {"step": step, "phase": "begin", "op": "restore"}
            record.update({k: r[k] for k in keys if k in r})
            journal.append(record)
            _run_step(journal, record)
            on_step(f"restored {r['dst']} -> {r['src']}")
            step += 1
    return len(chosen)

"""`retire unload` on a server that loads what its repository holds (MLServer): a version's folder
leaves the repository before the model is loaded again, and comes back before it is loaded back.

Each move is one of `retire offload`'s (step.py: an atomic rename, or across filesystems a
verified copy; journaled before and after, fsynced; a crash at any point leaves what running the
step again completes), with offload's checks before it (paths.py, offload.py). They are journaled
apart, in `<archive>/unload-folders.jsonl` (offload's record shape and record check), so that
`retire restore` never puts a folder back behind the server's back nor `retire offload` waits on
one; every `retire unload` run first finishes a move a crash left.

The journal is untrusted: a folder goes back only from `<archive>/models/<model>/<name>` (the
record check), only to a path inside one of the --model-dir roots whose every component below the
root is a plain name, reached without a symlink (step.py opens each directory from `/` with
O_NOFOLLOW), and only when the archived folder's model-settings.json still declares that model and
version.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retire.actions.journal import Journal
from retire.actions.offload import archive_dir_for, archived, preflight_offload, preflight_restore
from retire.actions.paths import check_archive, destination, source_of
from retire.actions.plan import Checked
from retire.actions.step import ends, run_step
from retire.advisor.plan import Move
from retire.errors import OffloadError
from retire.sources.disk.inventory import unsafe_component
from retire.sources.disk.model_settings import declared_by

if TYPE_CHECKING:
    from retire.advisor import Row

FOLDERS_JOURNAL = "unload-folders.jsonl"
# What finishes a move a crash or a failure left (every unload run settles them first).
RESUME = "retire unload --undo"

Folder = dict[str, Any]  # src, dst, root, size_bytes: where a version's folder was and goes


class Folders:
    """The version folders `retire unload` moved out of the repository, and back."""

    def __init__(self, archive: Path, roots: Iterable[str]) -> None:
        self.journal = Journal(archive, FOLDERS_JOURNAL, resume=RESUME)
        self.given = tuple(roots)  # as named (a fresh scan's paths are under these)
        self.roots = tuple(sorted({os.path.realpath(r) for r in self.given}))

    def settle(self, say: Callable[[str], None]) -> None:
        """Finish every move a crash left begun, in the direction it was going."""
        for r in self.journal.unfinished():
            if r["op"] == "restore":
                self._may_go_back(r)
            else:
                self._may_go_out(r)
            run_step(self.journal, r, verified=r["phase"] == "verified")
            frm, to = ends(r)
            say(f"completed the interrupted move of {r['model']} {r['version']}: {frm} -> {to}")

    def plan(self, model: str, drop: Iterable[str], rows: Mapping[str, Row]) -> dict[str, Folder]:
        """Where each dropped version's folder is (a fresh scan's row) and goes, checked as
        offload checks a move; refused, before any change, where one cannot move."""
        check_archive(self.journal.archive, self.given)
        out: dict[str, Folder] = {}
        for version in drop:
            row = rows[version]
            root, src = source_of(row, self.given)
            dst = destination(self.journal.archive, model, src)
            size = int(row.size_bytes or 0)
            if any(f["dst"] == dst for f in out.values()):
                raise OffloadError(
                    f"two folders of {model} would go to {dst} in the archive (folders of the same name); "
                    "nothing was unloaded: unload them one at a time with --only"
                )
            preflight_offload(self.journal.archive, Checked(Move(model, version, src, dst, size), root))
            out[version] = {"src": src, "dst": dst, "root": root, "size_bytes": size}
        return out

    def move_out(self, model: str, folders: Mapping[str, Folder]) -> None:
        """Each folder into `<archive>/models/<model>/`, journaled first."""
        for version, f in folders.items():
            archive_dir_for(self.journal.archive, model)
            record = {"step": self.journal.next_step(), "phase": "begin", "op": "offload", "model": model}
            record.update({"version": version, **{k: f[k] for k in ("src", "dst", "size_bytes", "root")}})
            self.journal.append(record)
            run_step(self.journal, record)

    def move_back(self, model: str, versions: Iterable[str]) -> list[str]:
        """The archived folders of `versions` back where the journal says they were, each checked
        first; returns where they went. A version whose folder never left has nothing to move."""
        wanted = set(versions)
        todo = [r for r in archived(self.journal, model, None) if r["version"] in wanted]
        for r in todo:  # refuse before the first move, not half-way
            self._may_go_back(r)
            if not self._put_back_by_hand(r):
                preflight_restore(r)
        out = []
        for r in todo:
            record = {"step": self.journal.next_step(), "phase": "begin", "op": "restore"}
            record.update({k: r[k] for k in ("model", "version", "src", "dst", "size_bytes", "root")})
            self.journal.append(record)
            run_step(self.journal, record)
            out.append(r["src"])
        return out

    def _put_back_by_hand(self, r: dict[str, Any]) -> bool:
        """The folder is back where it was and gone from the archive (someone moved it back):
        the restore step then finds it done (step.py), and the load goes ahead."""
        src = Path(r["src"])
        if os.path.lexists(r["dst"]) or os.path.islink(src) or not src.is_dir():
            return False
        return declared_by(src) == (r["model"], r["version"])

    def _may_go_out(self, r: dict[str, Any]) -> None:
        """A begun move out of the repository, checked as untrusted input before it is finished:
        from inside a --model-dir root, a folder declaring that model and version (or already in
        the archive, where the step finds it)."""
        self._in_a_root(r)
        if os.path.lexists(r["src"]) and declared_by(Path(r["src"])) != (r["model"], r["version"]):
            raise OffloadError(
                f"the journal's unfinished move of {r['model']} {r['version']} names {r['src']}, which "
                "does not declare that model and version; nothing was moved (check the journal)"
            )

    def _in_a_root(self, r: dict[str, Any]) -> None:
        """A journal record's path in the repository: inside a --model-dir root, plain names."""
        what = f"{r['model']} {r['version']}"
        root, src = r.get("root"), r["src"]
        if not isinstance(root, str) or root not in self.roots:
            named = ", ".join(self.roots) or "none (give --model-dir)"
            raise OffloadError(
                f"the journal names a folder of {what} under {root!r}, which is no --model-dir root "
                f"({named}); nothing was moved"
            )
        parts = os.path.relpath(src, root).split(os.sep)
        if not src.startswith(root.rstrip("/") + "/") or any(unsafe_component(p) for p in parts):
            raise OffloadError(
                f"the journal names a folder of {what} at {src!r}, not a plain path inside {root}; "
                "nothing was moved"
            )

    def _may_go_back(self, r: dict[str, Any]) -> None:
        """A journal record's way back into the repository, checked as untrusted input."""
        self._in_a_root(r)
        what = f"{r['model']} {r['version']}"
        if not os.path.lexists(r["dst"]):
            return  # moved back already (by a crash's step, or by hand): checked where it is
        found = declared_by(Path(r["dst"]))
        if found != (r["model"], r["version"]):
            said = f"declares {found[0]} {found[1]}" if found else "declares no model MLServer loads"
            raise OffloadError(
                f"the archived folder {r['dst']} {said}, not {what}; nothing was moved back "
                "(check the archive)"
            )

"""Shared by the offload tests: a real Prometheus whose history ends now (so `offload --apply`,
which always re-checks at the present, sees the same evidence as the plan), real model trees,
real filesystems (tmpfs mounts), the real CLI in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from retire.lab.live import LiveExporter, scrape_config, wait_scraped
from retire.lab.servers import Prometheus, backfill
from retire.lab.synth import write_openmetrics
from tests import forked
from tests import scenarios as sc
from tests.conftest import Lab

SAFE_BASIC = {("alpha", "2"), ("alpha", "3"), ("beta", "2")}


def present_lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The basic and TorchServe scenarios, backfilled up to a few seconds ago and scraped live from
    then on (the session fixture `present_lab` in tests/conftest.py)."""
    root = tmp_path_factory.mktemp("present")
    end = float(int(time.time()) - 5)
    write_openmetrics(
        root / "history.om", [sc.BASIC, sc.TORCHSERVE], end=end, history=sc.HISTORY, interval=60
    )
    backfill(root / "history.om", root / "tsdb")
    # The data keeps arriving after the history (a live tail), as in production: a report at the
    # present must find samples up to the window's end.
    with LiveExporter([sc.BASIC, sc.TORCHSERVE], end, root / "live") as live:
        scrape = scrape_config([sc.BASIC, sc.TORCHSERVE], live.address)
        with Prometheus(root / "tsdb", root / "prometheus", scrape=scrape) as server:
            wait_scraped(server.url, 'up{scenario=~"basic|torchserve"}', end)
            yield Lab(server.url, end, root)


def evidence(lab: Lab, *extra: str, scenario: str = "basic") -> list[str]:
    """Evidence flags for the present lab: no --at (the present), a max gap that covers the
    seconds since the history ends. Add the model source."""
    out = [
        "--prometheus",
        lab.url,
        "--selector",
        f'scenario="{scenario}"',
        "--coverage",
        f'up{{scenario="{scenario}"}}',
        "--max-gap",
        "30m",
    ]
    if scenario == "torchserve":
        out += ["--preset", "torchserve"]
    return [*out, *extra]


def args(lab: Lab, tree: Path | str, archive: Path | str, *extra: str, scenario: str = "basic") -> list[str]:
    """Evidence flags with a model root and an archive."""
    return evidence(lab, "--model-dir", str(tree), "--archive-dir", str(archive), *extra, scenario=scenario)


def snapshot(root: Path) -> dict[str, object]:
    """Every entry below root: directories, file bytes (hashed) and modes, symlink targets.
    Iterative, so trees of any depth compare."""
    out: dict[str, object] = {}
    stack = [root]
    while stack:
        current = stack.pop()
        for entry in os.scandir(current):
            rel = str(Path(entry.path).relative_to(root))
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(entry.path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel + "/"] = ("dir", stat.S_IMODE(st.st_mode))
                stack.append(Path(entry.path))
            else:
                out[rel] = (
                    "file",
                    stat.S_IMODE(st.st_mode),
                    hashlib.sha256(Path(entry.path).read_bytes()).hexdigest(),
                )
    return out


def cli(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None, crash_after: int | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m retire` in a process of its own (crash tests need a process to kill), forked
    from a preloaded server (tests/forked.py) rather than started anew: same argv, environment,
    working directory and streams, a fraction of the start-up cost. `crash_after`: killed right
    after that many journal writes (tests/crash.py)."""
    path = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")) if p
    )
    return forked.run(
        list(argv), {**os.environ, "PYTHONPATH": path, **(env or {})}, cwd, crash_after, timeout=120
    )


def one_line_error(run: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """A refusal as the README promises: the exit code, one `retire: error:` line, no traceback."""
    assert run.returncode == code, (run.returncode, run.stderr)
    errors = [line for line in run.stderr.splitlines() if line.startswith("retire: error: ")]
    assert len(errors) == 1 and "Traceback" not in run.stderr, run.stderr
    for word in words:
        assert word in errors[0], run.stderr


def journal(archive: Path) -> list[dict[str, Any]]:
    path = archive / "journal.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def unfinished(archive: Path) -> list[dict[str, Any]]:
    last: dict[int, str] = {}
    for r in journal(archive):
        last[r["step"]] = r["phase"]
    return [{"step": s, "phase": p} for s, p in last.items() if p in ("begin", "verified")]


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real, small, separate filesystem (you are root in CI); skipped, saying why, when it
    cannot be mounted."""
    mount = where / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mount.mkdir(parents=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode}); needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)

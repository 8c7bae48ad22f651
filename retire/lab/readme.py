"""The README's shown outputs, made by running its commands against the demo's data.

    python scripts/readme.py            # rewrite README.md's shown outputs in place
    python scripts/readme.py --check    # exit 1 when they are stale (times, ports and paths aside)

A shown command is a fenced block right after a line `<!-- output -->`. In the block, lines that
start with `$ ` are commands (a trailing backslash continues one); everything else is output and is
replaced by what the commands print, stdout then stderr. Options in the marker:
`<!-- output columns=80 -->` runs on an 80-column pseudo-terminal (as a person sees it),
`stdout` leaves stderr out, `head=N` keeps the first N lines of output and marks the cut with
`...`. Commands run in bash from a directory holding the demo's `.demo/` (the demo's model tree
and its Prometheus, shown as http://127.0.0.1:9090), with `retire` on PATH and every run evaluated
at the end of the demo's data (RETIRE_AT), so the numbers are the same on every run. The tests run
`--check` semantics (tests/test_readme.py), so a changed output cannot go unnoticed.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SHOWN_URL = "http://127.0.0.1:9090"
MARKER = re.compile(r"^<!-- output(?P<options>(?: [\w=]+)*) -->$")
HOUR = 3600


@dataclass(frozen=True)
class Block:
    """One shown command block: the lines between its fences (exclusive)."""

    first: int  # index of the first line inside the fences
    last: int  # index of the closing fence
    commands: tuple[str, ...]
    columns: int | None = None
    stdout_only: bool = False
    head: int | None = None
    fence: str = "```"


@dataclass
class Lab:
    """The demo's data served by a real Prometheus; commands run in `cwd`."""

    url: str
    cwd: Path
    end: float
    env: dict[str, str] = field(default_factory=dict)


def blocks(lines: list[str]) -> list[Block]:
    out = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i].strip())
        if not m:
            i += 1
            continue
        options = {o.partition("=")[0]: o.partition("=")[2] for o in m.group("options").split()}
        fence_at = i + 1
        fence = lines[fence_at].strip()
        if not fence.startswith("```"):
            raise ValueError(f"README line {i + 1}: <!-- output --> must be followed by a ``` fence")
        close = next(j for j in range(fence_at + 1, len(lines)) if lines[j].strip() == "```")
        commands: list[str] = []
        pending = ""
        for line in lines[fence_at + 1 : close]:
            if pending:
                pending += "\n" + line
            elif line.startswith("$ "):
                pending = line[2:]
            if pending and not pending.endswith("\\"):
                commands.append(pending)
                pending = ""
        out.append(
            Block(
                fence_at + 1,
                close,
                tuple(commands),
                columns=int(options["columns"]) if options.get("columns") else None,
                stdout_only="stdout" in options,
                head=int(options["head"]) if options.get("head") else None,
                fence=fence,
            )
        )
        i = close + 1
    return out


def data_end(now: float) -> float:
    """The latest instant at or before `now` that is 30 min 17 s past an hour: the demo's data
    ends there, so every regeneration sees the same hour alignment and the same numbers."""
    return math.floor((now - 1817) / HOUR) * HOUR + 1817


@contextmanager
def demo_lab(workdir: Path) -> Iterator[Lab]:
    """The demo's data in `workdir/.demo`, its Prometheus running, and `retire` on PATH."""
    import time

    from retire.lab.demo import build
    from retire.lab.servers import Prometheus

    end = data_end(time.time())
    tsdb, _models = build(workdir / ".demo", end)
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "retire"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m retire "$@"\n')
    script.chmod(0o755)
    root = Path(__file__).resolve().parent.parent.parent
    with Prometheus(tsdb.absolute(), workdir / "prometheus") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETIRE_")}
        env.pop("NO_COLOR", None)
        env.update(
            PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
            PYTHONPATH=str(root) + (f":{env['PYTHONPATH']}" if env.get("PYTHONPATH") else ""),
            RETIRE_AT=str(int(end)),
            TZ="UTC",
        )
        yield Lab(server.url, workdir, end, env)


def _run(command: str, block: Block, lab: Lab) -> str:
    from retire.lab.terminal import run_in_terminal

    actual = command.replace(SHOWN_URL, lab.url)
    if block.columns is not None:
        run = run_in_terminal(["bash", "-c", actual], block.columns, env=lab.env, cwd=str(lab.cwd))
        text = run.text + ("" if block.stdout_only else run.stderr)
    else:
        stderr = subprocess.DEVNULL if block.stdout_only else subprocess.STDOUT
        done = subprocess.run(
            ["bash", "-c", actual],
            cwd=lab.cwd,
            env=lab.env,
            timeout=300,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        text = done.stdout.decode("utf-8", errors="replace")
    text = text.replace(lab.url, SHOWN_URL).replace(str(lab.cwd) + "/", "")
    lines = [line.rstrip() for line in text.rstrip("\n").split("\n")] if text.strip() else []
    if block.head is not None and len(lines) > block.head:
        lines = [*lines[: block.head], "..."]
    return "\n".join(lines)


def refresh(text: str, lab: Lab) -> str:
    """`text` (a README) with every shown output made again."""
    lines = text.split("\n")
    for block in reversed(blocks(lines)):
        body: list[str] = []
        for command in block.commands:
            body += ["$ " + command.split("\n")[0], *command.split("\n")[1:]]
            output = _run(command, block, lab)
            if output:
                body += output.split("\n")
        lines[block.first : block.last] = body
    return "\n".join(lines)


NORMAL = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"), "<TIME>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<PORT>"),
    (re.compile(r"/tmp/[\w./-]+"), "<TMP>"),
    (re.compile(r"\b1[6-9]\d{8}\b"), "<UNIX>"),
    (re.compile(r"\(pid \d+\)|kill \d+"), "<PID>"),
]


def normalise(text: str) -> str:
    """What must not differ between a README and a fresh run: everything but times, ports,
    temporary paths and pids."""
    for pattern, replacement in NORMAL:
        text = pattern.sub(replacement, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readme", type=Path, default=Path(__file__).resolve().parents[2] / "README.md")
    parser.add_argument("--check", action="store_true", help="only say whether README.md is stale")
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    workdir = Path(tempfile.mkdtemp(prefix="retire-readme-"))
    try:
        with demo_lab(workdir) as lab:
            fresh = refresh(text, lab)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.check:
        if normalise(fresh) != normalise(text):
            import difflib

            diff = difflib.unified_diff(
                normalise(text).split("\n"), normalise(fresh).split("\n"), "README.md", "fresh", lineterm=""
            )
            print("\n".join(diff), file=sys.stderr)
            print("readme: README.md is stale: run python scripts/readme.py", file=sys.stderr)
            return 1
        return 0
    if fresh != text:
        args.readme.write_text(fresh, encoding="utf-8")
        print(f"readme: refreshed {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The shown outputs of README.md and docs/*.md, made by running their commands against the demo's data.

    python scripts/readme.py            # rewrite the shown outputs in place
    python scripts/readme.py --check    # exit 1 when any is stale (times, ports and paths aside)
    python scripts/readme.py docs/x.md  # only these files

A shown command is a fenced block right after a line `<!-- output -->`. In the block, lines that
start with `$ ` are commands (a trailing backslash continues one); everything else is output and is
replaced by what the commands print, stdout then stderr. Options in the marker:
`<!-- output columns=80 -->` runs on an 80-column pseudo-terminal (as a person sees it),
`stdout` leaves stderr out, `head=N` keeps the first N lines of output and marks the cut with
`...`. Commands run in bash from a directory holding the demo's `.demo/` (the demo's model tree
and its Prometheus, shown as http://127.0.0.1:9090), with `retire` on PATH and every run evaluated
at the end of the demo's data (RETIRE_AT), so the numbers are the same on every run. The tests run
`--check` semantics (tests/test_readme.py), so a changed output cannot go unnoticed.

All files share one demo, and their commands run in reading order: README.md first, then
docs/*.md by name, each file top to bottom (`documents`). A block that needs a file made by
another block makes it itself (as the model-config examples do with `printf`), so no page
depends on another having run.
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
ROOT = Path(__file__).resolve().parents[2]


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


def documents(root: Path = ROOT) -> list[Path]:
    """The files with shown outputs, in the order their commands run: the README, then the
    reference pages by name (a new page is checked without being listed anywhere)."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks(lines: list[str], name: str = "README.md") -> list[Block]:
    """The shown command blocks of one file (`name` only says where, in errors)."""
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
            raise ValueError(f"{name} line {i + 1}: <!-- output --> must be followed by a ``` fence")
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


def refresh(text: str, lab: Lab, name: str = "README.md") -> str:
    """`text` (README.md or a docs page) with every shown output made again: the commands run
    top to bottom, as a reader would type them, and the blocks are then replaced from the end
    so that the line numbers of those before stay right."""
    lines = text.split("\n")
    made: list[tuple[Block, list[str]]] = []
    for block in blocks(lines, name):
        body: list[str] = []
        for command in block.commands:
            body += ["$ " + command.split("\n")[0], *command.split("\n")[1:]]
            output = _run(command, block, lab)
            if output:
                body += output.split("\n")
        made.append((block, body))
    for block, body in reversed(made):
        lines[block.first : block.last] = body
    return "\n".join(lines)


def refresh_all(texts: dict[str, str], lab: Lab) -> dict[str, str]:
    """Each file's text made again, the files in the order given (`documents`' order)."""
    return {name: refresh(text, lab, name) for name, text in texts.items()}


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
    parser.add_argument(
        "files", nargs="*", type=Path, help="files to refresh or check (default: README.md and docs/*.md)"
    )
    parser.add_argument("--check", action="store_true", help="only say whether any file is stale")
    args = parser.parse_args(argv)
    paths: list[Path] = args.files or documents()
    texts = {str(path): path.read_text(encoding="utf-8") for path in paths}
    try:
        for name, text in texts.items():
            blocks(text.split("\n"), name)  # a malformed block stops the run before the demo starts
    except ValueError as e:
        print(f"readme: {e}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="retire-readme-"))
    try:
        with demo_lab(workdir) as lab:
            fresh = refresh_all(texts, lab)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.check:
        import difflib

        stale = [name for name, text in texts.items() if normalise(fresh[name]) != normalise(text)]
        for name in stale:
            old, new = normalise(texts[name]).split("\n"), normalise(fresh[name]).split("\n")
            print("\n".join(difflib.unified_diff(old, new, name, "fresh", lineterm="")), file=sys.stderr)
        if stale:
            print(f"readme: {', '.join(stale)} stale: run python scripts/readme.py", file=sys.stderr)
            return 1
        return 0
    for name, text in texts.items():
        if fresh[name] != text:
            Path(name).write_text(fresh[name], encoding="utf-8")
            print(f"readme: refreshed {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

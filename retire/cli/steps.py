"""What every command does around its one library call: settings resolved, the deadline
started, the report made with a progress bar, the format chosen, the text written, and every
RetireError turned into one line on stderr and its exit code.

Reports go to stdout (or -o FILE, written atomically); summaries, notes and errors go to stderr,
so `retire safe-list | xargs ...` only ever sees data.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retire.config import CONFIG_ENV, DEFAULT_CONFIG_FILE
from retire.errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, ConfigError, RetireError
from retire.formats import Command as FormatCommand
from retire.formats import serving

if TYPE_CHECKING:
    from retire.advisor import Report
    from retire.config import Settings
    from retire.deadline import Deadline
    from retire.formats import Format

# Not in the option table: the file the table's values may come from.
Config = Annotated[
    Path | None,
    typer.Option(
        "--config", help=f"TOML config file. Default: ./{DEFAULT_CONFIG_FILE} if present. [env: {CONFIG_ENV}]"
    ),
]


def _clean(message: str) -> str:
    """Every line users see passes here: secrets scrubbed, control characters escaped."""
    from retire.escape import printable
    from retire.redact import scrub

    return printable(scrub(message))


def error(message: str) -> None:
    typer.echo(f"retire: error: {_clean(message)}", err=True)


def say(text: str) -> None:
    typer.echo(f"retire: {_clean(text)}", err=True)


def quietly(text: str) -> None:
    """`say` under --quiet: nothing (only errors reach stderr)."""


_interrupted = threading.Event()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn every RetireError into one line on stderr and its exit code. No tracebacks."""
    try:
        yield
    except RetireError as e:
        error(e.message)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        if not _interrupted.is_set():
            _interrupted.set()
            error("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def on_sigint(signum: int, frame: object) -> None:
    """Ctrl-C: stop within a second, whatever the main thread waits for.

    The KeyboardInterrupt unwinds the main thread (temporary output files are removed on the
    way), but worker threads blocked in a query would hold the exit until --timeout runs out; a
    watchdog ends the process half a second later, removing any temporary file still open.
    """

    def watchdog() -> None:
        time.sleep(0.5)
        from retire.delivery.output import remove_partial

        remove_partial()
        if not _interrupted.is_set():
            os.write(2, b"retire: error: interrupted\n")
        os._exit(EXIT_INTERRUPTED)

    threading.Thread(target=watchdog, daemon=True).start()
    raise KeyboardInterrupt


def resolved(flags: dict[str, Any], config: Path | None) -> Settings:
    """config.resolve for a new run: flags > environment > config file > defaults."""
    from retire import redact
    from retire.config import resolve

    redact.clear()  # a new run (the tests run many in one process)
    _interrupted.clear()
    return resolve(flags, config=config)


def archive_of(settings: Settings, command: str) -> Path:
    """The archive a command that moves or unloads needs (exit 2 without it)."""
    if settings.archive_dir is None:
        raise ConfigError(
            f"retire {command} needs --archive-dir DIR (or RETIRE_ARCHIVE_DIR, or archive_dir in the "
            f"config file): where versions go and the journal is kept, outside every model root (see "
            f"`retire {command.split()[0]} --help`)"
        )
    return settings.archive_dir


def deadline_of(settings: Settings) -> Deadline:
    """The run's --deadline, counted from now: every wait of the command ends by it."""
    from retire.deadline import Deadline

    return Deadline(settings.deadline)


def made_report(
    settings: Settings,
    deadline: Deadline,
    sparklines: bool = False,
    tell: Callable[[str], None] = say,
    *,
    policies_protect: bool = True,
) -> Report:
    """The one library call, with the clock read here and the progress bar on stderr (notes wait
    until the bar is gone)."""
    from retire.run import build_report

    notes: list[str] = []
    try:
        with _progress_bar() as progress:
            return build_report(
                settings,
                time.time(),
                progress,
                sparklines=sparklines,
                say=notes.append,
                deadline=deadline,
                policies_protect=policies_protect,
            )
    finally:
        for note in notes:
            tell(note)


@contextmanager
def _progress_bar() -> Iterator[Any]:
    """A progress callback for the queries split per model, the only long wait: a bar on stderr
    that appears when the first model is done, and only when both stdout and stderr are a
    terminal (never in a pipe, a file or cron, where it would garble `| less` or the mail)."""
    if not (sys.stdout.isatty() and sys.stderr.isatty()) or os.environ.get("TERM") == "dumb":
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    task: list[Any] = []

    def update(done: int, total: int) -> None:
        if not task:
            bar.start()
            task.append(bar.add_task("querying model by model", total=total))
        bar.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:
            bar.stop()


def screen(fmt: Format, output: Path | None) -> tuple[bool, int | None]:
    """Colour and width when a format for people goes to a terminal; (False, None) elsewhere.
    Colour unless NO_COLOR (any value) or TERM=dumb; the layout fits either way."""
    if not (fmt.terminal and output is None and sys.stdout.isatty()):
        return False, None
    color = "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    return color, shutil.get_terminal_size().columns


def emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from retire.delivery.output import write_atomic

        write_atomic(output, text)


def exit_code(report: Report) -> int:
    return EXIT_INCOMPLETE if report.summary.unknown else EXIT_OK


def chosen(value: str | None, command: FormatCommand) -> Format:
    """The command's --format, from the formats' registry."""
    from retire.formats import FORMATS

    return FORMATS[_pick(value, tuple(f.name for f in serving(command)))]


def _pick(value: str | None, names: tuple[str, ...]) -> str:
    """--format as given, or the command's default (its first choice); a usage error when the
    command has no such format (the option's parser took any command's)."""
    if value is None:
        return names[0]
    if value not in names:
        raise ConfigError(f"--format {value!r} is not available here; use one of: {', '.join(names)}")
    return value


def only_pins(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    """--only MODEL:VERSION, read as --pin is (the version as written)."""
    from retire.config import _pins

    return _pins(values or [], "--only", as_written=True) if values else ()

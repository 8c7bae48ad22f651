"""Output formats: a family, as `retire/servers/` is. Each format is one module holding one
`Format`: its name, the commands that take it as --format, whether it is for people or scripts,
whether it shows sparklines and what changed since the last report, how it travels in the mail,
and its renderers (pure functions of the Report returning text). `_MODULES` is the only list of
formats: the --format choices of each command, the --mail-attach choices and the mail's parts
all come from it, so adding a format is one module plus one line here; tests/formats/
test_registry.py checks that each format has the renderers of what it serves.

Writing the text (stdout, or a file atomically) is the CLI's job, not the renderers'. Format
modules import what rendering needs inside their renderers: the CLI reads this registry at
start-up, before it knows whether anything will be rendered.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, cast

if TYPE_CHECKING:
    from retire.advisor import Report
    from retire.advisor.changes import History
    from retire.advisor.plan import Plan

# The registry: one line per format module in retire/formats/ (the module is named as the format).
# Each command lists the formats it takes in this order, and the first is its default.
_MODULES = (
    "table",
    "text",
    "tsv",
    "json",
    "csv",
    "markdown",
    "html",
)

# The commands that take --format (the names they have on the command line). `plan` has a
# --format of its own (a plan's, not a report's): the option table's (config, RETIRE_FORMAT, the
# config file) is that of the report commands.
Command = Literal["report", "safe-list", "plan"]
REPORT: Command = "report"
SAFE_LIST: Command = "safe-list"
PLAN: Command = "plan"
COMMANDS: tuple[Command, ...] = (REPORT, SAFE_LIST, PLAN)
REPORT_COMMANDS: tuple[Command, ...] = (REPORT, SAFE_LIST)

# Who reads it: people get names shown safely (control characters escaped, markup defused) and
# numbers in words; scripts get every value exactly as it is, or the version left out (TSV).
Audience = Literal["people", "scripts"]
PEOPLE: Audience = "people"
SCRIPTS: Audience = "scripts"


@dataclass(frozen=True)
class View:
    """How a report is shown: only the terminal table uses width, colour and verbose."""

    color: bool = False
    width: int | None = None  # a terminal's width to fit; None: plain text, every reason in full
    verbose: bool = False  # full reasons under a fitted table
    history: History | None = None  # --since-last: what changed since the previous report


@dataclass(frozen=True)
class MailPart:
    """How a format travels in the report's mail."""

    mime: str  # its MIME type: "text/plain", "application/json"
    filename: str | None = None  # as an attachment (--mail-attach NAME); None: an alternative of the body


@dataclass(frozen=True)
class Format:
    """One output format: everything the commands, the mail and the help need to know of it."""

    name: str  # the --format value, and the name of its module
    audience: Audience
    # What it shows.
    sparklines: bool = False  # traffic per step: the report asks Prometheus for it
    changes: bool = False  # what changed since the last report (--since-last)
    # Fitted to the terminal it is printed on (width, colour); printed to stdout it ends with the
    # summary line, which is then not repeated on stderr.
    terminal: bool = False
    # Where it goes.
    commands: tuple[Command, ...] = ()  # the commands that take it as --format
    shape: str = ""  # what its lines hold, said after its name where it is a command's default
    mail: MailPart | None = None  # how it goes into the report's mail; None: it does not
    # How it is drawn: the whole report (for `report --format NAME` and the mail); only the safe
    # versions (for `safe-list --format NAME`), and why any safe version had to be left out of
    # that list, one sentence each for stderr.
    report: Callable[[Report, View], str] | None = None
    safe_list: Callable[[Report], str] | None = None
    left_out: Callable[[Report], list[str]] | None = None
    # An offload plan (`retire plan --format NAME`): (plan, whether a model config file is read,
    # the server-config advice) -> text.
    plan: Callable[[Plan, bool, tuple[str, ...], str], str] | None = None  # (.., advice, why)


def with_changes(render: Callable[[Report, list[str]], str]) -> Callable[[Report, View], str]:
    """A renderer of the report with the since-last lines given as text (Markdown, HTML) as the
    report renderer of its `Format`."""

    def report(rep: Report, view: View) -> str:
        from retire.formats.words import since_last

        return render(rep, since_last(view.history))

    return report


def _registry() -> dict[str, Format]:
    formats = [importlib.import_module(f"retire.formats.{m}").FORMAT for m in _MODULES]
    return {f.name: f for f in formats}


FORMATS: dict[str, Format] = _registry()


def serving(command: Command) -> tuple[Format, ...]:
    """The formats `command --format` takes, its default first."""
    return tuple(f for f in FORMATS.values() if command in f.commands)


def _choices(name: str, command: Command) -> type[StrEnum]:
    members = [(f.name.upper(), f.name) for f in serving(command)]
    return cast("type[StrEnum]", StrEnum(name, members))  # typeshed types the functional API as a member


# Each command's formats as an enum (the default first), derived from the registry.
ReportFormat = _choices("ReportFormat", REPORT)
ListFormat = _choices("ListFormat", SAFE_LIST)
# Every --format value the report commands take (the option is declared once, in retire.config).
NAMES = tuple(dict.fromkeys(f.name for command in REPORT_COMMANDS for f in serving(command)))
# The formats --mail-attach takes.
ATTACHABLE = tuple(f.name for f in FORMATS.values() if f.mail is not None and f.mail.filename)


def _chosen(name: str, command: Command) -> Format:
    """The format `name` of `command`. Callers pass only the command's choices (the option's
    parser and the CLI refuse others), so anything else is a bug: AssertionError."""
    fmt = FORMATS.get(name)
    if fmt is None or command not in fmt.commands:
        raise AssertionError(f"{name!r} is no --format of {command}")
    return fmt


def render_report(
    report: Report,
    fmt: str,
    *,
    color: bool = False,
    width: int | None = None,
    verbose: bool = False,
    history: History | None = None,
) -> str:
    """`history` (--since-last) adds a "since last report" section to the formats that show
    changes (JSON: a `changes` list). `width` fits the table to a terminal (None: plain text,
    every reason in full, for pipes, files and mail)."""
    render = _chosen(fmt, REPORT).report
    assert render is not None, fmt  # tests/formats/test_registry.py: what a format serves, it renders
    return render(report, View(color=color, width=width, verbose=verbose, history=history))


def render_safe_list(report: Report, fmt: str) -> str:
    render = _chosen(fmt, SAFE_LIST).safe_list
    assert render is not None, fmt
    return render(report)


def render_plan(plan: Plan, fmt: str, model_config: bool, advice: tuple[str, ...] = (), why: str = "") -> str:
    """The plan in a plan format; `why`: why nothing moves, when nothing does (words.nothing_safe)."""
    render = _chosen(fmt, PLAN).plan
    assert render is not None, fmt
    return render(plan, model_config, advice, why)


def mail_parts(attach: tuple[str, ...] = ()) -> tuple[Format, ...]:
    """What the report's mail is made of: the alternatives of its body, then the formats named
    in `attach` (--mail-attach), in the registry's order."""
    body = [f for f in FORMATS.values() if f.mail is not None and f.mail.filename is None]
    files = [f for f in FORMATS.values() if f.name in attach and f.name in ATTACHABLE]
    return (*body, *files)

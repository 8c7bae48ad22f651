"""Command-line wiring: parse flags, resolve settings, call the pipeline, print, exit.

This module decides nothing about verdicts and does no HTTP or disk work itself. Reports go to
stdout (or -o FILE, written atomically); summaries, notes and errors go to stderr, so
`retire safe-list | xargs ...` only ever sees data.
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
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from retire import __version__
from retire.config import CONFIG_ENV, CONNECTION, DEFAULT_CONFIG_FILE, EVIDENCE, MAIL, OPTION, OPTIONS, QUERY
from retire.errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ConfigError, RetireError
from retire.formats import PLAN, REPORT, SAFE_LIST, serving
from retire.formats import Command as FormatCommand

if TYPE_CHECKING:
    from retire.advisor import Report
    from retire.config import Settings
    from retire.deadline import Deadline
    from retire.formats import Format

Command = TypeVar("Command", bound=Callable[..., Any])

EXIT_MEANINGS = {
    0: "done; no version is unknown",
    2: "usage, config file or model directory error",
    3: "Prometheus or the model server unreachable, too slow (--timeout, --deadline), or its answer unusable",
    4: "report made, but at least one version is unknown (evidence incomplete)",
    5: "the report could not be mailed in time or at all (nothing was sent)",
    6: "offload/restore refused or stopped, --deadline included (the journal says what was done)",
    130: "interrupted (Ctrl-C); no output file written",
}


def exit_codes(*codes: int) -> str:
    """The exit-code list for a help text: only the codes that command can return."""
    lines = [f"  {c}  {'done' if c == 0 and 4 not in codes else EXIT_MEANINGS[c]}" for c in codes]
    return "\b\nExit codes:\n" + "\n".join(lines)


EXIT_CODES = exit_codes(*EXIT_MEANINGS)


class _Group(TyperGroup):
    """Click's usage errors (unknown option, missing value, bad number) as the one line every
    other error is: `retire: error: ...` and exit 2, instead of usage text and a box."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as e:  # Click's ClickException in the typer this ships with
            if not standalone_mode:
                raise
            ctx = getattr(e, "ctx", None)
            if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
                typer.echo(ctx.get_help(), err=True)  # bare `retire`: the help, as before
                sys.exit(EXIT_USAGE)
            where = ctx.command_path if ctx is not None else "retire"
            _err(f"{e.format_message()} (see '{where} --help')")
            sys.exit(EXIT_USAGE)
        except typer.Abort:
            if not standalone_mode:
                raise
            _err("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


app = typer.Typer(
    name="retire",
    help=(
        "Which model versions can be unloaded safely? retire asks Prometheus for each version's "
        "traffic, joins it with the versions on disk, and calls a version safe only when every "
        "piece of evidence says it had no calls.\n\n" + EXIT_CODES
    ),
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"retire {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    pass


# The options come from one table (retire.config.OPTIONS): each entry gives its flag, help (with
# choices, default and env var) and the `flags` key config.resolve reads. Defaults are None here so
# resolve can tell "not given" from "given", and apply flags > environment > config file > defaults.
def _flag(key: str, *, choices: tuple[str, ...] | None = None, default: str | None = None) -> Any:
    """The Typer option of one table entry; a command narrows the choices or names its own
    default (--format) without repeating the rest."""
    o = OPTION[key]
    assert o.flag is not None, key  # a secret has no flag: environment or config file only
    return typer.Option(o.flag, *o.aliases, help=o.help_text(choices, default), metavar=o.metavar)


def _options(*groups: str) -> list[tuple[str, Any]]:
    """The table's flags of these groups, in the table's order, as (key, annotation)."""
    return [
        (o.key, Annotated[_TEXT.get(o.kind, o.kind) | None, _flag(o.key)])
        for o in OPTIONS
        if o.group in groups and o.flag
    ]


# Paths reach the option table's parsers as the text typed: Typer would make an empty flag
# (`--model-dir "$UNSET"`) Path("."), the working directory, before the parser could refuse it.
_TEXT: dict[Any, Any] = {Path: str, list[Path]: list[str]}


def _format_flag(command: FormatCommand) -> Any:
    """--format with the command's own choices and default, from the formats' registry."""
    default, *_ = formats = serving(command)
    shown = f"{default.name} ({default.shape})" if default.shape else default.name
    return _flag("format", choices=tuple(f.name for f in formats), default=shown)


Output = Annotated[str | None, _flag("output")]
ReportFormatOpt = Annotated[str | None, _format_flag(REPORT)]
ListFormatOpt = Annotated[str | None, _format_flag(SAFE_LIST)]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help=f"TOML config file. Default: ./{DEFAULT_CONFIG_FILE} if present. [env: {CONFIG_ENV}]"
    ),
]


def shared_options(options: list[tuple[str, Any]]) -> Callable[[Command], Command]:
    """Attach a list of options to a command; the command receives them in one `flags` dict.

    Stackable: each layer adds its own options to the `flags` of the layer inside it.
    """

    def decorate(func: Command) -> Command:
        import functools
        import inspect
        import typing

        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
            for name, kind in options
        ]
        signature = inspect.signature(func)
        resolved = typing.get_type_hints(func, include_extras=True)  # keep Annotated's typer.Option
        own = [
            p.replace(annotation=resolved.get(p.name, p.annotation))
            for p in signature.parameters.values()
            if p.name != "flags"
        ]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            flags = {**kwargs.pop("flags", {}), **{p.name: kwargs.pop(p.name) for p in shared}}
            return func(flags=flags, **kwargs)

        params = sorted([*own, *shared], key=lambda p: p.kind)
        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return typing.cast(Command, wrapper)

    return decorate


# `query` takes only what shapes the PromQL, `rules` also how to reach the server (to learn its scrape
# interval); the evidence commands take it all.
evidence_options = shared_options(_options(QUERY, CONNECTION, EVIDENCE))
mail_options = shared_options(_options(MAIL))
query_options = shared_options(_options(QUERY))
rules_options = shared_options(_options(QUERY, CONNECTION))


def _clean(message: str) -> str:
    """Every line users see passes here: secrets scrubbed, control characters escaped."""
    from retire.escape import printable
    from retire.redact import scrub

    return printable(scrub(message))


def _err(message: str) -> None:
    typer.echo(f"retire: error: {_clean(message)}", err=True)


_interrupted = threading.Event()


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn every RetireError into one line on stderr and its exit code. No tracebacks."""
    try:
        yield
    except RetireError as e:
        _err(e.message)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        if not _interrupted.is_set():
            _interrupted.set()
            _err("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _on_sigint(signum: int, frame: object) -> None:
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


def _settings(flags: dict[str, Any], config: Path | None) -> Settings:
    from retire import redact
    from retire.config import resolve

    redact.clear()  # a new run (the tests run many in one process)
    _interrupted.clear()
    return resolve(flags, config=config)


def _deadline(settings: Settings) -> Deadline:
    """The run's --deadline, counted from now: every wait of the command ends by it."""
    from retire.deadline import Deadline

    return Deadline(settings.deadline)


def _build_report(settings: Settings, deadline: Deadline, sparklines: bool = False) -> Report:
    """The one library call, with the clock read here and the progress bar on stderr (notes wait
    until the bar is gone)."""
    from retire.run import build_report

    notes: list[str] = []
    try:
        with _progress_bar() as progress:
            return build_report(
                settings, time.time(), progress, sparklines=sparklines, say=notes.append, deadline=deadline
            )
    finally:
        for note in notes:
            _say(note)


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


def _use_color() -> bool:
    """Colour on a terminal unless NO_COLOR (any value) or TERM=dumb; the layout fits either way."""
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from retire.delivery.output import write_atomic

        write_atomic(output, text)


def _exit_code(report: Report) -> int:
    return EXIT_INCOMPLETE if report.summary.unknown else EXIT_OK


@app.command(epilog=exit_codes(0, 2, 3, 4, 5))
@mail_options
@evidence_options
def report(
    format: ReportFormatOpt = None,
    output: Output = None,
    config: ConfigOpt = None,
    *,
    flags: dict[str, Any],
) -> None:
    """Every model version, on disk or in Prometheus, with its traffic and verdict.

    With --mail-to, the report is also mailed (text and HTML, see README "Scheduled report");
    when the report cannot be made, the mail says so and lists nothing as safe.

    \b
    Examples:
      retire report --prometheus http://prom:9090 --model-dir /models
      retire report --prometheus http://prom:9090 --model-dir /models \\
          --selector 'job="tfs"' --coverage 'up{job="tfs"}' --format json -o report.json
      retire report --model-base-path /models/half_plus_two --model-name half_plus_two \\
          --prometheus http://prom:9090 --at 2026-11-24T06:00:00Z
      retire report --prometheus http://prom:9090 --model-dir /models \\
          --mail-to ml-platform@example.com --smtp-host smtp.example.com \\
          --since-last /var/lib/retire/last.json
    """
    from retire.config import build
    from retire.formats import render_report
    from retire.formats.words import summary_line

    with _user_errors():
        settings = _settings({**flags, "format": format, "output": output}, config)
        deadline = _deadline(settings)
        fmt = _chosen(settings.format, REPORT)
        delivery = build.delivery(settings, deadline)  # bad secret or state files: exit 2, first
        sparklines = delivery.sparklines(fmt)
        result = delivery.made(lambda: _build_report(settings, deadline, sparklines), _say, _err)
        changes = delivery.changes(result)
        terminal = fmt.terminal and settings.output is None and sys.stdout.isatty()
        width = shutil.get_terminal_size().columns if terminal else None
        color, verbose = terminal and _use_color(), settings.verbose
        text = render_report(result, fmt.name, color=color, width=width, verbose=verbose, history=changes)
        _emit(text, settings.output)
        if not fmt.terminal or settings.output is not None:  # stdout's table ends with it already
            _say(summary_line(result))
        delivery.deliver(result, changes, _say)
    raise typer.Exit(_exit_code(result))


@app.command("safe-list", epilog=exit_codes(0, 2, 3, 4))
@evidence_options
def safe_list(
    format: ListFormatOpt = None,
    output: Output = None,
    config: ConfigOpt = None,
    *,
    flags: dict[str, Any],
) -> None:
    """Only the versions that are safe to offload, one per line, for scripts.

    Unknown versions are never listed; the exit code is 4 when there are any, and the reason
    goes to stderr.

    \b
    Examples:
      retire safe-list --prometheus http://prom:9090 --model-dir /models --threshold 0
      retire safe-list --prometheus http://prom:9090 --model-dir /models --format json
      retire safe-list ... | while IFS=$'\\t' read -r model version path; do echo "$path"; done
    """
    from retire.formats import render_safe_list
    from retire.formats.words import summary_line

    with _user_errors():
        settings = _settings({**flags, "format": format, "output": output}, config)
        fmt = _chosen(settings.format, SAFE_LIST)
        result = _build_report(settings, _deadline(settings))
        _emit(render_safe_list(result, fmt.name), settings.output)
        for why in fmt.left_out(result) if fmt.left_out else []:
            typer.echo(f"retire: {why}", err=True)
        _say(summary_line(result))
    raise typer.Exit(_exit_code(result))


@app.command()
@query_options
def query(
    name: Annotated[
        str | None, typer.Argument(help="Print only this query, bare, e.g. max_hourly_qps.")
    ] = None,
    config: ConfigOpt = None,
    *,
    flags: dict[str, Any],
) -> None:
    """Print the exact PromQL that `report` would send, without sending it: the evidence
    queries every command sends, and the sparkline query (hourly_qps) that only the table,
    Markdown and mailed reports send.

    \b
    Examples:
      retire query
      retire query max_hourly_qps --selector 'job="tfs"'
      curl -s http://prom:9090/api/v1/query --data-urlencode "query=$(retire query max_hourly_qps)"
    """
    from retire.config.build import params_from
    from retire.sources.prometheus.queries import report_queries

    with _user_errors():
        settings = _settings(flags, config)
        planned = report_queries(params_from(settings), sparklines=True)
        if name is not None:
            matches = [q for q in planned if q.name == name]
            if not matches:
                raise ConfigError(f"no query named {name!r}; one of: {', '.join(q.name for q in planned)}")
            typer.echo(matches[0].promql)
            return
        for q in planned:
            typer.echo(f"# {q.name} ({q.kind}): {q.purpose}")
            typer.echo(q.promql)
            typer.echo("")


@app.command(epilog=exit_codes(0, 2, 3))
@rules_options
def rules(
    group: Annotated[
        str | None,
        typer.Option("--group", help="Print only the fine or the rollup group (to backfill them in turn)."),
    ] = None,
    output: Output = None,
    config: ConfigOpt = None,
    *,
    flags: dict[str, Any],
) -> None:
    """Print Prometheus recording rules that make reports cheap on large fleets.

    Load the file with `rule_files:` in prometheus.yml, then run reports with
    --use-recording-rules and the same --metric, labels, --selector, --step and --max-gap. With
    --prometheus, the rules are made for the scrape interval the server names (a step that cannot
    hold two scrapes plus a rule interval is refused); without, the file says what it assumed.
    Versions can be safe only once the rules have run for a whole --window (or their history was
    backfilled: README "Recording rules").

    \b
    Examples:
      retire rules > /etc/prometheus/retire-rules.yml && promtool check rules /etc/prometheus/retire-rules.yml
      retire rules --prometheus http://prom:9090 --selector 'job="tfs"' -o retire-rules.yml
      retire report --use-recording-rules --selector 'job="tfs"' --model-dir /models
    """
    from retire.run import rules_file
    from retire.sources.prometheus.recording import GROUPS

    with _user_errors():
        settings = _settings({**flags, "use_recording_rules": True, "output": output}, config)
        if group is not None and group not in GROUPS:
            raise ConfigError(f"--group: {group!r} is not one of {', '.join(GROUPS)}")
        from retire.escape import printable

        # one comment line in the YAML: an argument with a line break must not start a new line
        argv = ["retire", *sys.argv[1:]] if sys.argv[1:2] == ["rules"] else ["retire", "rules"]
        command = printable(" ".join(argv))
        text = rules_file(settings, time.time(), command, (group,) if group else GROUPS)
        _emit(text, settings.output)


ArchiveDir = Annotated[
    Path,
    typer.Option(
        "--archive-dir", help="Where offloaded versions go (outside every model root); holds the journal."
    ),
]


def _only(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    from retire.config import _pins

    return _pins(values or [], "--only", as_written=True) if values else ()


def _say(text: str) -> None:
    typer.echo(f"retire: {_clean(text)}", err=True)


@app.command("plan", epilog=exit_codes(0, 2, 3, 6))
@evidence_options
def plan_command(
    archive_dir: ArchiveDir,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Plan exactly these MODEL:VERSION.", metavar="MODEL:VERSION"),
    ] = None,
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="text (default) or json (for offload --plan).")
    ] = None,
    output: Output = None,
    config: ConfigOpt = None,
    *,
    flags: dict[str, Any],
) -> None:
    """Show what `retire offload` would move, from the current verdicts. Changes nothing.

    Only `safe` versions are ever in a plan; `in-use`, `unknown`, `protected` and `not-on-disk`
    never are. With unknown versions, planning is refused unless --only names the versions.

    \b
    Examples:
      retire plan --prometheus http://prom:9090 --model-dir /models --archive-dir /archive
      retire plan ... --archive-dir /archive --format json -o plan.json
    """
    from retire.actions.plan import plan_for
    from retire.formats import render_plan

    with _user_errors():
        settings = _settings({**flags, "output": output}, config)
        fmt = _chosen(format, PLAN)
        report = _build_report(settings, _deadline(settings))
        plan = plan_for(report, archive_dir, None, _only(only), _say)
        has_config = settings.model_config is not None
        _emit(render_plan(plan, fmt.name, has_config, report.summary.advice), settings.output)


@app.command(epilog=exit_codes(0, 2, 3, 6))
@evidence_options
def offload(
    archive_dir: ArchiveDir,
    apply: Annotated[
        bool, typer.Option("--apply", help="Act. Without it, a dry run that changes nothing.")
    ] = False,
    plan_file: Annotated[
        Path | None, typer.Option("--plan", help="A plan from `retire plan --format json` to carry out.")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Move exactly these MODEL:VERSION.", metavar="MODEL:VERSION"),
    ] = None,
    resume_run: Annotated[
        bool, typer.Option("--resume", help="Complete the steps of an interrupted run.")
    ] = False,
    config: ConfigOpt = None,
    *,
    flags: dict[str, Any],
) -> None:
    """Move safe versions out of the served tree into --archive-dir (dry run unless --apply).

    Immediately before moving, the evidence is gathered again: a version called since the plan
    was made is skipped and reported. Every step is journaled first; nothing is ever deleted.

    \b
    Examples:
      retire offload --prometheus http://prom:9090 --model-dir /models --archive-dir /archive
      retire offload --prometheus http://prom:9090 --model-dir /models --archive-dir /archive --apply
      retire offload ... --archive-dir /archive --plan plan.json --apply
      retire offload --archive-dir /archive --resume
    """
    from retire.actions import offload as ops
    from retire.actions.plan import plan_for
    from retire.formats.text import plan_text
    from retire.run import carry_out

    with _user_errors():
        if resume_run:
            n = ops.resume(archive_dir, _say)
            _say(f"resumed: {n} unfinished step(s) completed" if n else "nothing to resume")
            return
        settings = _settings(flags, config)
        deadline = _deadline(settings)  # one for the plan, the re-check and the moves
        report = _build_report(settings, deadline)
        plan = plan_for(report, archive_dir, plan_file, _only(only), _say)
        typer.echo(plan_text(plan, settings.model_config is not None, report.summary.advice), nl=False)
        if plan.moves and not apply:
            _say("dry run: nothing was moved; add --apply to act")
        elif plan.moves:
            where = str(plan_file or "the plan")
            carry_out(
                plan,
                settings,
                report,
                archive_dir,
                where,
                lambda s: _build_report(s, deadline),
                _say,
                deadline,
            )


@app.command(epilog=exit_codes(0, 2, 6))
def restore(
    archive_dir: ArchiveDir,
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Only this version (with --model).")
    ] = None,
) -> None:
    """Move offloaded versions back where they were served from (all, or one).

    \b
    Examples:
      retire restore --archive-dir /archive
      retire restore --archive-dir /archive --model half_plus_two --version 3
    """
    from retire.actions import offload as ops
    from retire.servers import canonical_version

    with _user_errors():
        if version is not None and model is None:
            raise ConfigError(
                "--version needs --model: version numbers are per model (--model NAME --version N)"
            )
        n = ops.restore(archive_dir, model, canonical_version(version) if version else None, _say)
        _say(f"restored {n} version(s)")


def _chosen(value: str | None, command: FormatCommand) -> Format:
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


def main() -> None:
    import signal

    signal.signal(signal.SIGINT, _on_sigint)
    app()

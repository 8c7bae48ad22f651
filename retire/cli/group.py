"""The Typer app itself: its help with the exit codes, --version, and Click's usage errors turned
into the one line every other error is."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from retire import __version__
from retire.cli.steps import error
from retire.errors import EXIT_INTERRUPTED, EXIT_USAGE

EXIT_MEANINGS = {
    0: "done; no version is unknown",
    2: "usage, config file or model directory error",
    3: "Prometheus or the model server unreachable, too slow (--timeout, --deadline), or its answer unusable",
    4: "report made, but at least one version is unknown (evidence incomplete)",
    5: "the report could not be mailed in time or at all (nothing was sent)",
    6: "offload/restore/unload refused or stopped, --deadline included (the journal says what was done)",
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
            error(f"{e.format_message()} (see '{where} --help')")
            sys.exit(EXIT_USAGE)
        except typer.Abort:
            if not standalone_mode:
                raise
            error("interrupted")
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

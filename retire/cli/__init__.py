"""Command-line wiring: parse flags, resolve settings, call the pipeline, print, exit.

The package decides nothing about verdicts and does no HTTP or disk work itself. `group` is the
Typer app (help, --version, usage errors), `options` the option table as parameter types,
`steps` what every command does around its one library call, and the commands are in
`reports` (report, safe-list, query, rules) and `moves` (plan, offload, restore).
"""

from __future__ import annotations

# Importing a command module registers its commands: this order is the order the help lists them.
from retire.cli import reports as reports

# isort: split
from retire.cli import moves as moves
from retire.cli.group import app

__all__ = ["app", "main"]


def main() -> None:
    import signal

    from retire.cli.steps import on_sigint

    signal.signal(signal.SIGINT, on_sigint)
    app()

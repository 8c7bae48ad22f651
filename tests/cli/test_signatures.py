"""Each command lists its options in its own signature (retire.cli.options' aliases), yet the
option table stays their only source: these tests fail when a signature drifts from the table
(an option dropped, renamed, retyped, or given other help, metavar or aliases) or when an alias
in retire/cli/options.py says something its table entry does not."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer

from retire.cli import app
from retire.cli import options as cli_options
from retire.config import OPTION, OPTIONS, OUTPUT, Option
from tests.cli.test_options import GROUP_COMMANDS
from tests.conftest import run_cli

# A path (or a list of them) reaches the table's parser as the text typed (retire.cli.options).
TEXT: dict[Any, Any] = {Path: str, list[Path]: list[str]}
# The OUTPUT group: each command attaches its own (--format with its own choices).
OUTPUT_OF = {
    "report": {"format", "output"},
    "safe-list": {"format", "output"},
    "rules": {"output"},
    "plan": {"output"},
}
# A parameter with a table flag under another name: plan's --format is the plan's own (text or
# json, no RETIRE_FORMAT), so it must not reach config.resolve.
OWN = {("plan", "plan_format")}
BY_FLAG = {o.flag: o for o in OPTIONS if o.flag is not None}


def _commands() -> dict[str, Any]:
    group: Any = typer.main.get_command(app)
    return dict(group.commands)


def _camel(key: str) -> str:
    return "".join(word.capitalize() for word in key.split("_"))


def _expected_keys(command: str) -> set[str]:
    groups = {group for group, commands in GROUP_COMMANDS.items() if command in commands}
    keys = {o.key for o in OPTIONS if o.group in groups and o.flag is not None}
    return keys | OUTPUT_OF.get(command, set())


def _same_as_table(param: Any, annotation: Any, option: Option) -> None:
    """One click parameter and its annotation against the table entry it must come from."""
    assert typing.get_origin(annotation) is Annotated, option.key
    assert typing.get_args(annotation)[0] == TEXT.get(option.kind, option.kind) | None, option.key
    assert param.opts == [option.flag, *option.aliases], option.key
    assert param.metavar == option.metavar, option.key
    assert param.default is None, option.key  # None: "not given", for config.resolve
    assert param.multiple == (typing.get_origin(option.kind) is list), option.key
    assert param.is_flag == (option.kind is bool), option.key
    if option.key == "format":  # each command its own choices and default
        assert param.help.startswith(f"{option.help} One of: "), option.key
        assert param.help.endswith(f"[env: {option.env_var}]"), option.key
    else:
        assert param.help == option.help_text(), option.key


@pytest.mark.parametrize("command", sorted(_commands()))
def test_each_command_takes_its_groups_flags_as_the_table_declares_them(command: str) -> None:
    click_command = _commands()[command]
    hints = typing.get_type_hints(click_command.callback, include_extras=True)
    table = [p for p in click_command.params if p.name in OPTION]
    assert {p.name for p in table} == _expected_keys(command)
    for param in table:
        _same_as_table(param, hints[param.name], OPTION[param.name])
    # In the table's order, as the help has always shown them (--format and -o come first).
    order = [p.name for p in table if OPTION[p.name].group != OUTPUT]
    assert order == [o.key for o in OPTIONS if o.key in order]
    # A table flag under another name would be shown in the help but never reach config.resolve.
    for param in click_command.params:
        if param.name not in OPTION and (command, param.name) not in OWN:
            assert not set(param.opts) & BY_FLAG.keys(), (command, param.name)


def _aliases() -> dict[str, Any]:
    return {n: v for n, v in vars(cli_options).items() if typing.get_origin(v) is Annotated}


def _as_click(alias: Any) -> Any:
    """The click parameter Typer makes of an alias, on a command of its own."""
    probe = typer.Typer(add_completion=False)

    def command(value: Any = None) -> None:
        pass

    command.__annotations__ = {"value": alias, "return": None}
    probe.command()(command)
    return next(p for p in typer.main.get_command(probe).params if p.name == "value")


@pytest.mark.parametrize("name", sorted(_aliases()))
def test_every_alias_is_its_table_entry(name: str) -> None:
    alias = _aliases()[name]
    param = _as_click(alias)
    option = BY_FLAG[param.opts[0]]
    # Named after its key (`max_gap` -> MaxGap); the --format of each command after the command.
    assert name == _camel(option.key) or (option.key == "format" and name.endswith("Format"))
    _same_as_table(param, alias, option)


def test_every_flag_has_an_alias() -> None:
    names = set(_aliases())
    assert {_camel(o.key) for o in OPTIONS if o.flag is not None and o.key != "format"} <= names


def test_two_wrong_flags_name_the_same_one_as_before() -> None:
    """config.resolve gets the flags in the order it always had (mail first, --format last), so
    the error a user sees when two flags are wrong stays the same."""
    run = run_cli("report", "--format", "yaml", "--window", "forever", "--mail-when", "sometimes")
    assert run.exit_code == 2
    assert run.stderr == "retire: error: --mail-when: 'sometimes' is not one of always, actionable\n"
    run = run_cli("safe-list", "--format", "yaml", "--window", "forever")
    assert run.stderr.startswith("retire: error: --window: 'forever' is not a duration")

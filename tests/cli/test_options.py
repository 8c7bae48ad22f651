"""One table declares every option (retire.config.OPTIONS). These tests walk the table, so a new
entry is checked without touching them: its flag reaches the setting, its environment variable
and config-file key take effect, its parser refuses a bad value in one line, its help shows its
choices, default and variable, and docs/configuration.md names it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from retire.cli import app
from retire.config import (
    ARCHIVE,
    CONNECTION,
    EVIDENCE,
    MAIL,
    OPTION,
    OPTIONS,
    OUTPUT,
    QUERY,
    Option,
    _secret,
    resolve,
)
from retire.errors import ConfigError
from retire.formats import ListFormat, ReportFormat
from retire.servers import SERVERS
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")  # README links it
FLAGGED = [o for o in OPTIONS if o.flag is not None]
# Settings that are refused alone (config._check): each needs its partner to resolve.
PARTNERS = {
    "model_base_path": "model_name",
    "model_name": "model_base_path",
    "client_cert": "client_key",
    "client_key": "client_cert",
}
# Which commands carry each group's flags (OUTPUT: each command attaches its own).
GROUP_COMMANDS = {
    QUERY: {"query", "rules", "doctor", "report", "safe-list", "plan", "offload", "unload"},
    # rules: to learn the scrape interval; doctor: to look for the presets' metrics
    CONNECTION: {"rules", "doctor", "report", "safe-list", "plan", "offload", "unload"},
    EVIDENCE: {"report", "safe-list", "plan", "offload", "unload"},
    MAIL: {"report"},
    ARCHIVE: {"report", "safe-list", "plan", "offload", "unload", "restore"},
}


def _ids(options: list[Option] | tuple[Option, ...]) -> list[str]:
    return [o.key for o in options]


def _commands() -> dict[str, Any]:
    """The commands as Click sees them (typer ships its own Click: duck-typed here)."""
    group: Any = typer.main.get_command(app)
    return dict(group.commands)


def _flags(command: Any) -> set[str]:
    return {name for p in command.params for name in getattr(p, "opts", [])}


def _partners(option: Option) -> dict[str, str]:
    partner = PARTNERS.get(option.key)
    return {partner: OPTION[partner].example} if partner else {}


def _expected(option: Option) -> Any:
    return option.parse(option.example, option.key)


@pytest.fixture(autouse=True)
def _no_config_file_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """resolve() reads ./retire.toml when it exists: run where there is none."""
    monkeypatch.chdir(tmp_path)


def test_only_secrets_have_no_flag() -> None:
    """A password is never a flag (the command line is visible to every user); all else is."""
    for o in OPTIONS:
        assert (o.flag is None) == (o.parse is _secret), o.key
        assert o.flag is not None or o.secret, o.key


@pytest.mark.parametrize("option", FLAGGED, ids=_ids(FLAGGED))
def test_every_flag_is_on_its_commands(option: Option) -> None:
    commands = _commands()
    having = {name for name, c in commands.items() if option.flag in _flags(c)}
    for alias in option.aliases:
        assert all(alias in _flags(commands[name]) for name in having), alias
    if option.group == OUTPUT:
        assert having, option.key
    else:
        assert having == GROUP_COMMANDS[option.group]


@pytest.mark.parametrize("option", FLAGGED, ids=_ids(FLAGGED))
def test_flag_takes_effect(option: Option) -> None:
    commands = _commands()
    name = next(n for n in ("query", "report") if option.flag in _flags(commands[n]))
    args = [option.flag] if option.kind is bool else [option.flag, option.example]
    assert option.flag is not None
    with commands[name].make_context(name, args) as ctx:
        given = ctx.params[option.key]
    settings = resolve({option.key: given, **_partners(option)}, env={})
    assert getattr(settings, option.key) == _expected(option) != option.default


@pytest.mark.parametrize("option", OPTIONS, ids=_ids(OPTIONS))
def test_env_var_takes_effect(option: Option) -> None:
    env = {OPTION[k].env_var: v for k, v in _partners(option).items()}
    settings = resolve({}, env={**env, option.env_var: option.example})
    assert getattr(settings, option.key) == _expected(option) != option.default


@pytest.mark.parametrize("option", OPTIONS, ids=_ids(OPTIONS))
def test_config_key_takes_effect(option: Option, tmp_path: Path) -> None:
    cfg = tmp_path / "retire.toml"
    doc = {option.key: option.example, **_partners(option)}
    cfg.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in doc.items()), encoding="utf-8")
    settings = resolve({}, env={}, config=cfg)
    assert getattr(settings, option.key) == _expected(option) != option.default


@pytest.mark.parametrize("option", OPTIONS, ids=_ids(OPTIONS))
def test_a_bad_value_is_one_line_naming_where_it_came_from(option: Option, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        resolve({}, env={option.env_var: "bad\x00value"})
    assert e.value.message.startswith(f"{option.env_var}: ") and "\n" not in e.value.message
    # The same through the CLI, from a config file, with a value of the wrong type.
    cfg = tmp_path / "retire.toml"
    cfg.write_text(f"{option.key} = {{ bad = 1 }}\n", encoding="utf-8")
    run = run_cli("query", "--config", str(cfg))
    assert run.exit_code == 2
    assert run.stderr.startswith(f"retire: error: {cfg}: {option.key}: ")
    assert run.stderr.endswith("got a table\n") and run.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "option", [o for o in OPTIONS if o.choices], ids=_ids([o for o in OPTIONS if o.choices])
)
def test_choices_are_what_the_parser_takes(option: Option) -> None:
    for choice in option.choices:
        assert option.parse(choice.upper(), option.key) == choice
    with pytest.raises(ConfigError, match=re.escape(", ".join(option.choices))):
        option.parse("no-such-choice", option.key)


def test_choice_lists_come_from_the_registry_and_the_format_enums() -> None:
    assert OPTION["preset"].choices == tuple(SERVERS)
    assert set(OPTION["format"].choices) == {f.value for e in (ReportFormat, ListFormat) for f in e}


@pytest.mark.parametrize("option", OPTIONS, ids=_ids(OPTIONS))
def test_the_default_is_said_and_true(option: Option) -> None:
    """Every default worth saying is in the help; where it is a value, it parses to the default."""
    if option.default not in (None, False, "", ()):
        assert option.shown_default is not None, option.key
    if option.shown_default is None or option.default is None:
        return
    try:
        said_right = option.parse(option.shown_default, option.key) == option.default
    except ConfigError:
        said_right = False
    if not said_right:  # words around the value, e.g. "0 (any call keeps a version)"
        value = option.default
        assert option.default_text is not None, option.key
        assert (f"{value:g}" if isinstance(value, float) else str(value)) in option.default_text, option.key


def _squeezed(text: str) -> str:
    """Help as one string without white space: click wraps lines, also after a hyphen."""
    return "".join(text.split())


@pytest.mark.parametrize("command", ["report", "safe-list", "query", "rules", "plan", "offload", "unload"])
def test_help_shows_each_flag_with_its_variable_and_default(command: str) -> None:
    run = run_cli(command, "--help")
    assert run.exit_code == 0
    out = _squeezed(run.stdout)
    flags = _flags(_commands()[command])
    for o in FLAGGED:
        if o.flag not in flags or o.key == "format":
            continue  # each command names its own formats and default (below)
        assert _squeezed(f"[env: {o.env_var}]") in out, o.key
        assert _squeezed(o.help_text()) in out, o.key


def test_each_format_option_lists_its_own_formats() -> None:
    report = _squeezed(run_cli("report", "--help").stdout)
    assert _squeezed("One of: table, json, csv, markdown. Default: table. [env: RETIRE_FORMAT]") in report
    safe = _squeezed(run_cli("safe-list", "--help").stdout)
    assert _squeezed("One of: tsv, json, csv. Default: tsv") in safe and "RETIRE_FORMAT" in safe


@pytest.mark.parametrize("option", OPTIONS, ids=_ids(OPTIONS))
def test_readme_names_every_option(option: Option) -> None:
    section = CONFIGURATION[CONFIGURATION.index("# Configuration and credentials") :]
    assert f"`{option.flag or option.env_var}`" in section or f"{option.flag or option.env_var}" in section
    if option.env_var != "RETIRE_" + option.key.upper():
        assert option.env_var in section  # the page states the rule; the exceptions by name

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest

from retire.config import OPTIONS, Option, Settings, parse_duration, parse_instant, resolve
from retire.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("1d", 86400),
        ("86400s", 86400),
        (3600, 3600),
        ("500ms", 0.5),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "1x", "h", "-5m", "1h 30m", True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(bad)


def test_instants() -> None:
    assert parse_instant("1795500000").timestamp() == 1795500000
    assert (
        parse_instant("2026-11-24T06:00:00Z").timestamp()
        == parse_instant("2026-11-24T14:00:00+08:00").timestamp()
    )
    with pytest.raises(ConfigError, match="no time zone"):
        parse_instant("2026-11-24T06:00:00")


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "retire.toml"
    cfg.write_text('prometheus = "http://file:9090"\nwindow = "12h"\nthreshold = 0.5\npin = ["m:007"]\n')
    env = {"RETIRE_PROMETHEUS_URL": "http://env:9090", "RETIRE_WINDOW": "6h"}
    s = resolve({"window": "3h"}, env=env, config=cfg)
    assert (s.prometheus, s.window, s.threshold, s.step) == ("http://env:9090", 3 * 3600, 0.5, 3600)
    assert s.pin == (("m", "7"),)
    assert resolve({}, env={}, config=cfg).prometheus == "http://file:9090"
    assert resolve({}, env={"RETIRE_CONFIG": str(cfg)}).window == 12 * 3600


def test_unknown_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "retire.toml"
    cfg.write_text('promethues = "http://x"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'promethues'.*did you mean 'prometheus'"):
        resolve({}, env={}, config=cfg)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "retire.toml"
    cfg.write_text("window = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve({}, env={}, config=cfg)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve({}, env={}, config=tmp_path / "nope.toml")


def test_every_setting_has_an_env_var() -> None:
    from dataclasses import fields

    from retire.config import ENV_VARS, Settings

    assert {f.name for f in fields(Settings)} == set(ENV_VARS)


def test_only_the_winning_value_is_parsed(tmp_path: Path) -> None:
    """Issue 14, case 14: a stale variable or file key that a flag overrides must not fail the run."""
    cfg = tmp_path / "retire.toml"
    cfg.write_text('threshold = "lots"\nwindow = ["1h"]\n')
    s = resolve({"threshold": 0.5, "window": "2h"}, env={"RETIRE_THRESHOLD": "lots"}, config=cfg)
    assert (s.threshold, s.window) == (0.5, 7200)
    with pytest.raises(ConfigError, match="RETIRE_THRESHOLD"):
        resolve({}, env={"RETIRE_THRESHOLD": "lots"}, config=cfg)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("basic_auth_password", ["not-shown-1"], "expected text, got a list"),
        ("smtp_password", {"v": "not-shown-2"}, "expected text, got a table"),
        ("header", {"Authorization": "Bearer not-shown-3"}, "got a table"),
        ("header", ["Authorization Bearer not-shown-4"], "header #1 is not 'Name: value'"),
        ("header", ["X-Key: not-shown-\x005"], "holds a control or non-ASCII character"),
        ("tenant", ["not-shown-6"], "expected text, got a list"),
        ("threshold", ["1"], "expected a number, got a list"),
        ("at", float("inf"), "between 0 and"),
        ("at", -1e18, "between 0 and"),
        ("timeout", 1e308, "at most 100 years"),
        ("smtp_port", 99999, "from 1 to 65535"),
        ("mail_from", "a@example.com\r\nBcc: b@example.com", "not an e-mail address"),
        ("prometheus", "http://127.0.0.1:99999", "--prometheus"),
    ],
)
def test_type_errors_name_the_key_and_type_never_a_secret(key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        resolve({key: value}, env={})
    assert expected in e.value.message and "not-shown" not in e.value.message
    assert "\n" not in e.value.message


def test_settings_fields_are_the_option_table() -> None:
    """Issue 15: one entry per option; Settings only types it. Its default is the table's, and
    a secret stays out of repr."""
    from dataclasses import MISSING, fields

    from retire.config import OPTION, OPTIONS, Settings

    assert {f.name for f in fields(Settings)} == {o.key for o in OPTIONS}
    for f in fields(Settings):
        assert f.default is not MISSING and f.default == OPTION[f.name].default, f.name
        assert f.repr is not OPTION[f.name].secret, f.name


def _conforms(value: object, tp: Any) -> bool:
    """isinstance for the types Settings uses: classes, `X | None`, `tuple[X, ...]`, `tuple[X, Y]`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(_conforms(v, a) for v, a in zip(value, args, strict=True))
    if tp in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, tp)


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.key)
def test_settings_types_are_the_parsers(option: Option) -> None:
    """Settings is typed by hand so that mypy sees each field; this keeps it from drifting from
    the table, type by type: a field's type is its parser's return type (mypy checks the parser
    returns it), `| None` where the table's default is None, and the default and the parsed
    example are values of that type."""
    field_type = typing.get_type_hints(Settings)[option.key]
    returned = typing.get_type_hints(option.parse)["return"]
    assert field_type == (returned if option.default is not None else returned | None), option.key
    assert _conforms(option.default, field_type), option.key
    assert _conforms(option.parse(option.example, option.key), field_type), option.key


def test_the_type_check_sees_a_wrong_type() -> None:
    """The check above fails on the slips it is there for (a list where a tuple is typed, an
    int where a float is, a missing None)."""
    assert not _conforms([Path("a")], tuple[Path, ...])
    assert not _conforms(True, float) and not _conforms(None, str)
    assert _conforms(None, str | None) and _conforms((("m", "1"),), tuple[tuple[str, str], ...])

from __future__ import annotations

from pathlib import Path

import pytest

from retire.config import parse_duration, parse_instant, resolve
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

"""Settings resolved once, with one precedence: flags > `RETIRE_*` environment > TOML file > defaults.

Every option has one name used three ways: the flag `--model-dir`, the config-file key `model_dir`
and the environment variable `RETIRE_MODEL_DIR` (the Prometheus URL's variable is
`RETIRE_PROMETHEUS_URL`, as the docs of many exporters spell it). The config file is `--config`,
else `RETIRE_CONFIG`, else `./retire.toml` when it exists. Unknown keys are an error: a typo in a
cron job's config must not silently fall back to a default.

Each option is one entry of `OPTIONS`: the Settings field's default, the parser, the environment
variable, the flag (built by the CLI), the help with its choices and default, and the config-file
key all come from it, so adding an option is one entry plus its Settings field.

The package, one module a part: `parsers` (a raw value -> a typed one, or one line of error),
`option` (what an entry holds), `options` and `mail_options` (the table), `settings` (the typed
`Settings`), `build` (Settings -> the narrow types of the layers below); here, `resolve` and
`check`, and the names callers import from `retire.config`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retire.config.option import ARCHIVE, CONNECTION, EVIDENCE, MAIL, OUTPUT, QUERY, Option, flag_name
from retire.config.options import _PARSERS, ENV_VARS, OPTION, OPTIONS
from retire.config.parsers import _count, _number, _port, _shown, parse_instant
from retire.config.parsers import _path as _path
from retire.config.parsers import _paths as _paths
from retire.config.parsers import _pins as _pins
from retire.config.parsers import _secret as _secret
from retire.config.settings import Settings
from retire.durations import format_duration, parse_duration
from retire.errors import ConfigError
from retire.servers import DEFAULT_PRESET, PRESETS

# What callers import from `retire.config`; the parsers imported `as` themselves above are
# re-exported too, for the callers that already use them (cli: --only's pins; tests).
__all__ = [
    "ARCHIVE",
    "CONFIG_ENV",
    "CONNECTION",
    "DEFAULT_CONFIG_FILE",
    "ENV_VARS",
    "EVIDENCE",
    "MAIL",
    "OPTION",
    "OPTIONS",
    "OUTPUT",
    "PRESETS",
    "QUERY",
    "Option",
    "Settings",
    "check",
    "flag_name",
    "parse_duration",
    "parse_instant",
    "resolve",
]

DEFAULT_CONFIG_FILE = Path("retire.toml")
CONFIG_ENV = "RETIRE_CONFIG"


def _load_file(path: Path) -> dict[str, object]:
    import tomllib  # only when there is a file: start-up stays light

    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; fix --config or RETIRE_CONFIG") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except ValueError:  # a NUL byte in the path
        raise ConfigError("config file: the path holds a NUL byte") from None
    return data


def _closest(key: str) -> str:
    import difflib

    match = difflib.get_close_matches(key, list(_PARSERS), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def resolve(
    flags: Mapping[str, object],
    env: Mapping[str, str] | None = None,
    config: Path | None = None,
) -> Settings:
    """Build Settings from flag values (None = not given), the environment and the config file."""
    env = os.environ if env is None else env
    path = config or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    if path is None and DEFAULT_CONFIG_FILE.is_file():
        path = DEFAULT_CONFIG_FILE
    file_values = _load_file(path) if path is not None else {}

    # Only the value that wins is parsed: a stale RETIRE_* variable or file key that a flag
    # overrides must not fail the run.
    winners: dict[str, tuple[object, str]] = {}
    for key, raw in file_values.items():
        if key not in _PARSERS:
            raise ConfigError(f"config file {path}: unknown key {_shown(key)}{_closest(key)}")
        winners[key] = (raw, f"{path}: {key}")
    for key in _PARSERS:
        var = ENV_VARS[key]
        if env.get(var, "") != "":
            winners[key] = (env[var], var)
    for key, raw in flags.items():
        if key not in _PARSERS:
            raise AssertionError(f"flag {key!r} has no setting")  # a wiring bug, not user input
        if raw is not None and raw != () and raw != []:
            winners[key] = (raw, flag_name(key))
    values: dict[str, Any] = {key: _PARSERS[key](raw, name) for key, (raw, name) in winners.items()}
    # A preset fills the metric and label names unless they are set explicitly (retire.servers).
    for key, value in PRESETS[values.get("preset", DEFAULT_PRESET)].items():
        values.setdefault(key, value)
    settings = Settings(**values)
    _check(settings)
    return settings


def check(s: Settings) -> None:
    """Settings built without `resolve` (a library user's) get the checks resolve makes: each
    number through its option's parser (NaN, infinite, negative), then the combinations. A NaN
    threshold made every version idle, busy ones included."""
    numbers = (parse_duration, _number, _count, _port)
    for o in OPTIONS:
        value = getattr(s, o.key)
        if o.parse in numbers and value is not None:
            o.parse(value, flag_name(o.key))
    _check(s)


def _check(s: Settings) -> None:
    if s.step <= 0:
        raise ConfigError("--step must be greater than 0 (e.g. 1h)")
    if s.window < s.step:
        raise ConfigError(
            f"--window ({format_duration(s.window)}) must be at least --step ({format_duration(s.step)})"
        )
    if s.timeout <= 0:
        raise ConfigError("--timeout must be greater than 0 seconds")
    if s.deadline <= 0:
        raise ConfigError("--deadline must be greater than 0 seconds (e.g. 10m)")
    if s.smtp_timeout <= 0:
        raise ConfigError("--smtp-timeout must be greater than 0 seconds")
    if s.model_base_path is not None and (s.model_dir or s.model_config):
        raise ConfigError(
            "--model-base-path names one model; do not combine it with --model-dir or --model-config"
        )
    if (s.model_base_path is None) != (s.model_name is None):
        raise ConfigError("--model-base-path and --model-name go together")
    if s.basic_auth_password is not None and s.basic_auth_password_file is not None:
        raise ConfigError("give the basic-auth password by RETIRE_BASIC_AUTH_PASSWORD or a file, not both")
    if (s.client_cert is None) != (s.client_key is None):
        raise ConfigError("--client-cert and --client-key go together")
    if s.smtp_ssl and s.smtp_starttls:
        raise ConfigError(
            "--smtp-ssl (TLS from the start, port 465) and --smtp-starttls (port 587) exclude each other"
        )
    if s.rule_interval <= 0 or s.rollup_interval < 2 * s.rule_interval:
        raise ConfigError(
            "--rule-interval must be greater than 0 and --rollup-interval at least twice it (e.g. 1m and 1h)"
        )
    if s.use_recording_rules and s.rule_interval >= s.step:
        raise ConfigError(
            f"--rule-interval ({format_duration(s.rule_interval)}) must be shorter than --step "
            f"({format_duration(s.step)}): each rule's rate window (the step) must hold a rule interval "
            "plus two scrapes, or calls between windows go unseen; lower --rule-interval or raise --step"
        )
    if s.use_recording_rules and not s.version_label:
        raise ConfigError(
            "--use-recording-rules needs a per-version counter, and this one has no version label "
            f"(--preset {s.preset} counts per model): report from the raw series (drop the option)"
        )
    if s.use_recording_rules and s.split_by_model:
        raise ConfigError(
            "--split-by-model and --use-recording-rules exclude each other: recorded series are "
            "already small; drop one"
        )
    if s.smtp_password is not None and s.smtp_password_file is not None:
        raise ConfigError("give the SMTP password by RETIRE_SMTP_PASSWORD or --smtp-password-file, not both")

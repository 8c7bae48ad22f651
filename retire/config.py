"""Settings resolved once, with one precedence: flags > `RETIRE_*` environment > TOML file > defaults.

Every option has one name used three ways: the flag `--model-dir`, the config-file key `model_dir`
and the environment variable `RETIRE_MODEL_DIR` (the Prometheus URL's variable is
`RETIRE_PROMETHEUS_URL`, as the docs of many exporters spell it). The config file is `--config`,
else `RETIRE_CONFIG`, else `./retire.toml` when it exists. Unknown keys are an error: a typo in a
cron job's config must not silently fall back to a default.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from retire import redact
from retire.durations import format_duration
from retire.errors import ConfigError
from retire.escape import has_unsafe, quoted
from retire.servers import DEFAULT_PRESET, SERVERS
from retire.servers.tfserving import canonical as canonical_version

DEFAULT_CONFIG_FILE = Path("retire.toml")
DEFAULT_METRIC = SERVERS[DEFAULT_PRESET].metric

# What each kind of model server exports (retire.servers). A preset fills the metric and label
# names unless they are set explicitly (flag, env or file). README "Deployments".
PRESETS: dict[str, dict[str, str]] = {
    name: {"metric": s.metric, "model_label": s.model_label, "version_label": s.version_label}
    for name, s in SERVERS.items()
}

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
# Longer durations are typos, and past ~292 years the OS's timeouts overflow.
MAX_DURATION = 100 * 31536000.0
# Instants are Unix seconds from 1970 up to the last second of year 9999 (what datetime holds).
MAX_INSTANT = 253402300799.0


def _kind(value: object) -> str:
    """A value's type in words: type errors name the key and the type, never the value (which may
    be a secret put under the wrong key)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _shown(text: str) -> str:
    """A (non-secret) value quoted for a message: one line, not too long."""
    return quoted(text)


def parse_duration(value: object, name: str = "duration") -> float:
    """Seconds from `90`, `"90"`, `"90s"`, `"15m"`, `"1h30m"`, `"1d"` (Prometheus's units)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{name}: expected a duration such as 24h or 900s, got {_kind(value)}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION_RE.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
                pos = m.end()
            if pos != len(text) or not text:
                raise ConfigError(
                    f"{name}: {_shown(text)} is not a duration; use e.g. 24h, 90m, 1h30m or seconds"
                ) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{name}: must be a non-negative duration such as 24h")
    if seconds > MAX_DURATION:
        raise ConfigError(f"{name}: must be at most 100 years ({format_duration(MAX_DURATION)})")
    return seconds


def _unix(seconds: float, name: str) -> datetime:
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_INSTANT:
        raise ConfigError(f"{name}: Unix seconds must be between 0 and {MAX_INSTANT:.0f} (year 9999)")
    return datetime.fromtimestamp(seconds, tz=UTC)


def parse_instant(value: object, name: str = "--at") -> datetime:
    """An evaluation instant from RFC 3339 (with a zone) or Unix seconds.

    A time without a zone is refused: guessing the zone would shift the whole window.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return _unix(float(value), name)
    elif not isinstance(value, str):
        raise ConfigError(f"{name}: expected an instant (RFC 3339 or Unix seconds), got {_kind(value)}")
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            return _unix(seconds, name)
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"{name}: {_shown(text)} is neither RFC 3339 (2026-11-24T06:00:00Z) nor Unix seconds"
            ) from None
    if dt.tzinfo is None:
        raise ConfigError(f"{name}: the instant has no time zone; add Z or an offset such as +08:00")
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ConfigError(f"{name}: the instant is out of range") from None


def _str(value: object, name: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes) or not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{name}: expected text, got {_kind(value)}")
    text = str(value)
    if "\x00" in text:
        raise ConfigError(f"{name}: must not contain a NUL character")
    return text


def _secret(value: object, name: str) -> str:
    """A password: text, never shown in any message."""
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected text, got {_kind(value)}")
    if not value or any(c in value for c in "\x00\r\n"):
        raise ConfigError(f"{name}: must be one non-empty line of text (not shown)")
    return value


def _line(value: object, name: str) -> str:
    """Text that goes into a query, a header or a file name: one line, no control characters."""
    text = _str(value, name)
    if has_unsafe(text):
        raise ConfigError(f"{name}: {_shown(text)} holds a control character")
    return text


def check_url(url: str, name: str = "--prometheus") -> None:
    """An http(s) URL with a host and a valid port; anything else is a usage error (exit 2)."""
    if has_unsafe(url) or any(c.isspace() for c in url):
        raise ConfigError(f"{name}: the URL holds a space or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as e:
        raise ConfigError(f"{name}: not a valid URL ({e}); use e.g. http://prom:9090") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{name}: {_shown(_redacted(url))} is not an http(s) URL such as http://prom:9090")
    if port == 0:
        raise ConfigError(f"{name}: port 0 is not a port")


def _redacted(url: str) -> str:
    netloc_start = url.find("://") + 3 if "://" in url else 0
    at = url.find("@", netloc_start, url.find("/", netloc_start) if "/" in url[netloc_start:] else None)
    return url if at < 0 else url[:netloc_start] + "***" + url[at:]


def _url(value: object, name: str) -> str:
    text = _str(value, name).strip()
    redact.register_url(text)
    check_url(text, name)
    return text


def _path(value: object, name: str) -> Path:
    path = Path(_str(value, name))
    try:
        return path.expanduser()
    except RuntimeError:  # `~user` for a user that does not exist
        raise ConfigError(f"{name}: cannot expand {_shown(str(path))}: no such user's home") from None


def _paths(value: object, name: str) -> tuple[Path, ...]:
    """One or more directories: repeated flags, a TOML list, or `:`-separated in the env var."""
    if isinstance(value, str):
        items: list[object] = [v for v in value.split(os.pathsep) if v]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    return tuple(_path(v, name) for v in items)


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{name}: expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{name}: expected a number, got {_shown(str(value))}") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{name}: must be a finite non-negative number")
    return number


def _count(value: object, name: str) -> int:
    number = _number(value, name)
    if number != int(number) or number > 2**31:
        raise ConfigError(f"{name}: expected a whole number (at most 2^31)")
    return int(number)


def _port(value: object, name: str) -> int:
    number = _count(value, name)
    if not 1 <= number <= 65535:
        raise ConfigError(f"{name}: a port is a number from 1 to 65535")
    return number


def _bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if not isinstance(value, (str, int)) or (isinstance(value, int) and value not in (0, 1)):
        raise ConfigError(f"{name}: expected true or false, got {_kind(value)}")
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}: expected true or false, got {_shown(text)}")


def _list(value: object, name: str, what: str) -> list[object]:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ConfigError(f"{name}: expected {what}, got {_kind(value)}")


def _pins(value: object, name: str) -> tuple[tuple[str, str], ...]:
    """`model:version` pairs, from a TOML list, repeated flags, or a comma-separated env value.

    Versions are read by TF Serving's number rule whatever the preset (`007` pins `7`): a pin
    may match more than the server would load, never less."""
    items: list[object]
    if isinstance(value, str):
        items = [v for v in value.split(",") if v.strip()]
    else:
        items = _list(value, name, "a list of MODEL:VERSION")
    pins = []
    for item in items:
        text = _line(item, name).strip()
        model, sep, version = text.rpartition(":")
        if not sep or not model or not version.strip():
            raise ConfigError(f"{name}: {_shown(text)} is not MODEL:VERSION (e.g. half_plus_two:123)")
        pins.append((model, canonical_version(version.strip())))
    return tuple(pins)


# RFC 9110 token: what a header name may hold.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII, spaces and tabs: what every HTTP library sends as is.
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")


def _headers(value: object, name: str) -> tuple[str, ...]:
    """`Name: value` headers, from repeated flags, a TOML list, or one per line in the env var.

    Values are secrets (tokens travel in headers): messages name the header, never its value, and
    a header without a colon is not shown at all (its name may be the start of a token).
    """
    items = value.splitlines() if isinstance(value, str) else _list(value, name, "'Name: value' headers")
    out = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, str):
            raise ConfigError(f"{name}: header #{n}: expected text, got {_kind(item)}")
        text = item.strip()
        if not text:
            continue
        key, sep, val = text.partition(":")
        key = key.strip()
        if not sep or not _HEADER_NAME.fullmatch(key):
            raise ConfigError(
                f"{name}: header #{n} is not 'Name: value' (e.g. 'X-Scope-OrgID: ml'; not shown, it "
                "may hold a secret)"
            )
        if not _HEADER_VALUE.fullmatch(val):
            raise ConfigError(
                f"{name}: the value of header {key} holds a control or non-ASCII character (not shown)"
            )
        redact.register(val.strip(), header=key)
        out.append(f"{key}: {val.strip()}")
    return tuple(out)


def _tenant(value: object, name: str) -> str:
    text = _str(value, name).strip()
    if not text or not _HEADER_VALUE.fullmatch(text):
        raise ConfigError(f"{name}: a tenant is one line of visible ASCII characters")
    redact.register(text, header="X-Scope-OrgID")
    return text


_ADDRESS = re.compile(r"[^@\s<>,;\"()\\\[\]]+@[^@\s<>,;\"()\\\[\]]+")


def _address(value: object, name: str) -> str:
    """One e-mail address: no spaces, quotes or line breaks (which would rewrite mail headers)."""
    text = _str(value, name).strip()
    if not _ADDRESS.fullmatch(text) or not text.isascii() or not text.isprintable():
        raise ConfigError(f"{name}: {_shown(text)} is not an e-mail address such as retire@example.com")
    return text


def _addresses(value: object, name: str) -> tuple[str, ...]:
    """Recipients: comma-separated, and the flag may be repeated (or a TOML list)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        for address in _str(item, name).split(","):
            if address.strip():
                out.append(_address(address, name))
    return tuple(out)


def _attachments(value: object, name: str) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else _str(value, name).split(",")
    return tuple(_choice("json", "csv")(_str(i, name).strip(), name) for i in items if _str(i, name).strip())


def _choice(*allowed: str) -> Callable[[object, str], str]:
    def parse(value: object, name: str) -> str:
        text = _str(value, name).strip().lower()
        if text not in allowed:
            raise ConfigError(f"{name}: {_shown(text)} is not one of {', '.join(allowed)}")
        return text

    return parse


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, already validated. Durations are seconds."""

    prometheus: str | None = None
    model_dir: tuple[Path, ...] = ()
    model_config: Path | None = None
    preset: str = "tfserving-patched"
    model_base_path: Path | None = None
    model_name: str | None = None
    threshold: float = 0.0
    selector: str = ""
    window: float = 86400.0
    step: float = 3600.0
    metric: str = DEFAULT_METRIC
    model_label: str = "model_name"
    version_label: str = "model_version"
    at: datetime | None = None
    timeout: float = 30.0
    format: str | None = None
    output: Path | None = None
    coverage: str | None = None
    max_gap: float = 900.0
    keep_latest: int = 1
    min_age: float | None = None  # None: the query window
    age_source: str = "mtime"
    pin: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    verbose: bool = False
    # Connection: secrets are never printed, so they stay out of repr too.
    header: tuple[str, ...] = field(default_factory=tuple, repr=False)
    tenant: str | None = field(default=None, repr=False)
    bearer_token_file: Path | None = None
    basic_auth_user: str | None = None
    basic_auth_password: str | None = field(default=None, repr=False)
    basic_auth_password_file: Path | None = None
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    insecure: bool = False
    partial_response: str | None = None
    split_by_model: bool = False
    server: str | None = None  # the model server's status API, asked which versions are loaded
    # Recording rules (README "Recording rules"): `retire rules` prints them, reports read them.
    use_recording_rules: bool = False
    rule_interval: float = 60.0
    rollup_interval: float = 3600.0
    # Mail (README "Scheduled report").
    mail_to: tuple[str, ...] = ()
    mail_from: str | None = None
    mail_when: str = "always"
    mail_attach: tuple[str, ...] = ()
    smtp_host: str = "localhost"
    smtp_port: int | None = None  # 465 with --smtp-ssl, 587 with --smtp-starttls, else 25
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_password_file: Path | None = None
    smtp_ca_file: Path | None = None
    smtp_timeout: float = 30.0
    since_last: Path | None = None

    @property
    def effective_min_age(self) -> float:
        return self.window if self.min_age is None else self.min_age


# key -> parser. Keys are Settings fields and config-file keys; the environment variable is
# RETIRE_<KEY> (ENV_VARS), except the Prometheus URL's, RETIRE_PROMETHEUS_URL.
_PARSERS: dict[str, Callable[[object, str], Any]] = {
    "prometheus": _url,
    "model_dir": _paths,
    "model_config": _path,
    "preset": _choice(*SERVERS),
    "model_base_path": _path,
    "model_name": _line,
    "threshold": _number,
    "selector": _str,
    "window": parse_duration,
    "step": parse_duration,
    "metric": _line,
    "model_label": _line,
    "version_label": _line,
    "at": parse_instant,
    "timeout": parse_duration,
    "format": _choice("table", "json", "csv", "markdown", "tsv"),
    "output": _path,
    "coverage": _str,
    "max_gap": parse_duration,
    "keep_latest": _count,
    "min_age": parse_duration,
    "age_source": _choice("mtime", "ctime"),
    "pin": _pins,
    "verbose": _bool,
    "header": _headers,
    "tenant": _tenant,
    "bearer_token_file": _path,
    "basic_auth_user": _line,
    "basic_auth_password": _secret,
    "basic_auth_password_file": _path,
    "ca_file": _path,
    "client_cert": _path,
    "client_key": _path,
    "insecure": _bool,
    "partial_response": _choice("allow", "deny"),
    "split_by_model": _bool,
    "server": _str,
    "use_recording_rules": _bool,
    "rule_interval": parse_duration,
    "rollup_interval": parse_duration,
    "mail_to": _addresses,
    "mail_from": _address,
    "mail_when": _choice("always", "actionable"),
    "mail_attach": _attachments,
    "smtp_host": _line,
    "smtp_port": _port,
    "smtp_starttls": _bool,
    "smtp_ssl": _bool,
    "smtp_user": _line,
    "smtp_password": _secret,
    "smtp_password_file": _path,
    "smtp_ca_file": _path,
    "smtp_timeout": parse_duration,
    "since_last": _path,
}

ENV_VARS: dict[str, str] = {key: "RETIRE_" + key.upper() for key in _PARSERS} | {
    "prometheus": "RETIRE_PROMETHEUS_URL"
}
CONFIG_ENV = "RETIRE_CONFIG"


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def _load_file(path: Path) -> dict[str, object]:
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
    for key in ("basic_auth_password", "smtp_password"):
        redact.register(values.get(key))
    for key, value in PRESETS[values.get("preset", "tfserving-patched")].items():
        values.setdefault(key, value)
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    if s.step <= 0:
        raise ConfigError("--step must be greater than 0 (e.g. 1h)")
    if s.window < s.step:
        raise ConfigError(
            f"--window ({format_duration(s.window)}) must be at least --step ({format_duration(s.step)})"
        )
    if s.timeout <= 0:
        raise ConfigError("--timeout must be greater than 0 seconds")
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
    if s.use_recording_rules and s.split_by_model:
        raise ConfigError(
            "--split-by-model and --use-recording-rules exclude each other: recorded series are "
            "already small; drop one"
        )
    if s.smtp_password is not None and s.smtp_password_file is not None:
        raise ConfigError("give the SMTP password by RETIRE_SMTP_PASSWORD or --smtp-password-file, not both")

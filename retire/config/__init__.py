"""Settings resolved once, with one precedence: flags > `RETIRE_*` environment > TOML file > defaults.

Every option has one name used three ways: the flag `--model-dir`, the config-file key `model_dir`
and the environment variable `RETIRE_MODEL_DIR` (the Prometheus URL's variable is
`RETIRE_PROMETHEUS_URL`, as the docs of many exporters spell it). The config file is `--config`,
else `RETIRE_CONFIG`, else `./retire.toml` when it exists. Unknown keys are an error: a typo in a
cron job's config must not silently fall back to a default.

Each option is one entry of `OPTIONS`: the Settings field's default, the parser, the environment
variable, the flag (built by the CLI), the help with its choices and default, and the config-file
key all come from it, so adding an option is one entry plus its Settings field.
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

from retire import redact
from retire.durations import format_duration, parse_duration
from retire.errors import ConfigError, kind_of
from retire.escape import has_unsafe, quoted
from retire.formats import ATTACHABLE, NAMES
from retire.servers import DEFAULT_PRESET, PRESETS, SERVERS, canonical_version
from retire.sources.prometheus.client import check_url

DEFAULT_CONFIG_FILE = Path("retire.toml")
# A parser takes a raw value (flag, env text or TOML value) and the name to blame in errors.
Parser = Callable[[object, str], Any]

# Instants are Unix seconds from 1970 up to the last second of year 9999 (what datetime holds).
MAX_INSTANT = 253402300799.0


def _shown(text: str) -> str:
    """A (non-secret) value quoted for a message: one line, not too long."""
    return quoted(text)


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
        raise ConfigError(f"{name}: expected an instant (RFC 3339 or Unix seconds), got {kind_of(value)}")
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
        raise ConfigError(f"{name}: expected text, got {kind_of(value)}")
    text = str(value)
    if "\x00" in text:
        raise ConfigError(f"{name}: must not contain a NUL character")
    return text


def _secret(value: object, name: str) -> str:
    """A password: text, never shown in any message."""
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected text, got {kind_of(value)}")
    if not value or any(c in value for c in "\x00\r\n"):
        raise ConfigError(f"{name}: must be one non-empty line of text (not shown)")
    redact.register(value)
    return value


def _line(value: object, name: str) -> str:
    """Text that goes into a query, a header or a file name: one line, no control characters."""
    text = _str(value, name)
    if has_unsafe(text):
        raise ConfigError(f"{name}: {_shown(text)} holds a control character")
    return text


def _url(value: object, name: str) -> str:
    text = _str(value, name).strip()
    redact.register_url(text)
    check_url(text, name)
    return text


def _path(value: object, name: str) -> Path:
    """A path; empty text is refused, not read as `.` (a config templated from an unset
    variable would make the working directory the model root, or the file written)."""
    text = _str(value, name)
    if not text.strip():
        raise ConfigError(f"{name}: the path is empty")
    path = Path(text)
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
        raise ConfigError(f"{name}: expected a number, got {kind_of(value)}")
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
        raise ConfigError(f"{name}: expected true or false, got {kind_of(value)}")
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}: expected true or false, got {_shown(text)}")


def _list(value: object, name: str, what: str) -> list[object]:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ConfigError(f"{name}: expected {what}, got {kind_of(value)}")


def _pins(value: object, name: str, as_written: bool = False) -> tuple[tuple[str, str], ...]:
    """`model:version` pairs, from a TOML list, repeated flags, or a comma-separated env value.

    Versions are read by TF Serving's number rule whatever the preset (`007` pins `7`): a pin
    may match more than the server would load, never less. `as_written` keeps the text (for
    `--only`, which must name exactly one version; the plan falls back to the number rule)."""
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
        pins.append((model, version.strip() if as_written else canonical_version(version.strip())))
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
            raise ConfigError(f"{name}: header #{n}: expected text, got {kind_of(item)}")
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
    return tuple(_choice(*ATTACHABLE)(_str(i, name).strip(), name) for i in items if _str(i, name).strip())


def _choice(*allowed: str) -> Parser:
    def parse(value: object, name: str) -> str:
        text = _str(value, name).strip().lower()
        if text not in allowed:
            raise ConfigError(f"{name}: {_shown(text)} is not one of {', '.join(allowed)}")
        return text

    return parse


# Which commands carry an option's flag: QUERY shapes the PromQL (`query`, `rules` and every
# command that gathers evidence), CONNECTION reaches the server (`rules`, to learn the scrape
# interval, and the evidence commands), EVIDENCE the other options of those commands, MAIL those
# of `report` only, OUTPUT the per-command --format and -o (declared here, attached by each command).
QUERY, CONNECTION, EVIDENCE, MAIL, OUTPUT = "query", "connection", "evidence", "mail", "output"


@dataclass(frozen=True)
class Option:
    """One option, declared once: its setting, flag, environment variable, config-file key,
    parser, default and help all come from this entry (README "Configuration and credentials")."""

    key: str  # the Settings field and the config-file key; the flag is --key-with-dashes
    parse: Parser
    help: str  # what it does, one sentence; choices, default and env var are added to it
    example: str  # a valid value as text (what a user would type), for the tests and the docs
    default: Any = None
    group: str = EVIDENCE
    kind: Any = str  # the flag's value type for Typer; None: no flag (a secret: env or file only)
    aliases: tuple[str, ...] = ()
    metavar: str | None = None
    env: str | None = None  # None: RETIRE_<KEY>
    choices: tuple[str, ...] = ()
    default_text: str | None = None  # the default in words, where the value alone does not say it
    secret: bool = False  # kept out of Settings' repr (the parser registers it for redaction)

    @property
    def env_var(self) -> str:
        return self.env or "RETIRE_" + self.key.upper()

    @property
    def flag(self) -> str | None:
        return None if self.kind is None else flag_name(self.key)

    @property
    def shown_default(self) -> str | None:
        """The default as a user would write it, or None when there is nothing to say."""
        if self.default_text is not None:
            return self.default_text
        value = self.default
        if value is None or value is False or value in ("", ()):
            return None
        if self.parse is parse_duration:
            return format_duration(value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    def help_text(self, choices: tuple[str, ...] | None = None, default: str | None = None) -> str:
        """The help line: what it does, the choices, the default and the env var, in that order.
        A command that accepts fewer choices or has its own default (--format) passes them."""
        choices = self.choices if choices is None else choices
        default = self.shown_default if default is None else default
        parts = [self.help]
        if choices:
            parts.append(f"One of: {', '.join(choices)}.")
        if default is not None:
            parts.append(f"Default: {default}.")
        parts.append(f"[env: {self.env_var}]")
        return " ".join(parts)


_DEFAULT = SERVERS[DEFAULT_PRESET]

OPTIONS: tuple[Option, ...] = (
    # Where the evidence comes from.
    Option(
        "prometheus",
        _url,
        "Prometheus base URL; a path prefix is fine (http://host/prometheus).",
        "http://prom:9090",
        env="RETIRE_PROMETHEUS_URL",
        group=CONNECTION,
    ),
    Option(
        "model_dir",
        _paths,
        "Model root: <root>/<model>/<version>/ (a model store for torchserve). Repeatable "
        "(`:`-separated in the environment).",
        "/models",
        default=(),
        kind=list[Path],
        metavar="DIR",
    ),
    Option(
        "model_config",
        _path,
        "TF Serving --model_config_file: models, base paths, pinned versions.",
        "/etc/tfs/models.config",
        kind=Path,
    ),
    Option(
        "preset",
        _choice(*SERVERS),
        "Model server: its metric, labels and directory layout.",
        [*SERVERS][-1],
        default=DEFAULT_PRESET,
        group=QUERY,
        choices=tuple(SERVERS),
    ),
    Option(
        "model_base_path",
        _path,
        "One model's base path (with --model-name) instead of a root.",
        "/models/half_plus_two",
        kind=Path,
    ),
    Option("model_name", _line, "The model served from --model-base-path.", "half_plus_two"),
    # What counts as a call, and over which window.
    Option(
        "threshold",
        _number,
        "Busiest-hour req/s at or below which a version is idle.",
        "0.5",
        default=0.0,
        kind=float,
        default_text="0 (any call keeps a version)",
    ),
    Option(
        "selector",
        _str,
        'Extra label matchers for the metric, e.g. \'job="tfs",namespace="ml"\'.',
        'job="tfs"',
        default="",
        group=QUERY,
    ),
    Option(
        "window",
        parse_duration,
        "How far back to look.",
        "6h",
        default=86400.0,
        group=QUERY,
        default_text="24h",
    ),
    Option(
        "step", parse_duration, "Rate step of the busiest-hour query.", "30m", default=3600.0, group=QUERY
    ),
    Option(
        "metric",
        _line,
        "Call counter metric.",
        "my_calls_total",
        default=_DEFAULT.metric,
        group=QUERY,
        default_text=f"the preset's ({_DEFAULT.metric} for {DEFAULT_PRESET})",
    ),
    Option(
        "model_label",
        _line,
        "Label naming the model.",
        "model",
        default=_DEFAULT.model_label,
        group=QUERY,
        default_text=f"the preset's ({_DEFAULT.model_label} for {DEFAULT_PRESET})",
    ),
    Option(
        "version_label",
        _line,
        "Label naming the version.",
        "version",
        default=_DEFAULT.version_label,
        group=QUERY,
        default_text=f"the preset's ({_DEFAULT.version_label} for {DEFAULT_PRESET})",
    ),
    Option(
        "at",
        parse_instant,
        "Evaluate at this instant (RFC 3339 or Unix seconds) instead of now.",
        "2026-11-24T06:00:00Z",
    ),
    Option(
        "timeout",
        parse_duration,
        "Bound on each whole HTTP request to Prometheus or --server: connect, headers and body "
        "together, however slowly the server sends them.",
        "10s",
        default=30.0,
        group=CONNECTION,
    ),
    Option(
        "deadline",
        parse_duration,
        "Bound on the whole run: every request ends by it (each gets the smaller of --timeout and "
        "the time left) and none starts after it; offload moves nothing after it. Ten minutes "
        "leave a large fleet's queries room and still end a stuck cron job long before the next.",
        "5m",
        default=600.0,
        group=CONNECTION,
    ),
    Option(
        "coverage",
        _str,
        "Scrape targets that must have been up all window, e.g. 'up{job=\"tfs\"}'.",
        'up{job="tfs"}',
        group=QUERY,
    ),
    Option(
        "max_gap", parse_duration, "Longest tolerated hole in the data.", "5m", default=900.0, group=QUERY
    ),
    # What is protected whatever the traffic.
    Option("keep_latest", _count, "Never offer the newest N versions of a model.", "2", default=1, kind=int),
    Option(
        "min_age",
        parse_duration,
        "Protect versions whose directory changed more recently.",
        "2d",
        default_text="the window",
    ),
    Option(
        "age_source",
        _choice("mtime", "ctime"),
        "Which directory time is a version's age.",
        "ctime",
        default="mtime",
        choices=("mtime", "ctime"),
    ),
    Option(
        "pin",
        _pins,
        "MODEL:VERSION never to offload. Repeatable (comma-separated in the environment).",
        "half_plus_two:123",
        default=(),
        kind=list[str],
        metavar="MODEL:VERSION",
    ),
    # How to reach Prometheus.
    Option(
        "header",
        _headers,
        "Extra HTTP header 'Name: value' for the server. Repeatable (one per line in the environment).",
        "X-Scope-OrgID: ml",
        default=(),
        kind=list[str],
        metavar="'NAME: VALUE'",
        secret=True,
        group=CONNECTION,
    ),
    Option(
        "tenant",
        _tenant,
        "Tenant for Mimir/Cortex/Thanos (sent as X-Scope-OrgID).",
        "ml-team",
        secret=True,
        group=CONNECTION,
    ),
    Option(
        "bearer_token_file",
        _path,
        "Send the token in this file (re-read every run).",
        "/var/run/secrets/token",
        kind=Path,
        group=CONNECTION,
    ),
    Option(
        "basic_auth_user",
        _line,
        "Basic auth user; password from RETIRE_BASIC_AUTH_PASSWORD or a file.",
        "retire",
        group=CONNECTION,
    ),
    Option(
        "basic_auth_password",
        _secret,
        "Basic auth password (never a flag: the command line is visible to every user).",
        "example-password",
        kind=None,
        secret=True,
        group=CONNECTION,
    ),
    Option(
        "basic_auth_password_file",
        _path,
        "File holding the basic auth password.",
        "/run/secrets/prom-password",
        kind=Path,
        group=CONNECTION,
    ),
    Option(
        "ca_file",
        _path,
        "CA bundle to verify the server's TLS certificate.",
        "/etc/ssl/ca.pem",
        kind=Path,
        group=CONNECTION,
    ),
    Option(
        "client_cert",
        _path,
        "Client certificate for mutual TLS (with --client-key).",
        "/etc/ssl/client.pem",
        kind=Path,
        group=CONNECTION,
    ),
    Option(
        "client_key",
        _path,
        "Client private key for mutual TLS.",
        "/etc/ssl/client.key",
        kind=Path,
        group=CONNECTION,
    ),
    Option(
        "insecure",
        _bool,
        "Do not verify the server's TLS certificate (prints a warning).",
        "true",
        default=False,
        kind=bool,
        group=CONNECTION,
    ),
    Option(
        "partial_response",
        _choice("allow", "deny"),
        "Thanos: whether partial responses are allowed (partial data is never safe).",
        "deny",
        choices=("allow", "deny"),
    ),
    Option(
        "split_by_model",
        _bool,
        "Run the queries once per model (done automatically when one is too big).",
        "true",
        default=False,
        kind=bool,
    ),
    Option(
        "server",
        _str,
        "Ask the model server which versions are loaded, through its status API by --preset: "
        + "; ".join(dict.fromkeys(s.status_api for s in SERVERS.values()))
        + ".",
        "http://tfs:8501",
        metavar="URL",
    ),
    # Recording rules (README "Recording rules").
    Option(
        "use_recording_rules",
        _bool,
        "Read the series recorded by the rules of `retire rules` (same options) instead of raw ones.",
        "true",
        default=False,
        group=QUERY,
        kind=bool,
    ),
    Option(
        "rule_interval",
        parse_duration,
        "Evaluation interval of the rules' fine group.",
        "30s",
        default=60.0,
        group=QUERY,
    ),
    Option(
        "rollup_interval",
        parse_duration,
        "Evaluation interval of the rules' rollup group.",
        "2h",
        default=3600.0,
        group=QUERY,
    ),
    Option(
        "verbose",
        _bool,
        "Also print full reasons under a terminal's table, ignored directory entries, query timings.",
        "true",
        default=False,
        kind=bool,
        aliases=("-v",),
    ),
    # Output: each command attaches these itself, with its own formats.
    Option(
        "format",
        _choice(*NAMES),  # every command's --format choices, from the formats' registry
        "Output format.",
        "json",
        group=OUTPUT,
        aliases=("-f",),
        choices=NAMES,
    ),
    Option(
        "output",
        _path,
        "Write to this file (atomically) instead of stdout.",
        "report.txt",
        group=OUTPUT,
        kind=Path,
        aliases=("-o",),
    ),
    # Mail (README "Scheduled report").
    Option(
        "mail_to",
        _addresses,
        "Mail the report to these addresses (comma-separated, repeatable).",
        "ml-platform@example.com",
        default=(),
        group=MAIL,
        kind=list[str],
        metavar="ADDRESSES",
    ),
    Option(
        "mail_from",
        _address,
        "Sender address.",
        "retire@example.com",
        group=MAIL,
        default_text="retire@<hostname>",
    ),
    Option(
        "mail_when",
        _choice("always", "actionable"),
        "When to mail; actionable: only when something is safe, unknown or changed.",
        "actionable",
        default="always",
        group=MAIL,
        choices=("always", "actionable"),
    ),
    Option(
        "mail_attach",
        _attachments,
        f"Attach the report as {', '.join(ATTACHABLE)} or {','.join(ATTACHABLE)}.",
        ",".join(ATTACHABLE),
        default=(),
        group=MAIL,
    ),
    Option("smtp_host", _line, "SMTP server.", "smtp.example.com", default="localhost", group=MAIL),
    Option(
        "smtp_port",
        _port,
        "SMTP port.",
        "2525",
        group=MAIL,
        kind=int,
        default_text="25, 587 with --smtp-starttls, 465 with --smtp-ssl",
    ),
    Option(
        "smtp_starttls",
        _bool,
        "Upgrade the connection with STARTTLS.",
        "true",
        default=False,
        group=MAIL,
        kind=bool,
    ),
    Option("smtp_ssl", _bool, "TLS from the start (SMTPS).", "true", default=False, group=MAIL, kind=bool),
    Option(
        "smtp_user",
        _line,
        "Log in as this user; password from RETIRE_SMTP_PASSWORD or --smtp-password-file.",
        "retire",
        group=MAIL,
    ),
    Option(
        "smtp_password",
        _secret,
        "SMTP password (never a flag: the command line is visible to every user).",
        "example-password",
        group=MAIL,
        kind=None,
        secret=True,
    ),
    Option(
        "smtp_password_file",
        _path,
        "File holding the SMTP password.",
        "/run/secrets/smtp-password",
        group=MAIL,
        kind=Path,
    ),
    Option(
        "smtp_ca_file",
        _path,
        "CA bundle to verify the SMTP server's certificate.",
        "/etc/ssl/smtp-ca.pem",
        group=MAIL,
        kind=Path,
    ),
    Option(
        "smtp_timeout",
        parse_duration,
        "Bound on the whole SMTP conversation (connect, greeting, TLS, login, sending, each "
        "reply), within the run's --deadline; a failure notice gets this much even past it.",
        "10s",
        default=30.0,
        group=MAIL,
    ),
    Option(
        "since_last",
        _path,
        "Compare with the report saved here last time, then save this one (JSON).",
        "/var/lib/retire/last.json",
        group=MAIL,
        kind=Path,
    ),
)
OPTION: dict[str, Option] = {o.key: o for o in OPTIONS}
_DEFAULTS: dict[str, Any] = {o.key: o.default for o in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, already validated. Durations are seconds. One field per entry of
    OPTIONS, its default the table's (tests/test_config.py checks both); secrets stay out of repr."""

    prometheus: str | None = _DEFAULTS["prometheus"]
    model_dir: tuple[Path, ...] = _DEFAULTS["model_dir"]
    model_config: Path | None = _DEFAULTS["model_config"]
    preset: str = _DEFAULTS["preset"]
    model_base_path: Path | None = _DEFAULTS["model_base_path"]
    model_name: str | None = _DEFAULTS["model_name"]
    threshold: float = _DEFAULTS["threshold"]
    selector: str = _DEFAULTS["selector"]
    window: float = _DEFAULTS["window"]
    step: float = _DEFAULTS["step"]
    metric: str = _DEFAULTS["metric"]
    model_label: str = _DEFAULTS["model_label"]
    version_label: str = _DEFAULTS["version_label"]
    at: datetime | None = _DEFAULTS["at"]
    timeout: float = _DEFAULTS["timeout"]
    deadline: float = _DEFAULTS["deadline"]
    format: str | None = _DEFAULTS["format"]
    output: Path | None = _DEFAULTS["output"]
    coverage: str | None = _DEFAULTS["coverage"]
    max_gap: float = _DEFAULTS["max_gap"]
    keep_latest: int = _DEFAULTS["keep_latest"]
    min_age: float | None = _DEFAULTS["min_age"]  # None: the query window
    age_source: str = _DEFAULTS["age_source"]
    pin: tuple[tuple[str, str], ...] = _DEFAULTS["pin"]
    verbose: bool = _DEFAULTS["verbose"]
    header: tuple[str, ...] = field(default=_DEFAULTS["header"], repr=False)
    tenant: str | None = field(default=_DEFAULTS["tenant"], repr=False)
    bearer_token_file: Path | None = _DEFAULTS["bearer_token_file"]
    basic_auth_user: str | None = _DEFAULTS["basic_auth_user"]
    basic_auth_password: str | None = field(default=_DEFAULTS["basic_auth_password"], repr=False)
    basic_auth_password_file: Path | None = _DEFAULTS["basic_auth_password_file"]
    ca_file: Path | None = _DEFAULTS["ca_file"]
    client_cert: Path | None = _DEFAULTS["client_cert"]
    client_key: Path | None = _DEFAULTS["client_key"]
    insecure: bool = _DEFAULTS["insecure"]
    partial_response: str | None = _DEFAULTS["partial_response"]
    split_by_model: bool = _DEFAULTS["split_by_model"]
    server: str | None = _DEFAULTS["server"]  # the model server's status API, asked what is loaded
    use_recording_rules: bool = _DEFAULTS["use_recording_rules"]
    rule_interval: float = _DEFAULTS["rule_interval"]
    rollup_interval: float = _DEFAULTS["rollup_interval"]
    mail_to: tuple[str, ...] = _DEFAULTS["mail_to"]
    mail_from: str | None = _DEFAULTS["mail_from"]
    mail_when: str = _DEFAULTS["mail_when"]
    mail_attach: tuple[str, ...] = _DEFAULTS["mail_attach"]
    smtp_host: str = _DEFAULTS["smtp_host"]
    smtp_port: int | None = _DEFAULTS["smtp_port"]  # None: by --smtp-ssl / --smtp-starttls
    smtp_starttls: bool = _DEFAULTS["smtp_starttls"]
    smtp_ssl: bool = _DEFAULTS["smtp_ssl"]
    smtp_user: str | None = _DEFAULTS["smtp_user"]
    smtp_password: str | None = field(default=_DEFAULTS["smtp_password"], repr=False)
    smtp_password_file: Path | None = _DEFAULTS["smtp_password_file"]
    smtp_ca_file: Path | None = _DEFAULTS["smtp_ca_file"]
    smtp_timeout: float = _DEFAULTS["smtp_timeout"]
    since_last: Path | None = _DEFAULTS["since_last"]

    @property
    def effective_min_age(self) -> float:
        return self.window if self.min_age is None else self.min_age


# Derived from OPTIONS, for the callers that want one aspect.
_PARSERS: dict[str, Parser] = {o.key: o.parse for o in OPTIONS}
ENV_VARS: dict[str, str] = {o.key: o.env_var for o in OPTIONS}
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
    if s.use_recording_rules and s.split_by_model:
        raise ConfigError(
            "--split-by-model and --use-recording-rules exclude each other: recorded series are "
            "already small; drop one"
        )
    if s.smtp_password is not None and s.smtp_password_file is not None:
        raise ConfigError("give the SMTP password by RETIRE_SMTP_PASSWORD or --smtp-password-file, not both")

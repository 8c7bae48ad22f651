"""Value parsers: each takes a raw value (a flag, the text of a `RETIRE_*` variable or a TOML
value) and the name to blame, and returns the typed value or raises a one-line ConfigError.

A parser's return annotation is the type of its Settings field (tests/test_config.py checks
them against each other). Secrets are registered for redaction here, where they are read.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retire import redact
from retire.errors import ConfigError, kind_of
from retire.escape import has_unsafe, quoted
from retire.formats import ATTACHABLE
from retire.servers import canonical_version

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
    from retire.sources.prometheus.connection import check_url  # at parse time: start-up stays light

    check_url(text, name)
    return text


def _server_url(value: object, name: str) -> str:
    """A model server's URL, checked as --prometheus's is (`_url`), and refused with a query
    string or fragment, which could hold a secret and would be merged into every request's path
    (refused first, so that no message repeats it)."""
    text = _str(value, name).strip()
    if "?" in text or "#" in text:
        raise ConfigError(
            f"{name}: give the server's URL without a query string or fragment "
            "(scheme://host:port[/prefix]); what follows ? or # is not shown, it may hold a secret"
        )
    return _url(text, name)


# Between two URLs in RETIRE_SERVER: a line break, or a comma followed by the next URL's scheme
# (a comma inside one URL, in a path or a password, is left alone).
_SERVER_SPLIT = re.compile(r"\n|,\s*(?=https?://)")


def _server_urls(value: object, name: str) -> tuple[str, ...]:
    """One model server URL per replica, from repeated flags, a TOML list (or one string), or
    the env var: one per line or comma-separated (`http://a:8000,http://b:8000`). Each is
    checked as `_server_url`; the same URL twice is one replica."""
    if isinstance(value, str):
        items: list[object] = [v for v in _SERVER_SPLIT.split(value) if v.strip()]
    else:
        items = _list(value, name, "a list of model server URLs")
    out: list[str] = []
    for item in items:
        url = _server_url(item, name)
        if url.rstrip("/") not in (u.rstrip("/") for u in out):
            out.append(url)
    return tuple(out)


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

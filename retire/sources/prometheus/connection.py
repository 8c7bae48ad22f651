"""How to reach the Prometheus server: credentials, TLS and the URL, checked before any request.

Secrets stay out of reprs and messages: a secret file's content is never shown, and a URL's
password is replaced by `***` wherever it is displayed. Credentials go only to the origin the user
named (the client refuses a redirect elsewhere; `origin` says what an origin is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from retire import redact
from retire.errors import ConfigError
from retire.escape import has_unsafe, quoted


@dataclass(frozen=True)
class Connection:
    """How to reach the server: everything but the URL's path. Secrets stay out of repr."""

    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    verify: str | bool = True  # a CA bundle path, or False for --insecure
    client_cert: tuple[str, str] | None = None
    partial_response: str | None = None  # "allow"/"deny": Thanos' partial_response parameter

    @property
    def secrets(self) -> tuple[str, ...]:
        """This connection's secret values long enough to replace anywhere (see retire.redact,
        which also knows their encoded forms and scrubs short ones in context: prefer
        `redact.scrub`)."""
        out = [v for _, v in self.headers]
        if self.bearer_token:
            out.append(self.bearer_token)
        if self.basic_auth:
            out.append(self.basic_auth[1])
        return tuple(v for v in out if len(v) >= redact.MIN_ANYWHERE)

    @property
    def has_credentials(self) -> bool:
        """Anything that must not reach another server: a token, a password or any header."""
        return bool(self.headers or self.bearer_token or self.basic_auth)


# A bearer token is one word of visible ASCII (RFC 6750's b64token is a narrower set; some real
# tokens step outside it). Anything else (an inner newline, a NUL, a non-ASCII byte) is refused by
# the HTTP library with the whole header, token included, in its message.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


def read_secret(path: object, what: str) -> str:
    """A secret file's text without its final newline; errors never show its content."""
    from pathlib import Path

    try:
        data = Path(str(path)).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None
    except ValueError:  # a NUL byte in the path
        raise ConfigError(f"cannot read {what}: the path holds a NUL byte") from None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text; write the secret as text") from None
    redact.register(text)
    return text


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


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
        raise ConfigError(f"{name}: {quoted(_redacted(url))} is not an http(s) URL such as http://prom:9090")
    if port == 0:
        raise ConfigError(f"{name}: port 0 is not a port")


def _redacted(url: str) -> str:
    netloc_start = url.find("://") + 3 if "://" in url else 0
    at = url.find("@", netloc_start, url.find("/", netloc_start) if "/" in url[netloc_start:] else None)
    return url if at < 0 else url[:netloc_start] + "***" + url[at:]


def redact_url(url: str) -> str:
    """The URL without a password, for messages and report headers."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def ssl_context(c: Connection) -> Any:
    import ssl

    if c.verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif isinstance(c.verify, str):
        try:
            ctx = ssl.create_default_context(cafile=c.verify)
        except (OSError, ssl.SSLError, ValueError) as e:
            why = getattr(e, "strerror", None) or getattr(e, "reason", None) or "not a PEM CA bundle"
            raise ConfigError(f"cannot load --ca-file {c.verify}: {why}") from None
    else:
        ctx = ssl.create_default_context()
    if c.client_cert:
        try:
            ctx.load_cert_chain(*c.client_cert)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot load --client-cert/--client-key: {e}") from None
    return ctx

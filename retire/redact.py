"""The one place that knows every secret of a run, and scrubs them from what users see.

Secrets are registered where they are read: `config.resolve` (passwords from the environment or
the config file, `--header` values, the tenant, the user info of the `--prometheus` URL) and the
code that reads secret files (bearer token, password files). `scrub` then removes each secret from
any text, in the forms a server, a proxy or a library may echo it: as is, base64 (how Basic
credentials travel), URL-encoded, and JSON- or repr-escaped. The CLI scrubs every error line and
the failure mail; the Prometheus client scrubs the server's warnings and infos before they reach a
report's header or rows.

Short secrets (1 to 3 characters) cannot be scrubbed everywhere: a token `ab` would be cut out of
every word that contains it, and garbled messages help nobody. They are scrubbed where they stand
as a credential's value: after `Bearer `/`Basic `/`Token `, or after the name of the header that
carries them (`X-Api-Key: ab`, `'x-api-key': 'ab'`, `X-Api-Key=ab`), which is how servers and
proxies echo a request. Such short secrets give little protection anyway: use real tokens.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from urllib.parse import quote, quote_plus, unquote, urlsplit

MIN_ANYWHERE = 4  # secrets at least this long are scrubbed wherever they appear
MASK = "***"

_lock = threading.Lock()
_anywhere: set[str] = set()
_short: set[str] = set()
_names: set[str] = {"authorization", "proxy-authorization", "x-scope-orgid", "password", "token"}


def clear() -> None:
    """Forget every secret (a new run in the same process, as the tests do)."""
    with _lock:
        _anywhere.clear()
        _short.clear()


def _forms(secret: str) -> set[str]:
    raw = secret.encode("utf-8", "surrogateescape")
    b64 = base64.b64encode(raw).decode()
    forms = {
        secret,
        b64,
        b64.rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }
    return {f for f in forms if f}


def register(secret: str | None, header: str | None = None) -> None:
    """Remember a secret; `header` names the HTTP header that carries it (for short secrets)."""
    if not secret:
        return
    with _lock:
        if header:
            _names.add(header.strip().lower())
        values = {secret, secret.strip()}
        scheme, _, credential = secret.strip().partition(" ")
        if credential and scheme.lower() in ("bearer", "basic", "token"):
            values.add(credential.strip())
        for value in filter(None, values):
            if len(value) >= MIN_ANYWHERE:
                _anywhere.update(_forms(value))
            else:
                _short.add(value)


def register_basic(user: str, password: str) -> None:
    """Basic credentials: the password, and `user:password` as it travels (base64)."""
    register(password)
    register(f"{user}:{password}")


def register_url(url: str | None) -> None:
    """The user info of a URL (`http://user:password@host`)."""
    if not url:
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        netloc = url.partition("://")[2].partition("/")[0]
        userinfo = netloc.rpartition("@")[0] if "@" in netloc else ""
    else:
        userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if not userinfo:
        return
    user, _, password = userinfo.partition(":")
    register(userinfo)
    register(unquote(userinfo))
    if password:
        register_basic(unquote(user), unquote(password))


def scrub(text: str) -> str:
    """`text` without any registered secret (each replaced by ***)."""
    with _lock:
        anywhere = sorted(_anywhere, key=len, reverse=True)
        short = sorted(_short, key=len, reverse=True)
        names = sorted(_names, key=len, reverse=True)
    for form in anywhere:
        text = text.replace(form, MASK)
    if short:
        before = r"(?i)((?:\b(?:bearer|basic|token)\s+)|(?:(?:" + "|".join(map(re.escape, names))
        before += r""")["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token)\s+)?))"""
        values = "|".join(re.escape(s) for s in short)
        pattern = re.compile(before + f"(?:{values})" + r"(?![A-Za-z0-9._~+/=-])")
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text

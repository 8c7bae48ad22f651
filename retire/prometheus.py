"""A small client for the Prometheus HTTP query API (and servers that speak it).

It reads the JSON contract carefully: `status: error` with `errorType`/`error`, `warnings` and
`infos` kept for the report, VictoriaMetrics' `isPartial`, and sample values that are strings
(`"NaN"`, `"+Inf"` included). Every failure becomes a `PrometheusError` whose one-line message says
what happened and what to try; callers never see an httpx exception.

Queries go as POST form data: the evidence queries are long and a GET URL can hit proxy limits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from retire.errors import ConfigError, PrometheusError

if TYPE_CHECKING:
    import httpx

    from retire.config import Settings

TOO_BIG_HINT = (
    "shorten --window, narrow it with --selector, or let retire split the query by model (--split-by-model)"
)


class QueryTooBig(PrometheusError):
    """The server refused a query for its size (sample limit) or ran out of time on it.

    The evidence layer retries these split by model; only if that fails too does the user see it.
    """


@dataclass(frozen=True)
class Connection:
    """How to reach the server: everything but the URL's path. Secrets stay out of repr."""

    headers: tuple[tuple[str, str], ...] = ()
    bearer_token: str | None = field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    verify: str | bool = True  # a CA bundle path, or False for --insecure
    client_cert: tuple[str, str] | None = None
    partial_response: str | None = None  # "allow"/"deny": Thanos' partial_response parameter

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, so messages can be scrubbed of them."""
        out = [v for _, v in self.headers]
        if self.bearer_token:
            out.append(self.bearer_token)
        if self.basic_auth:
            out.append(self.basic_auth[1])
        return tuple(v for v in out if len(v) >= 4)


def _read_secret(path: object, what: str) -> str:
    from pathlib import Path

    try:
        return Path(str(path)).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None


def connection_from(settings: Settings) -> Connection:
    """Read credentials now (a mounted Kubernetes token rotates: it is re-read on every run)."""
    headers = []
    for text in settings.header:
        name, _, value = text.partition(":")
        headers.append((name.strip(), value.strip()))
    if settings.tenant:
        headers.append(("X-Scope-OrgID", settings.tenant))
    token = None
    if settings.bearer_token_file:
        token = _read_secret(settings.bearer_token_file, "--bearer-token-file")
    basic = None
    if settings.basic_auth_user is not None:
        password = settings.basic_auth_password
        if settings.basic_auth_password_file is not None:
            password = _read_secret(settings.basic_auth_password_file, "--basic-auth-password-file")
        if password is None:
            raise ConfigError(
                "--basic-auth-user needs a password: set RETIRE_BASIC_AUTH_PASSWORD or "
                "--basic-auth-password-file (never on the command line)"
            )
        basic = (settings.basic_auth_user, password)
    for flag, path in (("--ca-file", settings.ca_file), ("--client-cert", settings.client_cert),
                       ("--client-key", settings.client_key)):  # fmt: skip
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag} {path} does not exist")
    verify: str | bool = str(settings.ca_file) if settings.ca_file else True
    if settings.insecure:
        verify = False
    cert = None
    if settings.client_cert and settings.client_key:
        cert = (str(settings.client_cert), str(settings.client_key))
    return Connection(tuple(headers), token, basic, verify, cert, settings.partial_response)


def redact_url(url: str) -> str:
    """The URL without a password, for messages and report headers."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Series:
    """One result series: its labels and either one value (instant) or (time, value) points."""

    labels: dict[str, str]
    value: float | None = None
    points: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class IndexAnswer:
    """An answer of the index APIs (series, label values): data plus the warnings that say it
    may be incomplete."""

    series: tuple[dict[str, str], ...]
    warnings: tuple[str, ...] = ()
    partial: bool = False


@dataclass(frozen=True)
class QueryResult:
    result_type: str
    series: tuple[Series, ...]
    warnings: tuple[str, ...] = ()
    infos: tuple[str, ...] = ()
    partial: bool = False
    stats: dict[str, Any] = field(default_factory=dict)


def parse_value(text: object) -> float:
    """Prometheus sends values as strings; Go spells infinities `+Inf`/`-Inf`."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"sample value {text!r} is not a string")
    return float(text)  # float() accepts "NaN", "+Inf", "-Inf" already


def parse_response(payload: object, where: str) -> QueryResult:
    """Turn a decoded `/api/v1/query(_range)` body into a QueryResult, or raise PrometheusError."""
    if not isinstance(payload, dict) or "status" not in payload:
        raise PrometheusError(f"{where} answered JSON without a 'status' field; is this a Prometheus API?")
    if payload["status"] != "success":
        kind = payload.get("errorType", "error")
        raise PrometheusError(f"{where} rejected the query: {kind}: {payload.get('error', '?')}")
    data = payload.get("data")
    try:
        result_type = data["resultType"]  # type: ignore[index]
        raw = data["result"]  # type: ignore[index]
        series: list[Series] = []
        if result_type == "vector":
            for item in raw:
                series.append(Series(dict(item["metric"]), value=parse_value(item["value"][1])))
        elif result_type == "matrix":
            for item in raw:
                points = tuple((float(t), parse_value(v)) for t, v in item["values"])
                series.append(Series(dict(item["metric"]), points=points))
        elif result_type == "scalar":
            series.append(Series({}, value=parse_value(raw[1])))
        else:
            raise ValueError(f"result type {result_type!r}")
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise PrometheusError(
            f"{where} sent a malformed result ({e}); check the URL points at a Prometheus-compatible API"
        ) from e
    return QueryResult(
        result_type=result_type,
        series=tuple(series),
        warnings=tuple(str(w) for w in payload.get("warnings") or ()),
        infos=tuple(str(i) for i in payload.get("infos") or ()),
        partial=bool(payload.get("isPartial", False)),
        stats=dict((data or {}).get("stats") or {}),
    )


class PrometheusClient:
    """Talks to one Prometheus-compatible server. Thread-safe; use as a context manager."""

    def __init__(
        self, base_url: str, timeout: float = 30.0, stats: bool = False, connection: Connection | None = None
    ) -> None:
        import httpx

        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PrometheusError(
                f"--prometheus: {redact_url(base_url)!r} is not an http(s) URL such as http://prom:9090"
            )
        self.base_url = base_url.rstrip("/")
        self.display_url = redact_url(self.base_url)
        self.timeout = timeout
        self.stats = stats
        self.connection = connection or Connection()
        c = self.connection
        headers = dict(c.headers)
        if c.bearer_token:
            headers["Authorization"] = f"Bearer {c.bearer_token}"
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            headers=headers,
            auth=httpx.BasicAuth(*c.basic_auth) if c.basic_auth else None,
            verify=_ssl_context(c),
        )

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def query(self, promql: str, at: float) -> QueryResult:
        """An instant query evaluated at Unix time `at`."""
        result: QueryResult = self._send("/api/v1/query", {"query": promql, "time": _fmt_time(at)})
        return result

    def samples(self, selector: str, window: float, at: float) -> QueryResult:
        """The raw samples of a series selector over the `window` seconds before `at` (an instant
        query of a range vector: a matrix)."""
        seconds = f"{int(window)}s" if window == int(window) else f"{round(window * 1000)}ms"
        form = {"query": f"{selector}[{seconds}]", "time": _fmt_time(at)}
        result: QueryResult = self._send("/api/v1/query", form)
        if result.result_type != "matrix":
            raise PrometheusError(
                f"Prometheus at {self.display_url} answered a range-vector query with a "
                f"{result.result_type}, not a matrix; check the URL points at a Prometheus-compatible API"
            )
        return result

    def query_range(self, promql: str, start: float, end: float, step: float) -> QueryResult:
        form = {"query": promql, "start": _fmt_time(start), "end": _fmt_time(end), "step": f"{step:g}"}
        result: QueryResult = self._send("/api/v1/query_range", form)
        return result

    def label_values(self, label: str, match: str, start: float, end: float) -> list[str]:
        """Values of one label among the series matching a selector in [start, end] (index only: cheap)."""
        form = {"match[]": match, "start": _fmt_time(start), "end": _fmt_time(end)}
        result = self._send(f"/api/v1/label/{label}/values", form, method="GET", raw=True)
        assert isinstance(result, list)
        return [str(v) for v in result]

    def series(self, match: str, start: float, end: float) -> IndexAnswer:
        """Label sets of the series matching a selector in [start, end] (index only: no samples
        are read). May include a few series just outside the range, never fewer. Warnings and
        partial answers are kept: a partial index is no proof that a series does not exist."""
        form = {"match[]": match, "start": _fmt_time(start), "end": _fmt_time(end)}
        payload = self._send("/api/v1/series", form, method="POST", raw=True, whole=True)
        data = payload.get("data")
        if not isinstance(data, list) or not all(
            isinstance(item, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in item.items())
            for item in data
        ):
            raise PrometheusError(
                f"Prometheus at {self.display_url} answered the series API with something other than "
                "a list of label sets; check the URL points at a Prometheus-compatible API"
            )
        warnings = payload.get("warnings") or []
        return IndexAnswer(
            tuple(data),
            tuple(str(w) for w in warnings) if isinstance(warnings, list) else (str(warnings),),
            "isPartial" in payload and payload["isPartial"] is not False,
        )

    def _send(self, path: str, form: dict[str, str], method: str = "POST", raw: bool = False,
              whole: bool = False) -> Any:  # fmt: skip
        import httpx

        where = f"Prometheus at {self.display_url}"
        if not raw:
            if self.stats:
                form = {**form, "stats": "all"}
            # Server-side timeout a little under ours, so a slow query fails with the server's message.
            form = {**form, "timeout": f"{max(self.timeout - 1, 1):g}s"}
            if self.connection.partial_response == "deny":
                # Thanos Query's parameter, and VictoriaMetrics cluster's (vmselect).
                form = {**form, "partial_response": "false", "deny_partial_response": "1"}
            elif self.connection.partial_response == "allow":
                form = {**form, "partial_response": "true"}
        try:
            if method == "POST":
                response = self._http.post(self.base_url + path, data=form)
            else:
                response = self._http.get(self.base_url + path, params=form)
        except httpx.TimeoutException:
            raise PrometheusError(
                f"{where} did not answer within {self.timeout:g}s; raise --timeout, shorten "
                "--window, or narrow the query with --selector"
            ) from None
        except httpx.HTTPError as e:
            reason = self._scrub(_root_cause(e))
            if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate" in reason.lower():
                raise PrometheusError(
                    f"TLS certificate of {where} not trusted ({reason}); pass its CA with --ca-file "
                    "(or, not recommended, --insecure)"
                ) from None
            if "SSL" in reason or "TLS" in reason:
                raise PrometheusError(
                    f"TLS handshake with {where} failed ({reason}); check --client-cert/--client-key "
                    "and --ca-file"
                ) from None
            raise PrometheusError(
                f"cannot reach {where}: {reason}; check --prometheus (or RETIRE_PROMETHEUS_URL) "
                "and that the server is up"
            ) from None
        try:
            return self._decode(response, where, raw, whole)
        except PrometheusError as e:
            e.message = self._scrub(e.message)
            raise

    def _scrub(self, text: str) -> str:
        for secret in self.connection.secrets:
            text = text.replace(secret, "***")
        return text

    @staticmethod
    def _decode(response: httpx.Response, where: str, raw: bool = False, whole: bool = False) -> Any:
        if response.status_code in (401, 403):
            raise PrometheusError(
                f"{where} refused the credentials (HTTP {response.status_code}); check "
                "--bearer-token-file, --basic-auth-user and its password, --header or --tenant"
            )
        try:
            payload = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            hint = (
                "; is the URL the server root (e.g. http://prom:9090, or http://host/prometheus "
                "behind a path prefix)?"
            )
            raise PrometheusError(
                f"{where} answered HTTP {response.status_code} with {kind}, not JSON{hint}"
            ) from None
        api_error = isinstance(payload, dict) and payload.get("status") == "error"
        status = response.status_code
        if status >= 400 and not api_error:
            too_big = status in (422, 503, 504)
            raise (QueryTooBig if too_big else PrometheusError)(
                f"{where} answered HTTP {status} {response.reason_phrase}; "
                + (TOO_BIG_HINT if too_big else "check the URL, path prefix and credentials")
            )
        if api_error and (payload.get("errorType") in ("execution", "timeout") or status in (422, 503)):
            raise QueryTooBig(
                f"{where} could not run the query: {payload.get('errorType')}: {payload.get('error')} "
                f"(HTTP {status}); {TOO_BIG_HINT}"
            )
        try:
            if raw:
                if not isinstance(payload, dict) or payload.get("status") != "success":
                    parse_response(payload, where)  # raises the API's error
                return payload if whole else payload["data"]
            return parse_response(payload, where)
        except PrometheusError as e:
            if status >= 400:
                e.message += f" (HTTP {status})"
            raise


def _ssl_context(c: Connection) -> Any:
    import ssl

    if c.verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif isinstance(c.verify, str):
        ctx = ssl.create_default_context(cafile=c.verify)
    else:
        ctx = ssl.create_default_context()
    if c.client_cert:
        try:
            ctx.load_cert_chain(*c.client_cert)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot load --client-cert/--client-key: {e}") from None
    return ctx


def _fmt_time(t: float) -> str:
    return f"{t:.3f}"


def _root_cause(e: BaseException) -> str:
    """The innermost reason ("Connection refused"), not httpx's wrapper text."""
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text

"""A small client for the Prometheus HTTP query API (and servers that speak it).

It reads the JSON contract carefully: `status: error` with `errorType`/`error`, `warnings` and
`infos` kept for the report, VictoriaMetrics' `isPartial`, and sample values that are strings
(`"NaN"`, `"+Inf"` included). Every failure becomes a `PrometheusError` whose one-line message says
what happened and what to try; callers never see an httpx exception.

Nothing in an answer is trusted: the result type must be what the query asks for (an instant
query a vector or scalar, a range query a matrix, the label values API a list of strings), labels
must map strings to strings, timestamps be finite numbers and values Prometheus's sample strings;
anything else is a `PrometheusError` (exit 3), never a guess. Server text that reaches a message,
a warning or a report is scrubbed of secrets (`retire.redact`) and made one line. Credentials go
only to the origin the user named: a redirect elsewhere is refused.

Queries go as POST form data: the evidence queries are long and a GET URL can hit proxy limits.

`--timeout` bounds each whole request (connect, status line, headers and body together), and the
run's `--deadline` bounds them all: each request gets the smaller of the two times left. httpx's
own timeouts are per read, so a server that trickles bytes would never trip them; a
`retire.deadline.Watchdog` shuts the request's socket down when its time is up instead. That is
also why connections are not kept alive: a reused connection's socket is never handed to the
request that reuses it. One TCP (and TLS) handshake per query is cheap next to evaluating it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from retire import redact
from retire.deadline import NO_DEADLINE, Deadline, Watchdog
from retire.errors import ConfigError, PrometheusError
from retire.escape import has_unsafe, printable, quoted

if TYPE_CHECKING:
    import httpx


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


def _origin(url: str) -> tuple[str, str, int | None]:
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


@dataclass(frozen=True)
class Series:
    """One result series: its labels and either one value (instant) or (time, value) points."""

    labels: dict[str, str]
    value: float | None = None
    points: tuple[tuple[float, float], ...] = ()


# A series' identity: its whole label set as data (sorted pairs, without the metric name), never
# text joined by hand, where `a="p",b="x"` and `a="p\",b=\"x"` could come out the same.
SeriesKey = tuple[tuple[str, str], ...]


def series_key(labels: dict[str, str]) -> SeriesKey:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


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


# How Go's strconv.FormatFloat spells a sample value, and the special values Prometheus sends.
_SAMPLE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN")


def parse_value(text: object) -> float:
    """Prometheus sends values as strings; Go spells infinities `+Inf`/`-Inf`. Anything else (a
    JSON number, `null`, `"1_000"`, a decimal too large to be a float) is a malformed answer."""
    if not isinstance(text, str):
        raise ValueError(f"a sample value is {_kind(text)}, not a string")
    if not _SAMPLE.fullmatch(text):
        raise ValueError(f"sample value {quoted(text, 40)} is not a number")
    value = float(text)
    if math.isinf(value) and "Inf" not in text:
        raise ValueError(f"sample value {quoted(text, 40)} is out of range")
    return value


def _kind(value: object) -> str:
    """A JSON value's type in words, for messages that must not repeat the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _timestamp(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a timestamp is {_kind(value)}, not a number")
    t = float(value)
    if not math.isfinite(t):
        raise ValueError("a timestamp is not a finite number")
    return t


def _labels(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"a series' labels are {_kind(value)}, not an object")
    for k, v in value.items():
        if not isinstance(v, str):
            raise ValueError(f"label {quoted(str(k), 60)} is {_kind(v)}, not a string")
    return dict(value)


def _sample(value: object) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f'a sample is {_kind(value)}, not [time, "value"]')
    return _timestamp(value[0]), parse_value(value[1])


def _strings(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what!r} is {_kind(value)}, not a list of strings")
    return tuple(redact.scrub(v) for v in value)


def parse_response(payload: object, where: str, expect: tuple[str, ...] | None = None) -> QueryResult:
    """Turn a decoded `/api/v1/query(_range)` body into a QueryResult, or raise PrometheusError.

    `expect`: the result types the query can give (an instant query a vector or a scalar, a range
    query a matrix). Every other shape is refused, never guessed at: a matrix read as a vector
    would lose series and make evidence look empty.
    """
    if not isinstance(payload, dict) or "status" not in payload:
        raise PrometheusError(f"{where} answered JSON without a 'status' field; is this a Prometheus API?")
    if payload["status"] != "success":
        kind, text = payload.get("errorType", "error"), payload.get("error", "?")
        raise PrometheusError(f"{where} rejected the query: {_text(kind)}: {_text(text)}")
    data = payload.get("data")
    try:
        if not isinstance(data, dict):
            raise ValueError(f"'data' is {_kind(data)}, not an object")
        result_type, raw = data.get("resultType"), data.get("result")
        if not isinstance(result_type, str) or "result" not in data:
            raise ValueError("'data' lacks 'resultType' or 'result'")
        if expect is not None and result_type not in expect:
            raise PrometheusError(
                f"{where} answered a {quoted(result_type, 20)} result where the query asks for "
                f"{' or '.join(repr(e) for e in expect)}; is the URL a Prometheus-compatible API?"
            )
        series: list[Series] = []
        if result_type in ("vector", "matrix"):
            if not isinstance(raw, list):
                raise ValueError(f"'result' is {_kind(raw)}, not a list")
            for item in raw:
                if not isinstance(item, dict):
                    raise ValueError(f"a series is {_kind(item)}, not an object")
                labels = _labels(item.get("metric"))
                if result_type == "vector":
                    series.append(Series(labels, value=_sample(item.get("value"))[1]))
                else:
                    values = item.get("values")
                    if not isinstance(values, list):
                        raise ValueError(f"a series' values are {_kind(values)}, not a list")
                    series.append(Series(labels, points=tuple(_sample(v) for v in values)))
        elif result_type == "scalar":
            series.append(Series({}, value=_sample(raw)[1]))
        else:
            raise ValueError(f"result type {quoted(result_type, 20)}")
        warnings = _strings(payload.get("warnings"), "warnings")
        infos = _strings(payload.get("infos"), "infos")
        partial = payload.get("isPartial", False)
        if not isinstance(partial, bool):
            raise ValueError(f"'isPartial' is {_kind(partial)}, not a boolean")
        stats = data.get("stats") or {}
        if not isinstance(stats, dict):
            raise ValueError(f"'stats' is {_kind(stats)}, not an object")
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as e:
        raise PrometheusError(
            f"{where} sent a malformed result ({e}); check the URL points at a Prometheus-compatible API"
        ) from None
    return QueryResult(result_type, tuple(series), warnings, infos, partial, dict(stats))


def _text(value: object) -> str:
    """Server text for a one-line message: control characters escaped, secrets scrubbed."""
    return printable(redact.scrub(str(value)))[:500]


def parse_label_values(payload: object, where: str) -> list[str]:
    """The `/api/v1/label/<name>/values` answer: a list of strings, nothing else."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        parse_response(payload, where)  # raises the API's error
        raise AssertionError  # parse_response raised
    data = payload.get("data")
    if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
        raise PrometheusError(
            f"{where} sent malformed label values ({_kind(data)}, not a list of strings); check the URL "
            "points at a Prometheus-compatible API"
        )
    return list(data)


class _OffOrigin(Exception):
    """Raised from the request hook: a redirect to another origin while credentials are set."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class PrometheusClient:
    """Talks to one Prometheus-compatible server. Thread-safe; use as a context manager."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 30.0,
        stats: bool = False,
        connection: Connection | None = None,
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        import httpx

        check_url(base_url, "--prometheus")
        self.base_url = base_url.rstrip("/")
        self.display_url = redact_url(self.base_url)
        self.timeout = timeout
        self.deadline = deadline  # the run's: every request ends by it (see the module's docstring)
        self.stats = stats
        self.connection = connection or Connection()
        c = self.connection
        headers = dict(c.headers)
        if c.bearer_token:
            headers["Authorization"] = f"Bearer {c.bearer_token}"
        origin = _origin(self.base_url)
        guarded = c.has_credentials or "@" in urlsplit(self.base_url).netloc  # user info is Basic auth

        def same_origin_only(request: httpx.Request) -> None:
            # Called for every request, redirects included. httpx drops only Authorization on a
            # cross-origin redirect; --header values and the tenant would still go. Refuse instead:
            # the user named one server, and only that one gets the credentials.
            if guarded and _origin(str(request.url)) != origin:
                raise _OffOrigin(str(request.url))

        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            headers=headers,
            auth=httpx.BasicAuth(*c.basic_auth) if c.basic_auth else None,
            verify=_ssl_context(c),
            event_hooks={"request": [same_origin_only]},
            limits=httpx.Limits(max_keepalive_connections=0),  # see the module's docstring
        )

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def query(self, promql: str, at: float) -> QueryResult:
        """An instant query evaluated at Unix time `at`."""
        form = {"query": promql, "time": _fmt_time(at)}
        result: QueryResult = self._send("/api/v1/query", form, expect=("vector", "scalar"))
        return result

    def samples(self, promql: str, at: float) -> QueryResult:
        """The raw samples of a range-vector selector (`metric{...}[86400s]`) at `at`: an
        instant query whose answer is a matrix."""
        form = {"query": promql, "time": _fmt_time(at)}
        result: QueryResult = self._send("/api/v1/query", form)
        if result.result_type != "matrix":
            raise PrometheusError(
                f"Prometheus at {self.display_url} answered a range-vector query with a "
                f"{result.result_type}, not a matrix; check the URL points at a Prometheus-compatible API"
            )
        return result

    def query_range(self, promql: str, start: float, end: float, step: float) -> QueryResult:
        form = {"query": promql, "start": _fmt_time(start), "end": _fmt_time(end), "step": f"{step:g}"}
        result: QueryResult = self._send("/api/v1/query_range", form, expect=("matrix",))
        return result

    def label_values(self, label: str, match: str, start: float, end: float) -> list[str]:
        """Values of one label among the series matching a selector in [start, end] (index only: cheap)."""
        form = {"match[]": match, "start": _fmt_time(start), "end": _fmt_time(end)}
        result = self._send(f"/api/v1/label/{label}/values", form, method="GET", raw=True)
        return parse_label_values({"status": "success", "data": result}, f"Prometheus at {self.display_url}")

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
        try:
            warnings = _strings(payload.get("warnings"), "warnings")  # scrubbed of secrets
        except ValueError as e:
            raise PrometheusError(
                f"Prometheus at {self.display_url} sent a malformed series answer ({e}); check the URL "
                "points at a Prometheus-compatible API"
            ) from None
        partial = "isPartial" in payload and payload["isPartial"] is not False
        return IndexAnswer(tuple(data), warnings, partial)

    def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The `data` of a successful JSON answer to a GET of an API path (`/api/v1/targets`),
        sent as every request is (credentials, TLS, timeout) and failing with the same wording.
        For the status APIs, which answer GET only and carry no query parameters of ours."""
        form = dict(params or {})
        # As every query asks (see _send): a Thanos or VictoriaMetrics cluster answering for
        # several stores is told whether a partial answer is acceptable.
        if self.connection.partial_response == "deny":
            form.update(partial_response="false", deny_partial_response="1")
        elif self.connection.partial_response == "allow":
            form.update(partial_response="true")
        payload = self._send(path, form, method="GET", raw=True, whole=True)
        return payload.get("data")

    def _send(
        self,
        path: str,
        form: dict[str, str],
        method: str = "POST",
        raw: bool = False,
        whole: bool = False,
        expect: tuple[str, ...] | None = None,
    ) -> Any:
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
        limit, by_run = self.deadline.limit(self.timeout)
        late = self._late(where, by_run)
        if limit <= 0:
            raise late  # the run's deadline passed: no new request
        dog = Watchdog(limit)
        # Each of httpx's own timeouts (connect, each read, each write) is the whole time left too.
        bounded: dict[str, Any] = {"timeout": limit, "extensions": {"trace": dog.trace}}
        try:
            with dog:
                if method == "POST":
                    response = self._http.post(self.base_url + path, data=form, **bounded)
                else:
                    response = self._http.get(self.base_url + path, params=form, **bounded)
        except _OffOrigin as e:
            scheme, host, port = _origin(e.url)
            raise PrometheusError(
                f"{where} redirected to another server ({scheme}://{printable(host)}:{port}); retire "
                "sends credentials and --header values only to --prometheus: if you trust that server, "
                "pass its URL as --prometheus"
            ) from None
        except (httpx.HTTPError, ValueError, UnicodeError) as e:
            if dog.fired or isinstance(e, httpx.TimeoutException):
                raise late from None  # whatever the cut socket made httpx say
            self._failed(e, where)
        if dog.fired:  # the answer may have been cut short: never read it
            raise late
        try:
            return self._decode(response, where, raw, whole, expect)
        except PrometheusError as e:
            e.message = self._scrub(e.message)
            raise

    def _late(self, where: str, by_run: bool) -> PrometheusError:
        """The request ran out of time: its own (--timeout) or the run's (--deadline)."""
        if by_run:
            return PrometheusError(
                f"{where} did not answer before the run's --deadline ({self.deadline.shown}) passed; "
                "raise --deadline, shorten --window, or narrow the query with --selector"
            )
        return PrometheusError(
            f"{where} did not answer within {self.timeout:g}s; raise --timeout, shorten "
            "--window, or narrow the query with --selector"
        )

    def _failed(self, e: Exception, where: str) -> NoReturn:
        """Any other failure of the request, as one line."""
        import httpx

        if isinstance(e, httpx.HTTPError):
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
        # a request httpx cannot even form (ValueError, UnicodeError)
        raise ConfigError(
            f"cannot send a request to {where}: {self._scrub(str(e))}; check --prometheus and --header"
        ) from None

    @staticmethod
    def _scrub(text: str) -> str:
        return printable(redact.scrub(text))

    @staticmethod
    def _decode(
        response: httpx.Response,
        where: str,
        raw: bool = False,
        whole: bool = False,
        expect: tuple[str, ...] | None = None,
    ) -> Any:
        if response.status_code in (401, 403):
            raise PrometheusError(
                f"{where} refused the credentials (HTTP {response.status_code}); check "
                "--bearer-token-file, --basic-auth-user and its password, --header or --tenant"
            )
        try:
            payload = json.loads(response.content)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep, a huge integer
            kind = _text(response.headers.get("content-type", "no content type").split(";")[0])[:60]
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
                f"{where} answered HTTP {status} {_text(response.reason_phrase)[:60]}; "
                + (TOO_BIG_HINT if too_big else "check the URL, path prefix and credentials")
            )
        if api_error and (payload.get("errorType") in ("execution", "timeout") or status in (422, 503)):
            raise QueryTooBig(
                f"{where} could not run the query: {_text(payload.get('errorType'))}: "
                f"{_text(payload.get('error'))} "
                f"(HTTP {status}); {TOO_BIG_HINT}"
            )
        try:
            if raw:
                if not isinstance(payload, dict) or payload.get("status") != "success":
                    parse_response(payload, where)  # raises the API's error
                return payload if whole else payload.get("data")
            return parse_response(payload, where, expect)
        except PrometheusError as e:
            if status >= 400:
                e.message += f" (HTTP {status})"
            raise


def unreachable(error: PrometheusError) -> bool:
    """Whether the request never reached a server (connection refused, no such host, a TLS
    handshake or connection that failed or timed out), as opposed to a server that answered
    something unusable or too late. Read from the transport error the message replaced."""
    import httpx

    return isinstance(error.__context__, (httpx.ConnectError, httpx.ConnectTimeout))


def _ssl_context(c: Connection) -> Any:
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


def _fmt_time(t: float) -> str:
    return f"{t:.3f}"


def _root_cause(e: BaseException) -> str:
    """The innermost reason ("Connection refused"), not httpx's wrapper text."""
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text

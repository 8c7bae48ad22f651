"""A small client for the Prometheus HTTP query API (and servers that speak it).

Every failure becomes a `PrometheusError` whose one-line message says what happened and what to
try; callers never see an httpx exception. What an answer may hold is read in `answers.py`
(nothing in it is trusted), how the server is reached (credentials, TLS, the URL) in
`connection.py`. Credentials go only to the origin the user named: a redirect elsewhere is refused.

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
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from retire import redact
from retire.deadline import NO_DEADLINE, Deadline, Watchdog
from retire.errors import ConfigError, PrometheusError
from retire.escape import printable
from retire.sources.prometheus.answers import (
    IndexAnswer,
    QueryResult,
    parse_label_values,
    parse_response,
    server_text,
    strings,
)
from retire.sources.prometheus.connection import Connection, check_url, origin, redact_url, ssl_context

if TYPE_CHECKING:
    import httpx


TOO_BIG_HINT = (
    "shorten --window, narrow it with --selector, or let retire split the query by model (--split-by-model)"
)


class QueryTooBig(PrometheusError):
    """The server refused a query for its size (sample limit) or ran out of time on it.

    The evidence layer retries these split by model; only if that fails too does the user see it.
    """


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
        home = origin(self.base_url)
        guarded = c.has_credentials or "@" in urlsplit(self.base_url).netloc  # user info is Basic auth

        def same_origin_only(request: httpx.Request) -> None:
            # Called for every request, redirects included. httpx drops only Authorization on a
            # cross-origin redirect; --header values and the tenant would still go. Refuse instead:
            # the user named one server, and only that one gets the credentials.
            if guarded and origin(str(request.url)) != home:
                raise _OffOrigin(str(request.url))

        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            headers=headers,
            auth=httpx.BasicAuth(*c.basic_auth) if c.basic_auth else None,
            verify=ssl_context(c),
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
        return self.label_answer(label, match, start, end)[0]

    def label_answer(
        self, label: str, match: str, start: float, end: float
    ) -> tuple[list[str], tuple[str, ...], bool]:
        """The label values with the answer's warnings and whether it said it was partial: an
        empty list from a partial index is no proof that nothing is there."""
        form = {"match[]": match, "start": _fmt_time(start), "end": _fmt_time(end)}
        payload = self._send(f"/api/v1/label/{label}/values", form, method="GET", raw=True, whole=True)
        where = f"Prometheus at {self.display_url}"
        values = parse_label_values({"status": "success", "data": payload.get("data")}, where)
        try:
            warnings = strings(payload.get("warnings"), "warnings")  # scrubbed of secrets
        except ValueError as e:
            raise PrometheusError(
                f"{where} sent a malformed label values answer ({e}); check the URL points at a "
                "Prometheus-compatible API"
            ) from None
        return values, warnings, "isPartial" in payload and payload["isPartial"] is not False

    def label_names(self, match: str, start: float, end: float) -> list[str]:
        """The label names the series matching a selector carry in [start, end] (index only)."""
        form = {"match[]": match, "start": _fmt_time(start), "end": _fmt_time(end)}
        data = self.get_json("/api/v1/labels", form)
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise PrometheusError(
                f"Prometheus at {self.display_url} answered /api/v1/labels with no list of names"
            )
        return data

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
            warnings = strings(payload.get("warnings"), "warnings")  # scrubbed of secrets
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
            scheme, host, port = origin(e.url)
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
            plain = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure", "http request")
            if self.base_url.startswith("https://") and any(p in reason for p in plain):
                # What OpenSSL says when the other end answers TLS with plain HTTP.
                raise PrometheusError(
                    f"TLS handshake with {where} failed ({reason}): the server seems to speak plain "
                    f"HTTP; try --prometheus {printable(redact_url('http://' + self.base_url[8:]))}"
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
            kind = server_text(response.headers.get("content-type", "no content type").split(";")[0])[:60]
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
                f"{where} answered HTTP {status} {server_text(response.reason_phrase)[:60]}; "
                + (TOO_BIG_HINT if too_big else "check the URL, path prefix and credentials")
            )
        if api_error and (payload.get("errorType") in ("execution", "timeout") or status in (422, 503)):
            raise QueryTooBig(
                f"{where} could not run the query: {server_text(payload.get('errorType'))}: "
                f"{server_text(payload.get('error'))} "
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


def _fmt_time(t: float) -> str:
    return f"{t:.3f}"


def _root_cause(e: BaseException) -> str:
    """The innermost reason ("Connection refused"), not httpx's wrapper text."""
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text

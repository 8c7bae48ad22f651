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

from retire.errors import PrometheusError

if TYPE_CHECKING:
    import httpx


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

    def __init__(self, base_url: str, timeout: float = 30.0, stats: bool = False) -> None:
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
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True)

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def query(self, promql: str, at: float) -> QueryResult:
        """An instant query evaluated at Unix time `at`."""
        return self._post("/api/v1/query", {"query": promql, "time": _fmt_time(at)})

    def query_range(self, promql: str, start: float, end: float, step: float) -> QueryResult:
        return self._post(
            "/api/v1/query_range",
            {"query": promql, "start": _fmt_time(start), "end": _fmt_time(end), "step": f"{step:g}"},
        )

    def _post(self, path: str, form: dict[str, str]) -> QueryResult:
        import httpx

        where = f"Prometheus at {self.display_url}"
        if self.stats:
            form = {**form, "stats": "all"}
        # Server-side timeout a little under ours, so a slow query fails with the server's message.
        form = {**form, "timeout": f"{max(self.timeout - 1, 1):g}s"}
        try:
            response = self._http.post(self.base_url + path, data=form)
        except httpx.TimeoutException:
            raise PrometheusError(
                f"{where} did not answer within {self.timeout:g}s; raise --timeout, shorten "
                "--window, or narrow the query with --selector"
            ) from None
        except httpx.HTTPError as e:
            reason = _root_cause(e)
            raise PrometheusError(
                f"cannot reach {where}: {reason}; check --prometheus (or RETIRE_PROMETHEUS_URL) "
                "and that the server is up"
            ) from None
        return self._decode(response, where)

    @staticmethod
    def _decode(response: httpx.Response, where: str) -> QueryResult:
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
        if response.status_code >= 400 and not api_error:
            raise PrometheusError(
                f"{where} answered HTTP {response.status_code} {response.reason_phrase}; "
                "check the URL, path prefix and credentials"
            )
        try:
            return parse_response(payload, where)
        except PrometheusError as e:
            if response.status_code >= 400:
                e.message += f" (HTTP {response.status_code})"
            raise


def _fmt_time(t: float) -> str:
    return f"{t:.3f}"


def _root_cause(e: BaseException) -> str:
    """The innermost reason ("Connection refused"), not httpx's wrapper text."""
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text

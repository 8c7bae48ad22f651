"""The Prometheus HTTP API's answers, read carefully: nothing in them is trusted.

The result type must be what the query asks for (an instant query a vector or scalar, a range
query a matrix, the label values API a list of strings), labels must map strings to strings,
timestamps be finite numbers and values Prometheus's sample strings (`"NaN"`, `"+Inf"` included);
anything else is a `PrometheusError` (exit 3), never a guess. `warnings`, `infos` and
VictoriaMetrics' `isPartial` are kept for the report; server text that reaches them is scrubbed of
secrets (`retire.redact`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from retire import redact
from retire.errors import PrometheusError, kind_of
from retire.escape import printable, quoted


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
    return kind_of(value, json=True)


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


def strings(value: object, what: str) -> tuple[str, ...]:
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
        raise PrometheusError(f"{where} rejected the query: {server_text(kind)}: {server_text(text)}")
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
        warnings = strings(payload.get("warnings"), "warnings")
        infos = strings(payload.get("infos"), "infos")
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


def server_text(value: object) -> str:
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

"""Fuzz tests (hypothesis): whatever a server answers and whatever a user puts in a flag, a variable
or the config file, the only exception is a RetireError (one line, a documented exit code)."""

from __future__ import annotations

import contextlib
import json
import os
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retire.config import _PARSERS, ENV_VARS, resolve
from retire.errors import PrometheusError, RetireError
from retire.sources.disk.server_configs import parse_text_proto, read_tfserving_config
from retire.sources.prometheus.client import parse_label_values, parse_response

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
sample = st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=8), st.none()), max_size=3)
labels = st.dictionaries(st.text(max_size=6), json_values, max_size=3)
series = st.fixed_dictionaries(
    {
        "metric": labels | json_values,
        "value": sample | json_values,
        "values": st.lists(sample, max_size=3) | json_values,
    }
)
# Answers that look like Prometheus's, so the fuzzer gets past the first checks.
answers = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["success", "error"]) | json_values,
        "data": st.fixed_dictionaries(
            {
                "resultType": st.sampled_from(["vector", "matrix", "scalar", "string"]) | json_values,
                "result": st.lists(series, max_size=3) | sample | json_values,
            },
            optional={"stats": json_values},
        )
        | json_values,
    },
    optional={
        "warnings": json_values,
        "infos": json_values,
        "isPartial": json_values,
        "errorType": json_values,
        "error": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(payload=answers | json_values, expect=st.sampled_from([None, ("vector", "scalar"), ("matrix",)]))
def test_any_json_answer_is_a_result_or_a_prometheus_error(
    payload: object, expect: tuple[str, ...] | None
) -> None:
    try:
        result = parse_response(payload, "Prometheus at http://x", expect)
    except PrometheusError as e:
        assert "\n" not in e.message
        return
    for s in result.series:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in s.labels.items())
        assert all(isinstance(t, float) and t == t and abs(t) != float("inf") for t, _ in s.points)
    assert all(isinstance(w, str) for w in result.warnings + result.infos)
    if expect is not None:
        assert result.result_type in expect


@settings(max_examples=200, deadline=None)
@given(payload=json_values | st.fixed_dictionaries({"status": st.just("success"), "data": json_values}))
def test_any_json_label_values_are_strings_or_a_prometheus_error(payload: object) -> None:
    try:
        values = parse_label_values(payload, "Prometheus at http://x")
    except PrometheusError:
        return
    assert all(isinstance(v, str) for v in values)


# Values as a TOML file or a flag can hold them: text, numbers (inf and nan too), booleans,
# lists, tables, dates and times.
toml_values = st.recursive(
    st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.dates()
    | st.times(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
KEYS = sorted(_PARSERS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=toml_values)
@pytest.mark.parametrize("key", KEYS)
def test_any_value_for_any_key_is_settings_or_a_config_error(key: str, value: object) -> None:
    try:
        resolve({key: value}, env={})
    except RetireError as e:
        assert "\n" not in e.message
        if key in ("basic_auth_password", "smtp_password", "header", "tenant") and isinstance(value, str):
            assert len(value) < 4 or value.strip() not in e.message


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=40))
@pytest.mark.parametrize("key", KEYS)
def test_any_environment_value_is_settings_or_a_config_error(key: str, text: str) -> None:
    if "\x00" in text:
        return  # the environment cannot hold a NUL
    try:
        resolve({}, env={ENV_VARS[key]: text})
    except RetireError as e:
        assert "\n" not in e.message


@settings(max_examples=100, deadline=None)
@given(doc=st.dictionaries(st.sampled_from(KEYS), toml_values, max_size=4))
def test_any_config_file_is_settings_or_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, doc: dict[str, object]
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "retire.toml"
    path.write_text("\n".join(f"{k} = {_toml(v)}" for k, v in doc.items()) + "\n", encoding="utf-8")
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError:
        return  # a value _toml cannot spell; the parser's error is tested elsewhere
    try:
        resolve({}, env={}, config=path)
    except RetireError as e:
        assert "\n" not in e.message


def _toml(value: object) -> str:
    """A small TOML writer for the generated values (inline tables and arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else "inf"
            if value == float("inf")
            else "-inf"
            if value == float("-inf")
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return value.isoformat()  # type: ignore[attr-defined]


PROTO_TOKENS = [
    *"{}<>[]:;,\"'\\#\n -.eE0123456789xabnf_",
    "name",
    "base_path",
    "config",
    "model_config_list",
    "versions",
    "specific",
    "latest",
    "num_versions",
    "version_labels",
    "key",
    "value",
    "model_version_policy",
    '"/m"',
    '"m"',
    "1e400",
    "true",
]


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(PROTO_TOKENS), max_size=30).map(" ".join))
def test_any_model_config_is_entries_or_an_inventory_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    with contextlib.suppress(RetireError):
        parse_text_proto(text)
    path = tmp_path_factory.mktemp("mc") / "models.config"
    path.write_text("model_config_list { config { " + text + " } }", encoding="utf-8")
    with contextlib.suppress(RetireError):
        read_tfserving_config(path)
    assert os.path.exists(path)

"""Server configs read by protobuf's own text-format parser (issue #23): the schema's names and
numbers are the servers' `.proto` files', every spelling protobuf accepts is read as the server
reads it, unknown fields are refused where retire reads meaning and skipped elsewhere, and any
message of the schema that protobuf's printer writes is read back to the same entries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retire.errors import InventoryError
from retire.sources.disk.server_configs import (
    ModelEntry,
    VersionPolicy,
    _schema,
    read_tfserving_config,
    read_triton_policy,
)

TFS = "tensorflow.serving"
POLICY = f"{TFS}.FileSystemStoragePathSourceConfig.ServableVersionPolicy"

# (message, field) -> (number, type, repeated), copied from tensorflow_serving/config/
# model_server_config.proto and file_system_storage_path_source.proto, and from Triton's
# common/protobuf/model_config.proto (see the module docstring of server_configs.py).
PROTO_FIELDS = {
    (f"{TFS}.ModelServerConfig", "model_config_list"): (1, "message", False),
    (f"{TFS}.ModelServerConfig", "custom_model_config"): (2, "message", False),
    (f"{TFS}.ModelConfigList", "config"): (1, "message", True),
    (f"{TFS}.ModelConfig", "name"): (1, "string", False),
    (f"{TFS}.ModelConfig", "base_path"): (2, "string", False),
    (f"{TFS}.ModelConfig", "model_type"): (3, "enum", False),
    (f"{TFS}.ModelConfig", "model_platform"): (4, "string", False),
    (f"{TFS}.ModelConfig", "logging_config"): (6, "message", False),
    (f"{TFS}.ModelConfig", "model_version_policy"): (7, "message", False),
    (f"{TFS}.ModelConfig", "version_labels"): (8, "message", True),
    (f"{TFS}.ModelConfig.VersionLabelsEntry", "key"): (1, "string", False),
    (f"{TFS}.ModelConfig.VersionLabelsEntry", "value"): (2, "int64", False),
    (POLICY, "latest"): (100, "message", False),
    (POLICY, "all"): (101, "message", False),
    (POLICY, "specific"): (102, "message", False),
    (f"{POLICY}.Latest", "num_versions"): (1, "uint32", False),
    (f"{POLICY}.Specific", "versions"): (1, "int64", True),
    ("inference.ModelConfig", "version_policy"): (3, "message", False),
    ("inference.ModelVersionPolicy", "latest"): (1, "message", False),
    ("inference.ModelVersionPolicy", "all"): (2, "message", False),
    ("inference.ModelVersionPolicy", "specific"): (3, "message", False),
    ("inference.ModelVersionPolicy.Latest", "num_versions"): (1, "uint32", False),
    ("inference.ModelVersionPolicy.Specific", "versions"): (1, "int64", True),
}


def test_schema_is_the_servers_proto_fields() -> None:
    from google.protobuf.descriptor import FieldDescriptor

    names = {v: k[5:].lower() for k, v in vars(FieldDescriptor).items() if k.startswith("TYPE_")}
    seen = {}
    pending = [_schema().model_server_config.DESCRIPTOR, _schema().triton_model_config.DESCRIPTOR]
    while pending:
        message = pending.pop()
        for f in message.fields:
            if (message.full_name, f.name) not in seen:
                repeated = f.is_repeated if hasattr(f, "is_repeated") else f.label == f.LABEL_REPEATED
                seen[(message.full_name, f.name)] = (f.number, names[f.type], repeated)
                if f.message_type is not None and f.message_type.full_name != "google.protobuf.Any":
                    pending.append(f.message_type)
    assert seen == PROTO_FIELDS
    policy = _schema().pool.FindMessageTypeByName(POLICY)
    assert [f.name for f in policy.oneofs_by_name["policy_choice"].fields] == ["latest", "all", "specific"]
    labels = _schema().pool.FindMessageTypeByName(f"{TFS}.ModelConfig")
    assert labels.fields_by_name["version_labels"].message_type.GetOptions().map_entry


def _tfs(tmp_path: Path, body: str) -> ModelEntry:
    path = tmp_path / "models.config"
    path.write_text(f"model_config_list {{ config {{ name: 'm' base_path: '/m' {body} }} }}\n")
    (entry,) = read_tfserving_config(path)
    return entry


def _triton(tmp_path: Path, text: str) -> VersionPolicy:
    path = tmp_path / "config.pbtxt"
    path.write_text(text)
    return read_triton_policy(path)


SPELLINGS = {
    "repeated field": ("model_version_policy { specific { versions: 1 versions: 2 } }", (1, 2)),
    "short list": ("model_version_policy { specific { versions: [1, 2] } }", (1, 2)),
    "both": ("model_version_policy { specific { versions: [1, 2] versions: 3 } }", (1, 2, 3)),
    "empty list": ("model_version_policy { specific { versions: [] } }", ()),
    "hex and octal": ("model_version_policy { specific { versions: [0x2, 010, -0x1] } }", (2, 8, -1)),
    "colons before messages": ("model_version_policy: { specific: { versions: 4 } }", (4,)),
    "pointy brackets": ("model_version_policy < specific: < versions: 4 > >", (4,)),
    "comments": ("model_version_policy { # keep\n specific { versions: 4 # stable\n } } # end\n", (4,)),
    "separators": ("model_version_policy { specific { versions: 4, versions: 5; } };", (4, 5)),
}


@pytest.mark.parametrize(("body", "versions"), SPELLINGS.values(), ids=SPELLINGS.keys())
def test_specific_spellings(tmp_path: Path, body: str, versions: tuple[int, ...]) -> None:
    assert _tfs(tmp_path, body).policy == VersionPolicy("specific", versions=versions)


@pytest.mark.parametrize(
    ("body", "policy"),
    [
        ("model_version_policy { latest: {} }", VersionPolicy("latest", 1)),
        ("model_version_policy: { latest {} }", VersionPolicy("latest", 1)),
        ("model_version_policy { latest { num_versions: 0x2 } }", VersionPolicy("latest", 2)),
        ("model_version_policy { latest { num_versions: 0 } }", VersionPolicy("latest", 1)),  # max(n, 1)
        ("model_version_policy { latest { num_versions: 4294967295 } }", VersionPolicy("latest", 2**32 - 1)),
        ("model_version_policy { all: < > }", VersionPolicy("all")),
        ("model_version_policy { }", VersionPolicy("latest", 1)),  # no choice: latest, as TF Serving
        ("", VersionPolicy("latest", 1)),
    ],
)
def test_tfserving_policy_kinds(tmp_path: Path, body: str, policy: VersionPolicy) -> None:
    assert _tfs(tmp_path, body).policy == policy


def test_strings_labels_and_platform(tmp_path: Path) -> None:
    path = tmp_path / "models.config"
    path.write_text(
        "model_config_list {\n"
        "  config { name: 'a\\'b' \"\\\"c\\\\\" 'd\\x41\\101\\u00e9\\n' base_path: \"/m/\" 'a'\n"
        '    version_labels { key: "stable" value: 1 }\n'
        "    version_labels: < key: 'canary' value: -2 >\n"
        "    version_labels [ { key: 'x' value: 3 }, { key: 'stable' value: 4 } ]\n"
        "    model_type: TENSORFLOW }\n"
        "  config: [ { name: 'b' base_path: 'rel' model_platform: 'pytorch' } ]\n"
        "}\n"
    )
    a, b = read_tfserving_config(path)
    assert a.name == "a'b\"c\\dAAé\n" and a.base_path == Path("/m/a")
    assert a.labels == {"stable": 4, "canary": -2, "x": 3}  # a key given twice: the last, as a map
    assert a.platform == "tensorflow"  # the deprecated model_type, as server_core.cc reads it
    assert (b.name, b.base_path, b.platform) == ("b", tmp_path / "rel", "pytorch")


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("", VersionPolicy("latest", 1)),
        ("version_policy {}", VersionPolicy("all")),  # present, no kind: Triton loads every version
        ("version_policy: < latest: < > >", VersionPolicy("latest", 1)),
        ("version_policy { latest { num_versions: 0 } }", VersionPolicy("latest", 1)),
        ("version_policy { latest { num_versions: 0x3 } } # three\n", VersionPolicy("latest", 3)),
        (
            "version_policy { specific { versions: [1] versions: 2 } }",
            VersionPolicy("specific", versions=(1, 2)),
        ),
        ("version_policy: { all: {} }", VersionPolicy("all")),
    ],
)
def test_triton_policy_kinds(tmp_path: Path, text: str, policy: VersionPolicy) -> None:
    assert _triton(tmp_path, text) == policy


def test_triton_fields_retire_does_not_model_are_skipped(tmp_path: Path) -> None:
    text = """name: "ranker"
backend: "python"
max_batch_size: 8
input [ { name: "X" data_type: TYPE_FP32 dims: [ -1, 3 ] }, { name: "Y" data_type: TYPE_INT64 dims: [ 1 ] } ]
output: [ { name: "Z" data_type: TYPE_FP32 dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU count: 2 } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }
parameters { key: "EXECUTION_ENV_PATH" value: { string_value: "$$TRITON_MODEL_DIRECTORY/env.tar.gz" } }
parameters: < key: 'b' value < string_value: 'c' > >
version_policy: { specific: { versions: [ 5, 7 ] } }
model_transaction_policy { decoupled: true }
"""
    assert _triton(tmp_path, text) == VersionPolicy("specific", versions=(5, 7))


def test_logging_config_is_skipped(tmp_path: Path) -> None:
    body = (
        "logging_config { log_collector_config { type: 'x' filename_prefix: 'y' } "
        "sampling_config { sampling_rate: 0.01 attributes: 3 per_task_sampling_configs [ { dc: 'aa' } ] } }"
    )
    assert _tfs(tmp_path, body).policy == VersionPolicy()


# What the servers refuse, retire refuses: one line naming the file, line:column and what.
REFUSED = {
    "unknown field in ModelConfig": (
        "model_version_polcy { specific { versions: 3 } }",
        "1:56: cannot parse: unknown field 'model_version_polcy' in ModelConfig (TF Serving refuses",
    ),
    "unknown policy kind": (
        "model_version_policy { specfic { versions: 3 } }",
        "unknown field 'specfic' in ServableVersionPolicy",
    ),
    "unknown field in Latest": (
        "model_version_policy { latest { num: 3 } }",
        "unknown field 'num' in Latest",
    ),
    "unknown field in a label": (
        "version_labels { key: 'a' val: 3 }",
        "unknown field 'val' in VersionLabelsEntry",
    ),
    "field number": ("7: 1", "unknown field '7' in ModelConfig"),
    "extension": ("[x.y] { }", 'message type "tensorflow.serving.ModelConfig" does not have extensions'),
    "name twice": ("name: 'n'", 'should not have multiple "name" fields'),
    "policy twice": (
        "model_version_policy { all {} } model_version_policy { latest {} }",
        'should not have multiple "model_version_policy" fields',
    ),
    "two kinds": (
        "model_version_policy { latest {} all {} }",
        'field "all" is specified along with field "latest", another member of oneof "policy_choice"',
    ),
    "negative num_versions": (
        "model_version_policy { latest { num_versions: -1 } }",
        "value out of range: -1",
    ),
    "num_versions over uint32": (
        "model_version_policy { latest { num_versions: 0x100000000 } }",
        "out of range",
    ),
    "version over int64": (
        "model_version_policy { specific { versions: 9223372036854775808 } }",
        "out of range",
    ),
    "float version": ("model_version_policy { specific { versions: 1.0 } }", "couldn't parse integer: 1.0"),
    "string version": ("model_version_policy { specific { versions: '1' } }", "couldn't parse integer"),
    "label value a string": ("version_labels { key: 'a' value: 'b' }", "couldn't parse integer"),
    "scalar policy": ("model_version_policy: 5", "expected '{'"),
    "bad escape": ("model_platform: 'a\\x'", "cannot parse"),
    "invalid UTF-8": ("model_platform: '\\377'", "codec can't decode"),
    "unknown enum": (
        "model_type: PYTORCH",
        'enum type "tensorflow.serving.ModelType" has no value named PYTORCH',
    ),
}


@pytest.mark.parametrize(("body", "needle"), REFUSED.values(), ids=REFUSED.keys())
def test_tfserving_refusals(tmp_path: Path, body: str, needle: str) -> None:
    with pytest.raises(InventoryError) as e:
        _tfs(tmp_path, body)
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'models.config'}:") and "\n" not in message
    assert needle in message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "version_polcy { specific { versions: 1 } }",
            "1:1: cannot parse: unknown field 'version_polcy' (did",
        ),
        ("Version_Policy { all {} }", "did you mean version_policy?"),
        (
            "version_policy { specfic { versions: 1 } }",
            "unknown field 'specfic' in ModelVersionPolicy (Triton",
        ),
        ("version_policy { all { x: 1 } }", "unknown field 'x' in All"),
        ("version_policy { all {} }\nversion_policy { all {} }", "2:16: cannot parse: message type"),
        (
            "version_policy { latest { num_versions: 1 } specific { } }",
            'another member of oneof "policy_choice"',
        ),
        ("input [ { name: 'x' } ", "cannot parse"),
        ("parameters " + "{ a " * 2000 + "}" * 2000, "nested too deeply"),
        ("version_policy " + "{ latest " * 200 + "}" * 200, "cannot parse"),
    ],
)
def test_triton_refusals(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(InventoryError) as e:
        _triton(tmp_path, text)
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'config.pbtxt'}:") and "\n" not in message
    assert needle in message


def test_long_lines_are_not_copied_into_the_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as e:
        _tfs(tmp_path, "model_platform: @" + " " * 5000)
    assert len(str(e.value)) < 300 and "expected string but found: '@'" in str(e.value)


def test_protobuf_is_not_imported_at_start_up() -> None:
    code = "import sys, retire.cli; print(any(m.startswith('google.protobuf') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


# Round trip: whatever protobuf's printer writes for a message of the schema reads back the same.
INT64 = st.integers(-(2**63), 2**63 - 1)
UINT32 = st.integers(0, 2**32 - 1)
names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12) | st.sampled_from(
    ["'", '"', "\\", "a'b\"c\\d", "\n\t", "é✓𝄞", "#not a comment", "{}<>[]:;,"]
)
paths = names.filter(lambda s: "://" not in s and "\x00" not in s)
policies = st.one_of(
    st.none(),
    st.just(("none", None)),
    st.tuples(st.just("latest"), UINT32),
    st.just(("all", None)),
    st.tuples(st.just("specific"), st.lists(INT64, max_size=5)),
)
printers = st.fixed_dictionaries(
    {
        "as_one_line": st.booleans(),
        "as_utf8": st.booleans(),
        "use_short_repeated_primitives": st.booleans(),
        "pointy_brackets": st.booleans(),
        "force_colon": st.booleans(),
    }
)


def _set_policy(message: Any, choice: tuple[str, Any] | None) -> None:
    if choice is None:
        return
    kind, arg = choice
    message.SetInParent()
    if kind == "latest":
        message.latest.num_versions = arg
    elif kind == "all":
        message.all.SetInParent()
    elif kind == "specific":
        message.specific.SetInParent()
        message.specific.versions.extend(arg)


def _expected(choice: tuple[str, Any] | None, unset: VersionPolicy) -> VersionPolicy:
    if choice is None:
        return VersionPolicy()
    kind, arg = choice
    if kind == "latest":
        return VersionPolicy("latest", max(arg, 1))
    if kind == "specific":
        return VersionPolicy("specific", versions=tuple(arg))
    return VersionPolicy("all") if kind == "all" else unset


configs = st.lists(
    st.fixed_dictionaries(
        {
            "name": names,
            "base_path": paths,
            "absolute": st.booleans(),
            "platform": st.none() | names,
            "model_type": st.booleans(),
            "logging": st.booleans(),
            "policy": policies,
            "labels": st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=8), INT64, max_size=3),
        }
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda m: m["name"],  # TF Serving refuses a model listed twice (server_core.cc)
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(models=configs, printer=printers)
def test_any_printed_tfserving_config_reads_back(
    tmp_path: Path, models: list[dict[str, Any]], printer: dict[str, bool]
) -> None:
    from google.protobuf import text_format

    root: Any = _schema().model_server_config()
    expected = []
    for m in models:
        c = root.model_config_list.config.add()
        base = ("/" if m["absolute"] else "") + m["base_path"]
        c.name, c.base_path = m["name"], base
        platform = m["platform"]
        if platform is not None:
            c.model_platform = platform
        elif m["model_type"]:
            c.model_type = 1  # TENSORFLOW
            platform = "tensorflow"
        if m["logging"]:
            c.logging_config.SetInParent()
        _set_policy(c.model_version_policy, m["policy"])
        for k, v in m["labels"].items():
            c.version_labels[k] = v
        path = Path(base) if m["absolute"] else tmp_path / base
        expected.append(
            ModelEntry(
                m["name"], path, platform or None, _expected(m["policy"], VersionPolicy()), m["labels"]
            )
        )
    config = tmp_path / "models.config"
    config.write_text(text_format.MessageToString(root, **printer), encoding="utf-8")
    assert read_tfserving_config(config) == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy=policies, printer=printers, name=names)
def test_any_printed_triton_policy_reads_back(
    tmp_path: Path, policy: tuple[str, Any] | None, printer: dict[str, bool], name: str
) -> None:
    from google.protobuf import text_format

    root: Any = _schema().triton_model_config()
    _set_policy(root.version_policy, policy)
    text = text_format.MessageToString(root, **printer)
    # Fields retire does not model, around the policy, as a real config.pbtxt has them.
    quoted = text_format.MessageToString(_name_message(name), as_one_line=True)
    config = tmp_path / "config.pbtxt"
    config.write_text(f"{quoted}\ninput [ {{ dims: [ 1 ] }} ]\n{text}\nmax_batch_size: 0\n", encoding="utf-8")
    assert read_triton_policy(config) == _expected(policy, VersionPolicy("all"))


def _name_message(name: str) -> Any:
    """A string printed the way protobuf prints one, under a field Triton has and retire skips."""
    from google.protobuf import descriptor_pb2

    return descriptor_pb2.FileDescriptorProto(name=name)

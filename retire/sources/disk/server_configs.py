"""Model server config files in protobuf text format: TF Serving's `--model_config_file` and
Triton's `config.pbtxt`. Both say which versions a server keeps loaded, which `retire` turns into
protection, so retire must read them exactly as the server does, or it protects the wrong version.

So the files are read by protobuf's own text-format parser (`google.protobuf.text_format`, the
Python twin of the C++ `TextFormat::ParseFromString` both servers call), against a schema built at
run time (no protoc, no generated files) whose field names and numbers are copied from the
servers' `.proto` files: tensorflow_serving/config/model_server_config.proto and
file_system_storage_path_source.proto; Triton's common/protobuf/model_config.proto. Every
spelling protobuf accepts (comments, `:` before a message or not, `{}`/`<>`, `[1, 2]` lists,
hex numbers, single quotes, adjacent strings, escapes, `,`/`;` separators) is then read as the
server reads it.

Unknown fields. Both servers refuse a file with a field their schema lacks; retire cannot carry
Triton's whole schema (dozens of messages: input, output, instance_group, parameters...). So:
- strict where retire reads meaning: a field unknown to TF Serving's ModelServerConfig,
  ModelConfigList, ModelConfig or a version policy, or to Triton's version_policy, is refused
  with a one-line error, as the server refuses it. Skipping it would be the unsafe direction:
  `model_version_polcy { specific { versions: 3 } }` skipped reads as the default `latest 1`,
  which protects a different version than the one the user meant to keep (and the server, which
  refused the file, may still run the config it had before);
- lenient elsewhere: the rest of a config.pbtxt and TF Serving's `logging_config` (which retire
  does not model) are skipped, though still checked for text-format syntax. A config.pbtxt field
  spelled almost like `version_policy` is refused rather than skipped, for the same reason.
No message in either schema has extensions, so an extension `[name] {...}` is an error in the
servers and here (`allow_unknown_extension` does not apply); field numbers are not accepted for
names, as in the servers. The strict/lenient split hooks protobuf's parser where it skips an
unknown field (`text_format._Parser._SkipFieldContents`, the same in protobuf 4.25 to 7; its tests
in tests/sources/disk/test_server_configs.py fail if that changes).

Semantics, from the servers' sources: TF Serving serves the newest max(num_versions, 1)
versions under `latest` and also when no policy is chosen (file_system_storage_path_source.cc).
Triton defaults a missing `version_policy` to latest 1, but a `version_policy {}` with no choice
loads all versions (model_lifecycle.cc VersionsToLoad), and `latest` with num_versions 0 loads
none, so Triton refuses the model: retire reads that as latest 1 (it protects more, never less).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retire.errors import InventoryError

if TYPE_CHECKING:
    from google.protobuf.message import Message as ProtoMessage

Message = dict[str, list[Any]]

_TFS = "tensorflow.serving"
_TFS_POLICY = f"{_TFS}.FileSystemStoragePathSourceConfig.ServableVersionPolicy"
_TRITON = "inference"
# Messages whose unknown fields are skipped (see the module docstring); unknown fields anywhere
# else are refused.
_LENIENT = frozenset({f"{_TFS}.LoggingConfig", f"{_TRITON}.ModelConfig"})
_DEPTH = 100  # the C++ parser's default recursion limit


@dataclass(frozen=True)
class VersionPolicy:
    kind: str = "latest"  # "latest", "all" or "specific"
    num_versions: int = 1
    versions: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelEntry:
    name: str
    base_path: Path
    platform: str | None = None
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Schema:
    pool: Any  # google.protobuf.descriptor_pool.DescriptorPool
    model_server_config: type[ProtoMessage]
    triton_model_config: type[ProtoMessage]


@cache
def _schema() -> _Schema:
    """The two servers' messages, as much of them as retire reads, in a private descriptor pool
    (so a process that also loads the servers' real generated modules sees no clash)."""
    from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FieldDescriptorProto
    types = {
        "string": fdp.TYPE_STRING,
        "uint32": fdp.TYPE_UINT32,
        "int64": fdp.TYPE_INT64,
        "message": fdp.TYPE_MESSAGE,
        "enum": fdp.TYPE_ENUM,
    }

    def add(
        msg: descriptor_pb2.DescriptorProto,
        name: str,
        number: int,
        kind: str,
        type_name: str = "",
        *,
        repeated: bool = False,
        oneof: int | None = None,
    ) -> None:
        f = msg.field.add(name=name, number=number, type=types[kind])
        f.label = fdp.LABEL_REPEATED if repeated else fdp.LABEL_OPTIONAL
        if type_name:
            f.type_name = type_name
        if oneof is not None:
            f.oneof_index = oneof

    def policy(msg: descriptor_pb2.DescriptorProto, full: str, numbers: tuple[int, int, int]) -> None:
        """ServableVersionPolicy and Triton's ModelVersionPolicy: the same shape, other numbers."""
        add(msg.nested_type.add(name="Latest"), "num_versions", 1, "uint32")
        msg.nested_type.add(name="All")
        add(msg.nested_type.add(name="Specific"), "versions", 1, "int64", repeated=True)
        msg.oneof_decl.add(name="policy_choice")
        for kind, number in zip(("latest", "all", "specific"), numbers, strict=True):
            add(msg, kind, number, "message", f".{full}.{kind.capitalize()}", oneof=0)

    # tensorflow_serving/config/model_server_config.proto, file_system_storage_path_source.proto
    tfs = descriptor_pb2.FileDescriptorProto(
        name="retire/tfserving.proto", package=_TFS, syntax="proto3", dependency=["google/protobuf/any.proto"]
    )
    model_type = tfs.enum_type.add(name="ModelType")
    for number, name in enumerate(("MODEL_TYPE_UNSPECIFIED", "TENSORFLOW", "OTHER")):
        model_type.value.add(name=name, number=number)
    source = tfs.message_type.add(name="FileSystemStoragePathSourceConfig")
    policy(source.nested_type.add(name="ServableVersionPolicy"), _TFS_POLICY, (100, 101, 102))
    tfs.message_type.add(name="LoggingConfig")  # not modelled: its fields are skipped (_LENIENT)
    config = tfs.message_type.add(name="ModelConfig")
    add(config, "name", 1, "string")
    add(config, "base_path", 2, "string")
    add(config, "model_type", 3, "enum", f".{_TFS}.ModelType")
    add(config, "model_platform", 4, "string")
    add(config, "logging_config", 6, "message", f".{_TFS}.LoggingConfig")
    add(config, "model_version_policy", 7, "message", f".{_TFS_POLICY}")
    labels = config.nested_type.add(name="VersionLabelsEntry")  # map<string, int64> version_labels
    labels.options.map_entry = True
    add(labels, "key", 1, "string")
    add(labels, "value", 2, "int64")
    add(config, "version_labels", 8, "message", f".{_TFS}.ModelConfig.VersionLabelsEntry", repeated=True)
    config_list = tfs.message_type.add(name="ModelConfigList")
    add(config_list, "config", 1, "message", f".{_TFS}.ModelConfig", repeated=True)
    server = tfs.message_type.add(name="ModelServerConfig")
    server.oneof_decl.add(name="config")
    add(server, "model_config_list", 1, "message", f".{_TFS}.ModelConfigList", oneof=0)
    add(server, "custom_model_config", 2, "message", ".google.protobuf.Any", oneof=0)

    # Triton: common/protobuf/model_config.proto
    triton = descriptor_pb2.FileDescriptorProto(name="retire/triton.proto", package=_TRITON, syntax="proto3")
    policy(triton.message_type.add(name="ModelVersionPolicy"), f"{_TRITON}.ModelVersionPolicy", (1, 2, 3))
    triton_config = triton.message_type.add(name="ModelConfig")
    add(triton_config, "version_policy", 3, "message", f".{_TRITON}.ModelVersionPolicy")

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(tfs.SerializeToString())
    pool.AddSerializedFile(triton.SerializeToString())
    return _Schema(
        pool,
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_TFS}.ModelServerConfig")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_TRITON}.ModelConfig")),
    )


@cache
def _parser_class() -> type[Any]:
    """protobuf's text-format parser, refusing unknown fields outside the _LENIENT messages."""
    from google.protobuf import text_format

    class Parser(text_format._Parser):
        def _SkipFieldContents(self, tokenizer: Any, field_name: str, immediate_message_type: str) -> None:
            if immediate_message_type not in _LENIENT:
                raise tokenizer.ParseErrorPreviousToken(_unknown(field_name, immediate_message_type))
            if immediate_message_type == f"{_TRITON}.ModelConfig" and _near("version_policy", field_name):
                raise tokenizer.ParseErrorPreviousToken(
                    f"unknown field {field_name!r} (did you mean version_policy? Triton refuses a "
                    "config.pbtxt with a field it does not know)"
                )
            if tokenizer.LookingAt("["):  # `input [ {...}, {...} ]`: a list of messages needs no ':'
                self._SkipRepeatedFieldValue(tokenizer, immediate_message_type)  # type: ignore[attr-defined]
            else:
                super()._SkipFieldContents(tokenizer, field_name, immediate_message_type)  # type: ignore[misc]

    return Parser


def _unknown(field_name: str, message_type: str) -> str:
    short = message_type.rsplit(".", 1)[-1]
    who = "Triton refuses" if message_type.startswith(f"{_TRITON}.") else "TF Serving refuses"
    return f"unknown field {field_name!r} in {short} ({who} a file with a field it does not know)"


def _near(known: str, name: str) -> bool:
    return name != known and difflib.SequenceMatcher(None, known, name.lower()).ratio() >= 0.8


_LOCATION = re.compile(r"^(\d+)(?::(\d+))? : ")


def _parse(text: str, message: ProtoMessage, where: str) -> None:
    """Parse as the server would (a singular field given twice, two members of a oneof, a value of
    the wrong type or range are all errors), one line naming file, line:column and what."""
    from google.protobuf import text_format

    parser = _parser_class()(
        allow_unknown_field=True, descriptor_pool=_schema().pool, max_recursion_depth=_DEPTH
    )
    lines = text.split("\n")
    try:
        parser.ParseLines(lines, message)
    except text_format.ParseError as e:
        raise InventoryError(_parse_error(str(e), where, lines)) from None
    except RecursionError:  # skipped (unknown) fields are not counted by max_recursion_depth
        raise InventoryError(f"{where}: cannot parse: messages nested too deeply") from None


def _parse_error(error: str, where: str, lines: list[str]) -> str:
    """protobuf's message as one line: `file:line:column: cannot parse: what` (without the copy
    of the whole line protobuf's tokenizer puts in front of some messages)."""
    m = _LOCATION.match(error)
    place = f"{where}:{m[1]}:{m[2]}" if m and m[2] else f"{where}:{m[1]}" if m else where
    what = error[m.end() :] if m else error
    line = lines[int(m[1]) - 1] if m and 0 < int(m[1]) <= len(lines) else None
    if line is not None and what.startswith(f"'{line}': "):
        what = what[len(line) + 4 :]
    expected = re.fullmatch(r'Expected "(.*)"\.', what)
    what = f"expected {expected[1]!r}" if expected else (what[:1].lower() + what[1:]).rstrip(".")
    return f"{place}: cannot parse: {' '.join(what.split())}"


def parse_text_proto(text: str, where: str = "config") -> Message:
    """A schemaless reading of text format (every field a list of values, messages as dicts),
    lexed by protobuf's own tokenizer so strings, escapes and numbers read as the servers read
    them. The readers below do not use it: they parse against the servers' schema."""
    from google.protobuf import text_format

    lines = text.split("\n")
    try:
        return _schemaless(text_format.Tokenizer(lines), None, 0)
    except text_format.ParseError as e:
        raise InventoryError(_parse_error(str(e), where, lines)) from None


def _schemaless(tokenizer: Any, end: str | None, depth: int) -> Message:
    if depth > _DEPTH:
        raise tokenizer.ParseError("messages nested too deeply")
    out: Message = {}
    while not (tokenizer.TryConsume(end) if end else tokenizer.AtEnd()):
        if tokenizer.AtEnd():
            raise tokenizer.ParseErrorPreviousToken(f'Expected "{end}".')
        values = out.setdefault(tokenizer.ConsumeIdentifierOrNumber(), [])
        colon = tokenizer.TryConsume(":")
        if tokenizer.TryConsume("["):  # `f: [1, 2]`, and `f [ {...} ]` for messages
            while not tokenizer.TryConsume("]"):
                values.append(_schemaless_value(tokenizer, depth))
                if not tokenizer.LookingAt("]"):
                    tokenizer.Consume(",")
        elif colon and not (tokenizer.LookingAt("{") or tokenizer.LookingAt("<")):
            values.append(_schemaless_value(tokenizer, depth))
        else:
            values.append(_schemaless_message(tokenizer, depth))
        if not tokenizer.TryConsume(","):
            tokenizer.TryConsume(";")
    return out


def _schemaless_message(tokenizer: Any, depth: int) -> Message:
    close = ">" if tokenizer.TryConsume("<") else "}"
    if close == "}":
        tokenizer.Consume("{")
    return _schemaless(tokenizer, close, depth + 1)


def _schemaless_value(tokenizer: Any, depth: int) -> Any:
    from google.protobuf import text_format

    if tokenizer.LookingAt("{") or tokenizer.LookingAt("<"):
        return _schemaless_message(tokenizer, depth)
    first = tokenizer.token[:1]
    if first in ("'", '"'):
        return tokenizer.ConsumeString()  # adjacent strings joined, escapes read as C++ reads them
    if first.isalpha() or first == "_":
        word = tokenizer.ConsumeIdentifier()
        return {"true": True, "false": False}.get(word, word)
    try:
        return tokenizer.ConsumeInteger()  # a failed Consume does not advance
    except text_format.ParseError:  # not an integer: a float, or an error naming the token
        return tokenizer.ConsumeFloat()


def _read(path: Path, what: str) -> str:
    import os
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would wait for a writer forever
            raise InventoryError(f"cannot read {what}{path}: not a regular file; name the config file")
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise InventoryError(f"cannot read {what}{path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise InventoryError(f"{what}{path} is not UTF-8 text") from None


def _policy(msg: Any, unset: VersionPolicy) -> VersionPolicy:
    """A parsed version policy; `unset` is what the server does when no kind is chosen."""
    kind = msg.WhichOneof("policy_choice")
    if kind == "specific":
        return VersionPolicy("specific", versions=tuple(int(v) for v in msg.specific.versions))
    if kind == "all":
        return VersionPolicy("all")
    if kind == "latest":
        return VersionPolicy("latest", num_versions=max(int(msg.latest.num_versions), 1))
    return unset


def parse_tfserving_text(text: str, where: str = "config") -> Any:
    """The ModelServerConfig message of a --model_config_file's text, parsed exactly as
    `read_tfserving_config` parses it: for code that writes the file back and must read its own
    output with the same schema (retire/actions/tfserving_config.py)."""
    root: Any = _schema().model_server_config()
    _parse(text, root, where)
    return root


def parse_triton_text(text: str, where: str = "config.pbtxt") -> Any:
    """A Triton config.pbtxt's text parsed as `read_triton_policy` parses it: for code that
    rewrites its version_policy and must read its own output back (actions/triton_config.py)."""
    root: Any = _schema().triton_model_config()
    _parse(text, root, where)
    return root


def triton_policy(root: Any) -> VersionPolicy:
    """The version policy of a parsed config.pbtxt, as Triton applies it (`read_triton_policy`)."""
    if not root.HasField("version_policy"):
        return VersionPolicy()
    return _policy(root.version_policy, VersionPolicy("all"))


def tfserving_policy(msg: Any) -> VersionPolicy:
    """A parsed ServableVersionPolicy as TF Serving applies it (none chosen: latest 1)."""
    return _policy(msg, VersionPolicy())


def read_tfserving_config(path: Path) -> list[ModelEntry]:
    """`model_config_list { config { ... } ... }` from a TF Serving --model_config_file."""
    root = parse_tfserving_text(_read(path, "--model-config "), str(path))
    if root.WhichOneof("config") != "model_config_list" or not root.model_config_list.config:
        raise InventoryError(f"{path}: no model_config_list {{ config {{ ... }} }} entries found")
    entries = []
    seen: set[str] = set()
    for c in root.model_config_list.config:
        name, base = str(c.name), str(c.base_path)
        if not name or not base:
            raise InventoryError(f"{path}: every config needs a name and a base_path")
        if name in seen:  # server_core.cc: "Illegal to list model ... multiple times in config list"
            raise InventoryError(
                f"{path}: model {name!r} is listed more than once; TF Serving refuses such a file"
            )
        seen.add(name)
        if "://" in base:
            raise InventoryError(
                f"{path}: model {name!r} has base_path {base}; retire reads local directories only "
                "(mount the bucket, or point --model-dir at a synced copy)"
            )
        if "\x00" in base:
            raise InventoryError(f"{path}: model {name!r} has a base_path with a NUL character")
        base_path = Path(base)
        if not base_path.is_absolute():  # relative to the config file, as documented in README
            base_path = path.parent / base_path
        # The deprecated model_type TENSORFLOW means platform "tensorflow" (server_core.cc).
        platform = str(c.model_platform) or ("tensorflow" if c.model_type == 1 else None)
        labels = {str(k): int(v) for k, v in c.version_labels.items()}
        policy = tfserving_policy(c.model_version_policy)  # unset: latest (as TF Serving)
        entries.append(ModelEntry(name, base_path, platform, policy, labels))
    return entries


def read_triton_policy(path: Path) -> VersionPolicy:
    """The `version_policy` of a Triton model's config.pbtxt (none: latest 1, as Triton's
    NormalizeModelConfig; present but with no kind chosen: all, as its VersionsToLoad)."""
    root: Any = _schema().triton_model_config()
    _parse(_read(path, ""), root, str(path))
    if not root.HasField("version_policy"):
        return VersionPolicy()
    return _policy(root.version_policy, VersionPolicy("all"))

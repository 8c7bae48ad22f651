"""Model server config files in protobuf text format: TF Serving's `models.config` and Triton's
`config.pbtxt`. Both say which versions a server keeps loaded, which `retire` turns into protection.

Only what `retire` needs is read: for TF Serving, each `config { name base_path model_platform
model_version_policy version_labels }`; for Triton, `version_policy`. The parser accepts the text
format's general syntax (comments, `:` optional before messages, `{}`/`<>`, repeated fields, lists in
`[...]`, adjacent strings, `,`/`;` separators) so real files with fields we ignore still parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retire.errors import InventoryError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)[fF]?)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<punct>[{}<>\[\]:,;])
    )""",
    re.VERBOSE,
)

Message = dict[str, list[Any]]


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


class _Parser:
    def __init__(self, text: str, where: str) -> None:
        self.where = where
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                line = text.count("\n", 0, pos) + 1
                raise InventoryError(f"{where}:{line}: cannot parse near {text[pos : pos + 20].strip()!r}")
            kind = m.lastgroup or ""
            if kind != "comment":
                self.tokens.append((kind, m.group(kind), text.count("\n", 0, m.start(kind)) + 1))
            pos = m.end()
        self.i = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _fail(self, expected: str) -> InventoryError:
        tok = self._peek()
        got = f"{tok[1]!r} on line {tok[2]}" if tok else "the end of the file"
        return InventoryError(f"{self.where}: expected {expected}, found {got}")

    def _take(self, value: str | None = None, kind: str | None = None) -> str:
        tok = self._peek()
        if tok is None or (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind):
            raise self._fail(value or kind or "a token")
        self.i += 1
        return tok[1]

    def message(self, close: str | None = None) -> Message:
        out: Message = {}
        while True:
            tok = self._peek()
            if tok is None:
                if close:
                    raise self._fail(f"'{close}'")
                return out
            if close and tok[1] == close:
                self.i += 1
                return out
            name = self._take(kind="ident")
            colon = self._peek() is not None and self._peek()[1] == ":"  # type: ignore[index]
            if colon:
                self.i += 1
            out.setdefault(name, []).extend(self._values())
            if self._peek() is not None and self._peek()[1] in (",", ";"):  # type: ignore[index]
                self.i += 1

    def _values(self) -> list[Any]:
        tok = self._peek()
        if tok is None:
            raise self._fail("a value")
        if tok[1] == "[":
            self.i += 1
            items: list[Any] = []
            while self._peek() is not None and self._peek()[1] != "]":  # type: ignore[index]
                items.extend(self._values())
                if self._peek() is not None and self._peek()[1] == ",":  # type: ignore[index]
                    self.i += 1
            self._take("]")
            return items
        if tok[1] in ("{", "<"):
            self.i += 1
            return [self.message("}" if tok[1] == "{" else ">")]
        return [self._scalar()]

    def _scalar(self) -> Any:
        kind, value, _ = self._peek() or ("", "", 0)
        if kind == "string":
            parts = []
            while self._peek() is not None and self._peek()[0] == "string":  # type: ignore[index]
                parts.append(_unescape(self._take()))
            return "".join(parts)
        if kind == "number":
            self.i += 1
            text = value.rstrip("fF")
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "ident":
            self.i += 1
            return {"true": True, "false": False}.get(value, value)
        raise self._fail("a value")


def _unescape(literal: str) -> str:
    body = literal[1:-1]
    if "\\" not in body:
        return body
    try:
        return body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as e:
        raise ValueError(f"bad escape in string {literal[:40]!r}: {e.reason}") from None


def parse_text_proto(text: str, where: str = "config") -> Message:
    try:
        return _Parser(text, where).message()
    except ValueError as e:
        raise InventoryError(f"{where}: {e}") from None


def _one(msg: Message, key: str, default: Any = None) -> Any:
    values = msg.get(key) or []
    return values[-1] if values else default  # the text format lets the last value win


# Typed reads: a value of the wrong type (`base_path: 5`, `versions: "abc"`) is the file's
# error, named with the field, never a traceback.
class _TypeProblem(Exception):
    pass


def _message(value: Any, field_name: str) -> Message:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _TypeProblem(f"{field_name} must be a message {{ ... }}")
    return value


def _text(value: Any, field_name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _TypeProblem(f"{field_name} must be a string in quotes")
    return value


def _int(value: Any, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _TypeProblem(f"{field_name} must be a whole number")
    if not -(2**63) <= value < 2**63:
        raise _TypeProblem(f"{field_name} must fit in 64 bits")
    return value


def _policy(msg: Any) -> VersionPolicy:
    msg = _message(msg, "version policy")
    if not msg:
        return VersionPolicy()
    if "specific" in msg:
        specific = _message(_one(msg, "specific"), "specific")
        versions = tuple(_int(v, "specific versions") for v in specific.get("versions", []))
        return VersionPolicy("specific", versions=versions)
    if "all" in msg:
        return VersionPolicy("all")
    latest = _message(_one(msg, "latest"), "latest")
    return VersionPolicy("latest", num_versions=max(_int(_one(latest, "num_versions", 1), "num_versions"), 1))


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise InventoryError(f"cannot read {what}{path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise InventoryError(f"{what}{path} is not UTF-8 text") from None


def read_tfserving_config(path: Path) -> list[ModelEntry]:
    """`model_config_list { config { ... } ... }` from a TF Serving --model_config_file."""
    root = parse_text_proto(_read(path, "--model-config "), str(path))
    try:
        return _tfserving_entries(root, path)
    except _TypeProblem as e:
        raise InventoryError(f"{path}: {e}") from None


def _tfserving_entries(root: Message, path: Path) -> list[ModelEntry]:
    configs = _message(_one(root, "model_config_list"), "model_config_list").get("config", [])
    if not configs:
        raise InventoryError(f"{path}: no model_config_list {{ config {{ ... }} }} entries found")
    entries = []
    for c in configs:
        c = _message(c, "config")
        name, base = _text(_one(c, "name"), "name"), _text(_one(c, "base_path"), "base_path")
        if not name or not base:
            raise InventoryError(f"{path}: every config needs a name and a base_path")
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
        labels = {}
        for e in c.get("version_labels", []):
            e = _message(e, "version_labels")
            key = _one(e, "key")
            if isinstance(key, (dict, list)) or key is None:
                raise _TypeProblem("a version label's key must be a string")
            labels[str(key)] = _int(_one(e, "value"), f"version label {str(key)!r}")
        platform = _text(_one(c, "model_platform"), "model_platform")
        policy = _policy(_one(c, "model_version_policy"))
        entries.append(ModelEntry(name, base_path, platform, policy, labels))
    return entries


def read_triton_policy(path: Path) -> VersionPolicy:
    """The `version_policy` of a Triton model's config.pbtxt (default: latest 1)."""
    root = parse_text_proto(_read(path, ""), str(path))
    try:
        return _policy(_one(root, "version_policy"))
    except _TypeProblem as e:
        raise InventoryError(f"{path}: {e}") from None

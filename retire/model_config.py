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
    return body.encode("latin-1", "backslashreplace").decode("unicode_escape") if "\\" in body else body


def parse_text_proto(text: str, where: str = "config") -> Message:
    return _Parser(text, where).message()


def _one(msg: Message, key: str, default: Any = None) -> Any:
    values = msg.get(key) or []
    return values[-1] if values else default  # the text format lets the last value win


def _policy(msg: Message | None) -> VersionPolicy:
    if not msg:
        return VersionPolicy()
    if "specific" in msg:
        versions = tuple(int(v) for v in (_one(msg, "specific") or {}).get("versions", []))
        return VersionPolicy("specific", versions=versions)
    if "all" in msg:
        return VersionPolicy("all")
    latest = _one(msg, "latest") or {}
    return VersionPolicy("latest", num_versions=max(int(_one(latest, "num_versions", 1)), 1))


def read_tfserving_config(path: Path) -> list[ModelEntry]:
    """`model_config_list { config { ... } ... }` from a TF Serving --model_config_file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InventoryError(f"cannot read --model-config {path}: {e.strerror}") from None
    root = parse_text_proto(text, str(path))
    configs = (_one(root, "model_config_list") or {}).get("config", [])
    if not configs:
        raise InventoryError(f"{path}: no model_config_list {{ config {{ ... }} }} entries found")
    entries = []
    for c in configs:
        name, base = _one(c, "name"), _one(c, "base_path")
        if not name or not base:
            raise InventoryError(f"{path}: every config needs a name and a base_path")
        if "://" in base:
            raise InventoryError(
                f"{path}: model {name!r} has base_path {base}; retire reads local directories only "
                "(mount the bucket, or point --model-dir at a synced copy)"
            )
        base_path = Path(base)
        if not base_path.is_absolute():  # relative to the config file, as documented in README
            base_path = path.parent / base_path
        labels = {str(_one(e, "key")): int(_one(e, "value")) for e in c.get("version_labels", [])}
        entries.append(
            ModelEntry(
                name, base_path, _one(c, "model_platform"), _policy(_one(c, "model_version_policy")), labels
            )
        )
    return entries


def read_triton_policy(path: Path) -> VersionPolicy:
    """The `version_policy` of a Triton model's config.pbtxt (default: latest 1)."""
    try:
        root = parse_text_proto(path.read_text(encoding="utf-8"), str(path))
    except OSError as e:
        raise InventoryError(f"cannot read {path}: {e.strerror}") from None
    return _policy(_one(root, "version_policy"))

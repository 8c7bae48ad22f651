"""PromQL as text: label matchers and selectors parsed from what users type, and written back.

User-supplied label values never reach PromQL as raw text: selectors are parsed into matchers and
re-rendered with escaping (`quote`), so a value containing `"` or `}` cannot change the query's
meaning. Regular expressions are RE2 (PromQL's); `python_regex` reads them as Prometheus does, so
that retire's own checks (which versions a --selector reaches) agree with the server's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from retire.errors import ConfigError

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True)
class Matcher:
    """One label matcher: the label, its operator (`=`, `!=`, `=~`, `!~`) and the value."""

    name: str
    op: str
    value: str

    def render(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"

    def matches(self, value: str) -> bool:
        """Whether a label value passes, as Prometheus decides it (regexes fully anchored)."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = python_regex(self.value).fullmatch(value) is not None
        return hit if self.op == "=~" else not hit


# RE2's ASCII classes (https://github.com/google/re2/wiki/Syntax), as Python class contents.
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7F",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
# RE2 syntax Python's re has no (or another) meaning for: refused, since a selector that retire
# reads differently from Prometheus could hide the very series its checks look for.
_UNREADABLE = {
    "\\p": "Unicode classes (\\p{...})",
    "\\P": "Unicode classes (\\P{...})",
    "\\Q": "quoted text (\\Q...\\E)",
    "\\C": "any byte (\\C)",
}


_FLAGS = re.compile(r"\(\?([a-zA-Z-]*)[):]")
_FLAGS_ANYWHERE = re.compile(r"(?<!\\)\(\?([a-zA-Z-]*)[):]")
_WORD = "0-9A-Za-z_"
_SPACE = "\\t\\n\\f\\r "
# RE2's Perl classes are ASCII; Python's str classes are not.
_ESCAPES = {
    "\\z": "\\Z",
    "\\d": "[0-9]",
    "\\D": "[^0-9]",
    "\\w": f"[{_WORD}]",
    "\\W": f"[^{_WORD}]",
    "\\s": f"[{_SPACE}]",
    "\\S": f"[^{_SPACE}]",
    "\\b": f"(?:(?<=[{_WORD}])(?![{_WORD}])|(?<![{_WORD}])(?=[{_WORD}]))",
    "\\B": f"(?:(?<=[{_WORD}])(?=[{_WORD}])|(?<![{_WORD}])(?![{_WORD}]))",
}
_CLASS_ESCAPES = {"\\d": "0-9", "\\w": _WORD, "\\s": _SPACE}
_NO_CLASS_ESCAPES = ("\\D", "\\W", "\\S", "\\b", "\\B")


@cache
def python_regex(re2: str) -> re.Pattern[str]:
    """An RE2 regular expression (PromQL's) as a Python pattern that matches the same label values:
    POSIX classes (`[[:alpha:]]`) spelt out, `\\z` and `$` as `\\Z`, `\\x{...}`, and RE2's ASCII
    `\\d\\w\\s\\b` as classes (case folding stays Unicode, as RE2's). Syntax that cannot be carried
    over raises re.error, which names it."""
    out: list[str] = []
    i, in_class, class_start = 0, False, 0
    multiline = any("m" in f.split("-")[0] for f in _FLAGS_ANYWHERE.findall(re2))
    while i < len(re2):
        ch = re2[i]
        if ch == "\\":
            pair = re2[i : i + 2]
            if pair in _UNREADABLE:
                raise re.error(f"RE2's {_UNREADABLE[pair]} cannot be read the way Prometheus reads them")
            if pair == "\\x" and re2.startswith("{", i + 2):  # \x{10FFFF}
                end = re2.find("}", i + 3)
                code = int(re2[i + 3 : end], 16) if end > 0 and re2[i + 3 : end].isalnum() else -1
                if not 0 <= code <= 0x10FFFF:
                    raise re.error(f"bad RE2 escape {re2[i : end + 1 if end > 0 else i + 3]}")
                out.append(f"\\U{code:08x}")
                i = end + 1
                continue
            out.append((_CLASS_ESCAPES if in_class else _ESCAPES).get(pair, pair))
            if in_class and pair in _NO_CLASS_ESCAPES:
                raise re.error(f"{pair} inside brackets: spell the characters out")
            i += 2
            continue
        if in_class:
            if ch == "[" and re2.startswith("[:", i):
                end = re2.find(":]", i + 2)
                name = re2[i + 2 : end] if end > 0 else ""
                if name not in _POSIX_CLASSES:
                    raise re.error(f"unknown or negated POSIX class [:{name}:] (spell the characters out)")
                out.append(_POSIX_CLASSES[name])
                i = end + 2
                continue
            if ch == "[":
                out.append("\\[")  # a literal [ inside a class, as RE2 reads it
                i += 1
                continue
            if ch == "]" and i > class_start:
                in_class = False
        elif ch == "[":
            in_class = True
            class_start = i + 1 + (re2.startswith("^", i + 1))  # a ] first in the class is literal
        elif ch == "(" and (flags := _FLAGS.match(re2, i)) and "U" in flags[1]:
            raise re.error("RE2's ungreedy flag (?U) cannot be read the way Prometheus reads it")
        elif ch == "$" and not multiline:
            out.append("\\Z")  # RE2's $ is the end of the text, not also before a final newline
            i += 1
            continue
        elif ch == "{" and re2.startswith("{,", i):
            raise re.error(
                "a repeat with no lower bound ({,n}) is text to RE2 and a repeat to Python: write {0,n}"
            )
        out.append(ch)
        i += 1
    # Not re.ASCII: RE2 folds case over Unicode ((?i)); its \\d \\w \\s \\b are ASCII, spelt out above.
    return re.compile("".join(out), re.DOTALL)


@dataclass(frozen=True)
class Selector:
    """A metric name (optional) and label matchers, parsed from user text."""

    metric: str
    matchers: tuple[Matcher, ...]

    def render(self) -> str:
        inner = ",".join(m.render() for m in self.matchers)
        return f"{self.metric}{{{inner}}}" if self.metric else f"{{{inner}}}"


def quote(value: str) -> str:
    """A PromQL double-quoted string literal (Go escaping rules) for any text."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


def unquote(literal: str, where: str) -> str:
    """The text of a PromQL string literal: "..." and '...' with Go escapes, `...` raw."""
    quote_char, body = literal[0], literal[1:-1]
    if quote_char == "`":
        return body
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1] if i + 1 < len(body) else ""
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
            continue
        width = {"x": 2, "u": 4, "U": 8}.get(esc)
        digits = body[i + 2 : i + 2 + width] if width else body[i + 1 : i + 4]
        try:
            out.append(chr(int(digits, 16 if width else 8)))
        except ValueError:
            raise ConfigError(f"{where}: bad escape \\{esc} in {literal}") from None
        i += 2 + width if width else 4
    return "".join(out)


_TOKEN_RE = re.compile(
    r"""\s*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*
        (?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(?P<sep>,|$)""",
    re.VERBOSE | re.DOTALL,
)


def parse_matchers(text: str, where: str = "--selector") -> tuple[Matcher, ...]:
    """`job="tfs",namespace=~"ml|ai"` (braces optional) -> matchers; errors name the bad part."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    matchers: list[Matcher] = []
    pos = 0
    while pos < len(body) and body[pos:].strip():
        m = _TOKEN_RE.match(body, pos)
        if m is None:
            raise ConfigError(
                f"{where}: cannot parse {body[pos:].strip()!r}; "
                """expected label matchers such as job="tfs",namespace="ml\""""
            )
        matchers.append(Matcher(m["name"], m["op"], unquote(m["value"], where)))
        pos = m.end()
    for matcher in matchers:
        if matcher.op in ("=~", "!~"):
            try:
                python_regex(matcher.value)
            except re.error as e:
                raise ConfigError(f"{where}: bad regular expression {matcher.value!r}: {e}") from e
    return tuple(matchers)


def parse_selector(text: str, where: str) -> Selector:
    """`up{job="tfs"}`, `up` or `{job="tfs"}`: a plain series selector, nothing more."""
    text = text.strip()
    m = METRIC_NAME_RE.match(text)
    metric = m.group(0) if m else ""
    rest = text[len(metric) :].strip()
    if rest and not (rest.startswith("{") and rest.endswith("}")):
        raise ConfigError(f'{where}: {text!r} is not a series selector such as up{{job="tfs"}}')
    matchers = parse_matchers(rest, where) if rest else ()
    if not metric and not matchers:
        raise ConfigError(f"{where}: the selector is empty")
    return Selector(metric, matchers)

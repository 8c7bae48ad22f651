"""Text from outside (labels, directory names, server messages) made safe to show a reader.

Control characters (C0, DEL, C1), Unicode line and paragraph separators and bidirectional
overrides can move a terminal's cursor, recolour it, start a new line in a log or a mail header,
or reorder what a reader sees. They are shown as Python-style escapes (`\\x1b`, `\\n`, `\\u202e`)
instead, so the reader sees that they are there without their effect. Everything else, including
non-ASCII letters, is kept.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c in _SHORT:
        return _SHORT[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def printable(text: str) -> str:
    """`text` with every control or direction-changing character escaped: one visible line."""
    return _UNSAFE.sub(_escape, text)


def has_unsafe(text: str) -> bool:
    return _UNSAFE.search(text) is not None


def quoted(text: str, limit: int = 80) -> str:
    """`text` in single quotes for a message, escaped once (repr would double the backslashes)."""
    return "'" + printable(text[:limit]) + ("...'" if len(text) > limit else "'")

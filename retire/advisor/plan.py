"""A plan: the moves the advice leads to, and its JSON (what `retire plan --format json` writes and
`retire offload --plan` reads back).

Pure data, like the report it comes from, so that formats can render it (formats/text.py and
formats/json.py) and actions carry it out without formats importing actions. Making one
(retire/actions/plan.py) checks the filesystem; here nothing does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from retire.advisor.report import iso
from retire.errors import OffloadError


@dataclass(frozen=True)
class Move:
    model: str
    version: str
    src: str
    dst: str
    size_bytes: int


_MOVE_FIELDS = {"model": str, "version": str, "src": str, "dst": str, "size_bytes": int}


@dataclass(frozen=True)
class Plan:
    archive: str
    moves: tuple[Move, ...]
    evaluated_at: float

    def to_json(self) -> str:
        doc = {
            "archive": self.archive,
            "evaluated_at": iso(self.evaluated_at),  # RFC 3339, as in the report
            "moves": [asdict(m) for m in self.moves],
        }
        return json.dumps(doc, indent=2) + "\n"

    @staticmethod
    def from_json(text: str, where: str) -> Plan:
        """Only the shape is checked here; `checked_moves` compares every move with a fresh scan."""
        bad = f"{where} is not a plan written by `retire plan --format json`"
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as e:  # RecursionError: nesting deeper than any plan
            raise OffloadError(f"{bad} ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("moves"), list):
            raise OffloadError(f"{bad} (no list of moves)")
        when = _instant(doc.get("evaluated_at"))
        if not isinstance(doc.get("archive"), str) or when is None:
            raise OffloadError(f"{bad} (no archive or evaluated_at)")
        moves = []
        for n, m in enumerate(doc["moves"]):
            if (
                not isinstance(m, dict)
                or set(m) != set(_MOVE_FIELDS)
                or not all(exactly(m[k], t) for k, t in _MOVE_FIELDS.items())
            ):
                raise OffloadError(f"{bad} (moves[{n}] is not {{model, version, src, dst, size_bytes}})")
            moves.append(Move(**m))
        return Plan(doc["archive"], tuple(moves), when)


def exactly(value: object, kind: type) -> bool:
    """`value` is a `kind` read from JSON, a bool not counting as an int (True is not 1 byte)."""
    return isinstance(value, kind) and not isinstance(value, bool)


def _instant(value: object) -> float | None:
    """`evaluated_at` as written (RFC 3339), or Unix seconds from plans of earlier versions."""
    from datetime import datetime

    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

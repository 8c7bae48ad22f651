"""Records kept as columns, so a million versions reach the join as arrays, not a million objects.

The sources (the disk scan, the evidence) hand their records over as `Columns`: code that wants
records (offload, the CLI, tests) iterates them as before, each built on access; the join reads
whole columns with `columns_of`, which also accepts a plain sequence of records (slower, for
hand-built inputs).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from dataclasses import MISSING, fields
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class Columns(Sequence[T], Generic[T]):
    """A sequence of `record`s (a dataclass) stored as one list or array per field."""

    __slots__ = ("_n", "columns", "record")

    def __init__(self, record: type[T], columns: dict[str, Any], n: int | None = None) -> None:
        self.record = record
        self.columns: dict[str, Any] = {}
        lengths = {len(c) for c in columns.values()}
        self._n = n if n is not None else (lengths.pop() if lengths else 0)
        if len(lengths) > 1 or (lengths and self._n not in lengths):
            raise ValueError(f"columns of {record.__name__} differ in length")
        for f in fields(record):  # type: ignore[arg-type]
            if f.name in columns:
                self.columns[f.name] = columns[f.name]
            elif f.default is not MISSING:
                self.columns[f.name] = [f.default] * self._n
            else:
                raise ValueError(f"column {f.name!r} of {record.__name__} is missing")

    @classmethod
    def of(cls, record: type[T], items: Sequence[T], coded: tuple[str, ...] = ()) -> Columns[T]:
        """Records as columns (one pass over them); the `coded` fields as categorical codes."""
        names = tuple(f.name for f in fields(record))  # type: ignore[arg-type]
        columns = columns_of(items, names)
        return cls(record, {**columns, **{c: categorical(columns[c]) for c in coded}}, len(items))

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> Columns[T]: ...
    def __getitem__(self, i: int | slice) -> T | Columns[T]:
        if isinstance(i, slice):
            return Columns(self.record, {k: c[i] for k, c in self.columns.items()})
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return self.record(**{k: _plain(c[i]) for k, c in self.columns.items()})

    def __iter__(self) -> Iterator[T]:
        names = tuple(self.columns)
        plain = [c.tolist() if hasattr(c, "tolist") else c for c in self.columns.values()]
        for values in zip(*plain, strict=True):
            yield self.record(**dict(zip(names, values, strict=True)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Sequence[T]) -> Columns[T]:
        theirs = columns_of(other, tuple(self.columns))
        return Columns(
            self.record, {k: [*_plain_list(c), *_plain_list(theirs[k])] for k, c in self.columns.items()}
        )

    def __radd__(self, other: Sequence[T]) -> Columns[T]:
        return Columns.of(self.record, list(other)) + self

    def __repr__(self) -> str:
        return f"Columns({self.record.__name__}, {self._n} rows)"


def columns_of(items: Sequence[Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields of a sequence of records, as columns: taken as they are from `Columns`,
    else extracted in one pass."""
    if isinstance(items, Columns):
        return {n: items.columns[n] for n in names}
    rows = list(map(operator.attrgetter(*names), items))
    if len(names) == 1:
        return {names[0]: rows}
    if not rows:
        return {n: [] for n in names}
    return {n: list(col) for n, col in zip(names, zip(*rows, strict=True), strict=True)}


def factorize(*parts: Any) -> tuple[Any, Any]:
    """Number the values of several columns together, in the order first seen: (one code per
    value, all parts end to end; the distinct values). A part that is a pandas Categorical (models
    as categorical codes) is numbered from its codes, without reading its values one by one; its
    categories should be in the order first seen, as `categorical` builds them."""
    import numpy as np
    import pandas as pd

    codes, names = [], []
    for part in parts:
        if isinstance(part, pd.Categorical):
            codes.append(np.asarray(part.codes, dtype=np.int64))
            names.append(np.asarray(part.categories, dtype=object))
        else:
            c, u = pd.factorize(np.asarray(part, dtype=object))
            codes.append(c.astype(np.int64))
            names.append(np.asarray(u, dtype=object))
    if not parts:
        return np.zeros(0, dtype=np.int64), np.array([], dtype=object)
    remap, uniques = pd.factorize(np.concatenate(names))
    offsets = np.cumsum([0, *(len(n) for n in names[:-1])])
    out = np.concatenate([remap[o + c] for o, c in zip(offsets, codes, strict=True)])
    return out, np.asarray(uniques, dtype=object)


def pairs(first: Any, second: Any, n_first: int, n_second: int) -> tuple[Any, Any]:
    """Number the distinct (first, second) code pairs in order (by first, then second): (each
    distinct pair as first * width + second, width = max(n_second, 1); each input pair's number).
    Without a sort when the grid of possible pairs is not much larger than the input."""
    import numpy as np

    width = max(n_second, 1)
    keys = first.astype(np.int64) * width + second
    missing = len(keys) and (first.min() < 0 or second.min() < 0)  # a value pandas reads as missing
    if not missing and n_first * width <= 4 * len(keys) + 1024:
        present = np.zeros(n_first * width, dtype=bool)
        present[keys] = True
        number = np.cumsum(present) - 1
        return np.flatnonzero(present), number[keys]
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, inverse.reshape(-1)


def categorical(values: Any) -> Any:
    """Text as a pandas Categorical whose categories are in the order first seen."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    return pd.Categorical.from_codes(codes, pd.Index(uniques, dtype=object))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, tuple)) else value


def _plain_list(column: Any) -> list[Any]:
    return list(column.tolist() if hasattr(column, "tolist") else column)

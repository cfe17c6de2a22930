"""A categorical column kept as dictionary codes: what an Arrow string column already is.

Why: counting a batch of categories through Python strings (one ``str`` object per
row, then ``Counter`` hashing each) cost ~0.3 us per event on the batched Arrow path,
more than decoding it. Arrow hands the column over as a small dictionary and one
integer code per row, so the engine keeps exactly that: routing rows to panes is a
numpy take of the codes, merging messages remaps dictionaries, and a pane's counts
are one ``np.bincount``. Anything else that reads the column (quality contracts, the
label join) sees an ordinary sequence of ``str | None``, built once on first use.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

#: Dictionaries up to this size find each category's first row with one vector compare per entry.
_SMALL_DICTIONARY = 32


class CodedColumn(Sequence[str | None]):
    """Row ``i`` is ``values[codes[i]]``, or None where ``codes[i] == -1`` (or the entry itself is None).

    ``values`` may hold entries no row uses and, for Arrow dictionaries, repeats; counts
    add up per distinct value either way.
    """

    __slots__ = ("_rows", "codes", "values")

    def __init__(self, codes: np.ndarray, values: Sequence[str | None]) -> None:
        self.codes = np.asarray(codes, dtype=np.int32)
        self.values = list(values)
        self._rows: list[str | None] | None = None

    @classmethod
    def constant(cls, value: str | None, n: int) -> CodedColumn:
        """``n`` rows of one value (a model version, a missing feature)."""
        if value is None:
            return cls(np.full(n, -1, dtype=np.int32), [])
        return cls(np.zeros(n, dtype=np.int32), [value])

    def __len__(self) -> int:
        return int(self.codes.size)

    @overload
    def __getitem__(self, i: int) -> str | None: ...

    @overload
    def __getitem__(self, i: slice) -> list[str | None]: ...

    def __getitem__(self, i: int | slice) -> str | None | list[str | None]:
        if self._rows is not None:
            return self._rows[i]
        if isinstance(i, slice):
            return self.take(i).tolist()
        code = int(self.codes[i])
        return self.values[code] if code >= 0 else None

    def __iter__(self) -> Iterator[str | None]:
        return iter(self.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CodedColumn | list):
            return self.tolist() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CodedColumn({len(self)} rows, {len(self.values)} values)"

    def tolist(self) -> list[str | None]:
        """The rows as Python objects (computed once: the values are shared, not copied)."""
        if self._rows is None:
            table = np.empty(len(self.values) + 1, dtype=object)
            table[:-1] = self.values
            table[-1] = None  # code -1
            self._rows = table[self.codes].tolist()
        return self._rows

    def count(self, value: Any) -> int:
        match = [j for j, v in enumerate(self.values) if v == value]
        n = int(np.isin(self.codes, match).sum()) if match else 0
        return n + int((self.codes < 0).sum()) if value is None else n

    def single(self) -> tuple[bool, str | None]:
        """(True, value) when every row holds the same value (None included), else (False, None)."""
        if not self.codes.size:
            return False, None
        first = int(self.codes[0])
        if bool(np.all(self.codes == first)):
            return True, self.values[first] if first >= 0 else None
        return False, None

    def take(self, idx: np.ndarray | slice) -> CodedColumn:
        return CodedColumn(self.codes[idx], self.values)

    def tally(self) -> tuple[Counter[str], int]:
        """Counts per value in order of first appearance (as ``Counter(rows)`` keeps them) and the missing rows."""
        codes = self.codes
        k = len(self.values)
        counts = np.bincount(codes + 1, minlength=k + 1)  # slot 0: code -1
        missing = int(counts[0])
        used = np.flatnonzero(counts[1:])
        if used.size > 1:
            if used.size <= _SMALL_DICTIONARY:
                first = np.array([int(np.argmax(codes == c)) for c in used.tolist()])
            else:
                uniq, where = np.unique(codes, return_index=True)
                first = where[np.searchsorted(uniq, used)]
            used = used[np.argsort(first, kind="stable")]
        tally: Counter[str] = Counter()
        for c, got in zip(used.tolist(), counts[used + 1].tolist(), strict=True):
            value = self.values[c]
            if value is None:
                missing += got
            else:
                tally[value] += got
        return tally, missing

    @staticmethod
    def concat(parts: Sequence[CodedColumn]) -> CodedColumn:
        """One column of the rows of `parts` in order; dictionaries are united in order of first listing."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0].values
        if all(p.values == first for p in parts):  # the usual case: every message lists the same categories
            return CodedColumn(np.concatenate([p.codes for p in parts]), first)
        index: dict[str | None, int] = {}
        pieces = []
        for p in parts:
            remap = np.array([index.setdefault(v, len(index)) for v in p.values] + [-1], dtype=np.int32)
            pieces.append(remap[p.codes])  # code -1 takes the last entry: -1
        return CodedColumn(np.concatenate(pieces), list(index))


def concat_categories(parts: Sequence[Sequence[str | None]]) -> Sequence[str | None]:
    """Columns of several batches in order: coded when all are, else a list."""
    if all(isinstance(p, CodedColumn) for p in parts):
        return CodedColumn.concat(parts)  # type: ignore[arg-type]
    out: list[str | None] = []
    for p in parts:
        out.extend(p)
    return out

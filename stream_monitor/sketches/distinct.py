"""Distinct-count estimate per feature per window: Apache DataSketches HyperLogLog.

Why it is worth ~0.5 KB per feature: a numeric feature whose distinct count collapses
(a stuck sensor, a default value filled in upstream) or a categorical feature whose
cardinality explodes (ids leaking into a category) is drift that PSI on ten
quantile bins can miss.
"""
from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import numpy as np
from datasketches import HLL_4, hll_sketch, hll_union

from stream_monitor.sketches._hll_vector import registers, sketch_from_registers

#: log2 of the number of registers. 10 -> 1024 registers, ~0.55 KB serialised,
#: relative standard error 1.04/sqrt(1024) = 3.3% (about 10% at 3 sigma): enough to
#: see a cardinality collapse or explosion, small next to the quantile sketches.
DEFAULT_LG_K = 10

#: A numeric batch with at most this many distinct values is fed value by value
#: (cheap at that size, and DataSketches' exact small-cardinality modes are kept).
FEW_DISTINCT = 256


class DistinctCount:
    """HyperLogLog (HLL_4 registers): bounded memory, mergeable, serialisable.

    Merging takes the register-wise maximum, so the merged registers are exactly
    those of one sketch over the whole stream; the *estimate* can still differ a
    little because a merged sketch uses the composite estimator instead of HIP.
    Both stay within :meth:`relative_error`.
    """

    def __init__(self, lg_k: int = DEFAULT_LG_K) -> None:
        if not 4 <= lg_k <= 21:
            raise ValueError(f"lg_k must be between 4 and 21, got {lg_k}")
        self._sketch = hll_sketch(lg_k, HLL_4)
        self._pending: np.ndarray | None = None

    @property
    def lg_k(self) -> int:
        return int(self._sketch.lg_config_k)

    def update(self, values: np.ndarray | Iterable[str]) -> None:
        """Add a numeric column (finite values) or strings; the same value always hashes the same.

        Only the first occurrence of each value is fed to the sketch: a repeat never
        changes an HLL's state, so the result is the same as feeding every value.
        A numeric column with many distinct values takes the vector path
        (:func:`update_sorted`).
        """
        if isinstance(values, np.ndarray):
            self.update_sorted(np.sort(values))
            return
        update = self._sketch.update
        for v in dict.fromkeys(values):
            update(v)

    def update_sorted(self, values: np.ndarray) -> None:
        """Add an ascending column of finite values.

        Up to :data:`FEW_DISTINCT` distinct values go to DataSketches one by one, so a
        low-cardinality feature keeps DataSketches' exact small-cardinality modes. Beyond
        that, their registers are computed in numpy (:mod:`._hll_vector`) and folded in
        with one union when the estimate or the bytes are next needed: the registers are
        exactly those of feeding every value, and the estimate is the composite one, as
        after any merge (within :meth:`relative_error`). ``NumericSketch`` does the same
        for all features of a batch at once (:mod:`.numeric_block`).
        """
        if not values.size:
            return
        new = np.empty(values.size, dtype=bool)
        new[0] = True
        np.not_equal(values[1:], values[:-1], out=new[1:])
        distinct = values[new]
        if distinct.size <= FEW_DISTINCT:
            self.add_values(distinct)
        else:
            self.add_registers(registers(distinct, self.lg_k))

    def add_values(self, values: np.ndarray) -> None:
        """Feed DataSketches one value at a time (for a few distinct values)."""
        update = self._sketch.update
        for v in values.tolist():
            update(v)

    def add_registers(self, regs: np.ndarray) -> None:
        """Fold in HLL registers computed in numpy (register-wise maximum; settled lazily)."""
        if self._pending is None:
            self._pending = regs.copy()
        else:
            np.maximum(self._pending, regs, out=self._pending)

    def _settle(self) -> None:
        """Fold registers computed in numpy into the DataSketches sketch (a union: registers merge by max)."""
        if self._pending is None:
            return
        union = hll_union(self.lg_k)
        union.update(self._sketch)
        union.update(sketch_from_registers(self._pending, self.lg_k))
        self._pending = None
        self._sketch = union.get_result(HLL_4)

    def merge(self, other: DistinctCount) -> None:
        other._settle()
        if other._sketch.is_empty():
            return
        self._settle()
        union = hll_union(max(self.lg_k, other.lg_k))
        union.update(self._sketch)
        union.update(other._sketch)
        self._sketch = union.get_result(HLL_4)

    @property
    def estimate(self) -> float:
        self._settle()
        return float(self._sketch.get_estimate())

    def bounds(self, std_devs: int = 2) -> tuple[float, float]:
        self._settle()
        return float(self._sketch.get_lower_bound(std_devs)), float(self._sketch.get_upper_bound(std_devs))

    def relative_error(self, std_devs: int = 3) -> float:
        """A priori relative error bound at `std_devs` standard deviations (as DataSketches documents it)."""
        return abs(float(hll_sketch.get_rel_err(True, True, self.lg_k, std_devs)))

    def serialize(self) -> bytes:
        self._settle()
        return bytes(self._sketch.serialize_compact())

    @classmethod
    def deserialize(cls, data: bytes) -> DistinctCount:
        obj = cls.__new__(cls)
        obj._sketch = hll_sketch.deserialize(data)
        obj._pending = None
        return obj

    to_bytes = serialize
    from_bytes = deserialize

    def to_dict(self) -> dict[str, Any]:
        return {"hll": base64.b64encode(self.serialize()).decode()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistinctCount:
        return cls.deserialize(base64.b64decode(data["hll"]))

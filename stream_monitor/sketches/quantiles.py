"""Quantiles of a numeric stream: Apache DataSketches KLL (doubles), wrapped for numpy columns."""
from __future__ import annotations

import base64
from typing import Any

import numpy as np
from datasketches import kll_doubles_sketch

#: KLL's accuracy/size knob. k=200 keeps ~5 KB per feature per window with a
#: normalised rank error of about 1.3% (99% confidence, single quantile).
DEFAULT_K = 200


class QuantileSketch:
    """KLL quantile sketch: bounded memory, mergeable, vector updates."""

    def __init__(self, k: int = DEFAULT_K) -> None:
        if not 8 <= k <= 65535:
            raise ValueError(f"k must be between 8 and 65535, got {k}")
        self._sketch = kll_doubles_sketch(k)

    @property
    def n(self) -> int:
        return int(self._sketch.n)

    @property
    def k(self) -> int:
        return int(self._sketch.k)

    def update(self, values: np.ndarray) -> None:
        """Add a column of finite values (callers drop NaN first: missing is counted elsewhere)."""
        if values.size:
            self._sketch.update(np.ascontiguousarray(values, dtype=np.float64))

    def merge(self, other: QuantileSketch) -> None:
        self._sketch.merge(other._sketch)

    def quantiles(self, ranks: np.ndarray | list[float]) -> np.ndarray:
        return np.asarray(self._sketch.get_quantiles(list(map(float, ranks))), dtype=np.float64)

    def cdf(self, points: np.ndarray) -> np.ndarray:
        """P(X <= x) at each point (inclusive), from the sketch."""
        if self._sketch.is_empty():
            return np.full(len(points), np.nan)
        return np.asarray(self._sketch.get_cdf(list(map(float, points)), True)[:-1], dtype=np.float64)

    def min(self) -> float:
        return float(self._sketch.get_min_value()) if self.n else float("nan")

    def max(self) -> float:
        return float(self._sketch.get_max_value()) if self.n else float("nan")

    def rank_error(self) -> float:
        """Documented single-quantile normalised rank error at this k (99% confidence)."""
        return float(self._sketch.normalized_rank_error(False))

    def support_points(self, count: int = 512) -> np.ndarray:
        """Evenly ranked quantiles: a compact set of points where the CDF changes."""
        if not self.n:
            return np.empty(0)
        return self.quantiles(np.linspace(0.0, 1.0, count))

    def serialize(self) -> bytes:
        return bytes(self._sketch.serialize())

    @classmethod
    def deserialize(cls, data: bytes) -> QuantileSketch:
        obj = cls.__new__(cls)
        obj._sketch = kll_doubles_sketch.deserialize(data)
        return obj

    def to_dict(self) -> dict[str, Any]:
        return {"kll": base64.b64encode(self.serialize()).decode()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantileSketch:
        return cls.deserialize(base64.b64decode(data["kll"]))

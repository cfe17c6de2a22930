"""Everything kept for one numeric feature in one window: quantiles, exact bins, moments, missing count."""
from __future__ import annotations

from typing import Any

import numpy as np

from stream_monitor.sketches.histogram import FixedEdgeHistogram
from stream_monitor.sketches.moments import Moments
from stream_monitor.sketches.quantiles import DEFAULT_K, QuantileSketch


class NumericSketch:
    """Bounded-memory summary of one numeric column.

    ``edges`` come from the reference profile; when the reference is not known yet
    (it is being built from the first windows of the stream) the histogram is
    absent and binned statistics fall back to the KLL sketch's PMF.
    """

    def __init__(self, edges: np.ndarray | None = None, k: int = DEFAULT_K) -> None:
        self.quantiles = QuantileSketch(k)
        self.histogram = FixedEdgeHistogram(edges) if edges is not None else None
        self.moments = Moments()
        self.missing = 0

    @property
    def n(self) -> int:
        """Non-missing values seen."""
        return self.moments.n

    def update(self, column: np.ndarray) -> None:
        """One vector call per window and batch; NaN marks a missing value."""
        present = column[~np.isnan(column)]
        self.missing += int(column.size - present.size)
        self.quantiles.update(present)
        self.moments.update(present)
        if self.histogram is not None:
            self.histogram.update(present)

    def merge(self, other: NumericSketch) -> None:
        self.quantiles.merge(other.quantiles)
        self.moments.merge(other.moments)
        self.missing += other.missing
        if self.histogram is not None and other.histogram is not None:
            self.histogram.merge(other.histogram)
        elif other.histogram is not None:
            self.histogram = FixedEdgeHistogram(other.histogram.edges)
            self.histogram.merge(other.histogram)

    def bin_counts(self, edges: np.ndarray) -> tuple[np.ndarray, str]:
        """Counts per bin for `edges`: exact if the histogram has these edges, else estimated from KLL."""
        if self.histogram is not None and np.array_equal(self.histogram.edges, edges):
            return self.histogram.counts.astype(np.float64), "exact"
        if self.n == 0:
            return np.zeros(len(edges) + 1), "sketch"
        cdf = self.quantiles.cdf(edges)
        pmf = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
        return np.clip(pmf, 0.0, None) * self.n, "sketch"

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantiles": self.quantiles.to_dict(),
            "histogram": self.histogram.to_dict() if self.histogram is not None else None,
            "moments": self.moments.to_dict(),
            "missing": self.missing,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericSketch:
        s = cls.__new__(cls)
        s.quantiles = QuantileSketch.from_dict(data["quantiles"])
        s.histogram = FixedEdgeHistogram.from_dict(data["histogram"]) if data.get("histogram") else None
        s.moments = Moments.from_dict(data["moments"])
        s.missing = int(data["missing"])
        return s

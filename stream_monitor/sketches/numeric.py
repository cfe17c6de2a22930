"""Everything kept for one numeric feature in one window: quantiles, exact bins, moments, missing, distinct.

Bytes held per feature per window (serialised, measured from 10^3 to 10^7 values,
``tests/sketches/test_sketch_memory.py``): KLL k=400 <= ~10 KB, t-digest k=150
<= ~3.8 KB, HLL lg_k=10 ~0.55 KB, histogram 16 bytes per bin, moments 40 bytes.
Bound: 16 KiB at the default sizes and up to 100 bins (docs/statistics.md).
"""
from __future__ import annotations

import struct
from typing import Any

import numpy as np

from stream_monitor.sketches import _codec
from stream_monitor.sketches.distinct import DEFAULT_LG_K, DistinctCount
from stream_monitor.sketches.histogram import FixedEdgeHistogram
from stream_monitor.sketches.moments import Moments
from stream_monitor.sketches.numeric_block import update_block
from stream_monitor.sketches.quantiles import DEFAULT_K, QuantileSketch
from stream_monitor.sketches.tdigest import DEFAULT_TDIGEST_K, TDigestSketch

#: The documented bound on serialised bytes per numeric feature per window.
NUMERIC_SKETCH_BYTES_BOUND = 16 * 1024


class NumericSketch:
    """Bounded-memory summary of one numeric column.

    ``edges`` come from the reference profile; when the reference is not known yet
    (it is being built from the first windows of the stream) the histogram is
    absent and binned statistics fall back to the KLL sketch's PMF.
    """

    def __init__(self, edges: np.ndarray | None = None, k: int = DEFAULT_K, *,
                 tdigest_k: int = DEFAULT_TDIGEST_K, distinct_lg_k: int = DEFAULT_LG_K) -> None:
        self.quantiles = QuantileSketch(k)
        self.tdigest: TDigestSketch | None = TDigestSketch(tdigest_k)
        self.distinct: DistinctCount | None = DistinctCount(distinct_lg_k)
        self.histogram = FixedEdgeHistogram(edges) if edges is not None else None
        self.moments = Moments()
        self.missing = 0

    @property
    def n(self) -> int:
        """Non-missing values seen."""
        return self.moments.n

    def update(self, column: np.ndarray) -> None:
        """One vector call per window and batch; NaN marks a missing value.

        The column is sorted once and every part takes the sorted values
        (:func:`~stream_monitor.sketches.numeric_block.update_block`, which also updates
        many features at once). Neither KLL's nor t-digest's guarantee depends on the
        order of arrival (``tests/stats``, ``tests/sketches`` check the same bounds).
        """
        update_block([self], np.asarray(column, dtype=np.float64).reshape(1, -1))

    def merge(self, other: NumericSketch) -> None:
        self.quantiles.merge(other.quantiles)
        self.moments.merge(other.moments)
        self.missing += other.missing
        # A part only one side has (a sketch restored from an older checkpoint) cannot
        # describe the union, so it is dropped rather than kept half-filled.
        self.tdigest = _merged(self.tdigest, other.tdigest)
        self.distinct = _merged(self.distinct, other.distinct)
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

    def part_sizes(self) -> dict[str, int]:
        """Serialised bytes of each part: what a window holds for this feature."""
        sizes = {"quantiles": len(self.quantiles.to_bytes()), "moments": len(self.moments.to_bytes()), "missing": 8}
        if self.tdigest is not None:
            sizes["tdigest"] = len(self.tdigest.to_bytes())
        if self.distinct is not None:
            sizes["distinct"] = len(self.distinct.to_bytes())
        if self.histogram is not None:
            sizes["histogram"] = len(self.histogram.to_bytes())
        return sizes

    def to_bytes(self) -> bytes:
        parts = {"quantiles": self.quantiles.to_bytes(), "moments": self.moments.to_bytes(),
                 "missing": struct.pack("<q", self.missing)}
        if self.tdigest is not None:
            parts["tdigest"] = self.tdigest.to_bytes()
        if self.distinct is not None:
            parts["distinct"] = self.distinct.to_bytes()
        if self.histogram is not None:
            parts["histogram"] = self.histogram.to_bytes()
        return _codec.pack("numeric", parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> NumericSketch:
        parts = _codec.unpack(data, "numeric")
        s = cls.__new__(cls)
        s.quantiles = QuantileSketch.from_bytes(parts["quantiles"])
        s.moments = Moments.from_bytes(parts["moments"])
        (s.missing,) = struct.unpack("<q", parts["missing"])
        s.tdigest = TDigestSketch.from_bytes(parts["tdigest"]) if "tdigest" in parts else None
        s.distinct = DistinctCount.from_bytes(parts["distinct"]) if "distinct" in parts else None
        s.histogram = FixedEdgeHistogram.from_bytes(parts["histogram"]) if "histogram" in parts else None
        return s

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantiles": self.quantiles.to_dict(),
            "tdigest": self.tdigest.to_dict() if self.tdigest is not None else None,
            "distinct": self.distinct.to_dict() if self.distinct is not None else None,
            "histogram": self.histogram.to_dict() if self.histogram is not None else None,
            "moments": self.moments.to_dict(),
            "missing": self.missing,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericSketch:
        s = cls.__new__(cls)
        s.quantiles = QuantileSketch.from_dict(data["quantiles"])
        s.tdigest = TDigestSketch.from_dict(data["tdigest"]) if data.get("tdigest") else None
        s.distinct = DistinctCount.from_dict(data["distinct"]) if data.get("distinct") else None
        s.histogram = FixedEdgeHistogram.from_dict(data["histogram"]) if data.get("histogram") else None
        s.moments = Moments.from_dict(data["moments"])
        s.missing = int(data["missing"])
        return s


def _merged(mine: Any, theirs: Any) -> Any:
    if mine is None or theirs is None:
        return None
    mine.merge(theirs)
    return mine

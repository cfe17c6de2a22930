"""Exact counts over fixed bin edges (taken from the reference), for binned PSI / JS / KL / chi-square.

The edges come from the reference profile. :func:`make_edges` is the one place
that decides them: quantile edges by default (equal reference mass per bin, so no
bin starts nearly empty), equal-width edges between robust bounds, or explicit
edges given by the user.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from stream_monitor.sketches import _codec

if TYPE_CHECKING:
    from stream_monitor.sketches.quantiles import QuantileSketch

BinningStrategy = Literal["quantile", "uniform"]
BINNING_STRATEGIES: tuple[str, ...] = ("quantile", "uniform")


class FixedEdgeHistogram:
    """Counts per bin for ``len(edges) + 1`` bins: (-inf, e0], (e0, e1], ..., (e_last, +inf).

    The outer bins are open so that values outside the reference range are counted,
    not lost: those are exactly the values drift is about.
    """

    def __init__(self, edges: np.ndarray | Sequence[float]) -> None:
        e = np.asarray(edges, dtype=np.float64)
        if e.ndim != 1 or (e.size > 1 and np.any(np.diff(e) <= 0)) or not np.all(np.isfinite(e)):
            raise ValueError("edges must be a 1-d, strictly increasing array of finite numbers")
        self.edges = e
        self.counts = np.zeros(e.size + 1, dtype=np.int64)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def update(self, values: np.ndarray) -> None:
        if values.size:
            idx = np.searchsorted(self.edges, values, side="left")
            self.counts += np.bincount(idx, minlength=self.counts.size)

    def update_sorted(self, values: np.ndarray) -> None:
        """:meth:`update` for ascending values: the count up to each edge is one binary search."""
        if values.size:
            upto = np.searchsorted(values, self.edges, side="right")  # values <= each edge
            self.counts[:-1] += upto  # bin i gets upto[i] - upto[i-1]; the open last bin the rest
            self.counts[1:] -= upto
            self.counts[-1] += values.size

    def merge(self, other: FixedEdgeHistogram) -> None:
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge histograms with different edges")
        self.counts += other.counts

    def to_bytes(self) -> bytes:
        return struct.pack("<I", self.edges.size) + _codec.floats(self.edges) + _codec.ints(self.counts)

    @classmethod
    def from_bytes(cls, data: bytes) -> FixedEdgeHistogram:
        (size,) = struct.unpack_from("<I", data)
        h = cls(_codec.read_floats(data[4:4 + 8 * size]))
        h.counts = _codec.read_ints(data[4 + 8 * size:])
        if h.counts.size != size + 1:
            raise ValueError("serialised histogram is truncated")
        return h

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "counts": self.counts.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FixedEdgeHistogram:
        h = cls(data["edges"])
        h.counts = np.asarray(data["counts"], dtype=np.int64)
        return h


def quantile_edges(sketch: QuantileSketch, bins: int) -> np.ndarray:
    """Inner edges at ranks 1/bins .. (bins-1)/bins.

    Repeated values collapse, so a near-constant feature gets fewer bins.
    """
    if sketch.n == 0:
        return np.asarray([0.0])
    edges = np.unique(sketch.quantiles(np.arange(1, bins) / bins))
    return edges[np.isfinite(edges)]


def uniform_edges(sketch: QuantileSketch, bins: int, tail: float = 0.005) -> np.ndarray:
    """`bins - 1` equal-width inner edges between the reference's `tail` and `1 - tail` quantiles.

    Robust bounds instead of min/max: one outlier in the reference would otherwise
    squeeze the whole distribution into one or two bins. The open outer bins still
    count everything beyond.
    """
    if sketch.n == 0:
        return np.asarray([0.0])
    lo, hi = sketch.quantiles([tail, 1.0 - tail])
    if not hi > lo:
        return np.asarray([float(lo)])
    return np.linspace(lo, hi, bins + 1)[1:-1]


def make_edges(sketch: QuantileSketch, bins: int, strategy: BinningStrategy | Sequence[float] = "quantile"
               ) -> np.ndarray:
    """Bin edges for one numeric feature: a strategy name, or explicit edges (validated)."""
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    if isinstance(strategy, str):
        if strategy == "quantile":
            return quantile_edges(sketch, bins)
        if strategy == "uniform":
            return uniform_edges(sketch, bins)
        raise ValueError(f"unknown binning strategy {strategy!r}; valid: {', '.join(BINNING_STRATEGIES)}")
    return FixedEdgeHistogram(np.asarray(strategy, dtype=np.float64)).edges

"""Exact counts over fixed bin edges (taken from the reference), for binned PSI / JS / KL / chi-square."""
from __future__ import annotations

from typing import Any

import numpy as np


class FixedEdgeHistogram:
    """Counts per bin for ``len(edges) + 1`` bins: (-inf, e0], (e0, e1], ..., (e_last, +inf).

    The outer bins are open so that values outside the reference range are counted,
    not lost: those are exactly the values drift is about.
    """

    def __init__(self, edges: np.ndarray | list[float]) -> None:
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

    def merge(self, other: FixedEdgeHistogram) -> None:
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge histograms with different edges")
        self.counts += other.counts

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "counts": self.counts.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FixedEdgeHistogram:
        h = cls(data["edges"])
        h.counts = np.asarray(data["counts"], dtype=np.int64)
        return h

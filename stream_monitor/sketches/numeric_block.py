"""One batch of rows into the numeric sketches of many features at once.

Why: with a consumer batch of 1,000 events and 20 numeric features, calling each
sketch part once per feature is ~15 numpy calls of a few microseconds each per
feature, about as much as the work itself. Here the batch is one (features, rows)
matrix: it is sorted along the rows with one call (NaN last), moments come from
axis reductions and HLL registers from numpy hashing (:mod:`._hll_vector`); only the
native sketches (KLL, t-digest) and the bin counts, whose state is per feature,
take one call per feature, on the sorted values: a long sorted column is compacted
into KLL in numpy (:meth:`~.quantiles.QuantileSketch.update_sorted`) and pre-clustered
for the t-digest (:func:`~.tdigest.cluster_means`), shorter ones update about three
times faster sorted, since the native compactions sort.

Results are those of :meth:`NumericSketch.update` per column, which is this
function on a one-row matrix (``tests/sketches/test_numeric_block.py``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from stream_monitor.sketches._hll_vector import registers
from stream_monitor.sketches.distinct import FEW_DISTINCT
from stream_monitor.sketches.moments import Moments
from stream_monitor.sketches.tdigest import PRECLUSTER_MIN, cluster_means

if TYPE_CHECKING:
    from stream_monitor.sketches.distinct import DistinctCount
    from stream_monitor.sketches.numeric import NumericSketch


def update_block(sketches: Sequence[NumericSketch], matrix: np.ndarray, *, owned: bool = False) -> None:
    """Add row ``i`` of the (features, rows) float64 `matrix` to ``sketches[i]``; NaN marks a missing value.

    ``owned``: the caller hands the matrix over (it built it for this call), so it is sorted in place.
    """
    rows = matrix.shape[1]
    if not rows or not sketches:
        return
    if owned:
        matrix.sort(axis=1)
        ordered = matrix
    else:
        ordered = np.sort(matrix, axis=1)
    # NaN sorts last, so row i's values are ordered[i, :counts[i]]; a row without NaN has none at its end.
    if np.isnan(ordered[:, -1]).any():
        counts = np.count_nonzero(~np.isnan(ordered), axis=1)
    else:
        counts = np.full(ordered.shape[0], rows)
    moments = _moments(ordered, counts)
    clusters = _clusters(sketches, ordered) if moments is not None else None
    for i, s in enumerate(sketches):
        c = int(counts[i])
        s.missing += rows - c
        if not c:
            continue
        values = ordered[i, :c]
        s.quantiles.update_sorted(values)
        s.moments.merge(moments[i] if moments is not None else _one(values))
        if s.tdigest is not None:
            if clusters is not None:
                s.tdigest.add_clusters(clusters[0][i], clusters[1], float(values[0]), float(values[-1]))
            else:
                s.tdigest.update_sorted(values)
        if s.histogram is not None:
            s.histogram.update_sorted(values)
    _distinct(sketches, ordered, counts)


def _moments(ordered: np.ndarray, counts: np.ndarray) -> list[Moments] | None:
    """Per-row moments with axis reductions when no value is missing (the common case), else None."""
    if not np.all(counts == ordered.shape[1]):
        return None
    mean = ordered.mean(axis=1)
    dev = ordered - mean[:, None]
    m2 = np.einsum("ij,ij->i", dev, dev)
    out = []
    for i in range(ordered.shape[0]):
        m = Moments()
        m.n, m.mean, m.m2 = int(ordered.shape[1]), float(mean[i]), float(m2[i])
        m.min, m.max = float(ordered[i, 0]), float(ordered[i, -1])
        out.append(m)
    return out


def _clusters(sketches: Sequence[NumericSketch], ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """t-digest centroids of every row at once (:func:`~.tdigest.cluster_means`), when no value is missing."""
    ks = {s.tdigest.k for s in sketches if s.tdigest is not None}
    if len(ks) != 1 or ordered.shape[1] < PRECLUSTER_MIN:
        return None
    return cluster_means(ordered, ks.pop())


def _one(values: np.ndarray) -> Moments:
    m = Moments()
    m.update(values)
    return m


def _distinct(sketches: Sequence[NumericSketch], ordered: np.ndarray, counts: np.ndarray) -> None:
    """HLL for every feature: few distinct values one by one, the rest as registers computed in numpy.

    A row with many distinct values is hashed whole, repeats included: a repeat hashes
    to the same register and value, so the registers are those of its distinct values,
    without the cost of picking them out. All such rows of one ``lg_k`` are hashed in
    one :func:`registers` call: a hash is ~20 numpy passes, and on a 1,000-row batch the
    per-call overhead of 20 features hashed apart cost as much as the hashing itself.
    """
    new = ordered[:, 1:] != ordered[:, :-1]  # NaN != NaN: the missing tail counts, and is cut off below
    hashed: dict[int, list[tuple[int, DistinctCount]]] = {}  # lg_k -> (row, its sketch)
    for i, s in enumerate(sketches):
        c = int(counts[i])
        if s.distinct is None or not c:
            continue
        values = ordered[i, :c]
        if c <= FEW_DISTINCT or int(np.count_nonzero(new[i, :c - 1])) + 1 <= FEW_DISTINCT:
            s.distinct.add_values(values[np.concatenate([[True], new[i, :c - 1]])])
        else:
            hashed.setdefault(s.distinct.lg_k, []).append((i, s.distinct))
    for lg_k, picked in hashed.items():
        idx = [i for i, _ in picked]
        sizes = counts[idx]
        if np.all(sizes == ordered.shape[1]):  # no missing value: the rows as they are
            values = ordered[idx].ravel()
        else:
            values = np.concatenate([ordered[i, :int(counts[i])] for i in idx])
        regs = registers(values, lg_k, np.repeat(np.arange(len(idx), dtype=np.int64), sizes), len(idx))
        for row, (_, distinct) in zip(regs, picked, strict=True):
            distinct.add_registers(row)

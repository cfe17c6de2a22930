"""Updating many features at once (``update_block``) gives what per-column ``NumericSketch.update`` gives.

Exact: missing counts, histogram counts, HLL estimates (same registers), t-digest
answers (same clusters) and KLL counts, min and max; moments within 1e-9 relative
(axis reductions round differently). KLL is randomised, so its CDF is checked against
the exact empirical CDF within the documented all-ranks error instead.
"""
from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.sketches import NumericSketch
from stream_monitor.sketches.numeric_block import update_block

EDGES = np.array([-1.0, -0.25, 0.0, 0.5, 2.0])


@pytest.mark.parametrize(("rows", "missing"), [(1, 0.0), (300, 0.0), (1_000, 0.0), (1_000, 0.05), (20_000, 0.0)])
def test_block_update_equals_per_column_update(rows: int, missing: float) -> None:
    rng = np.random.default_rng(rows)
    matrix = np.vstack([rng.normal(size=rows), rng.exponential(size=rows), rng.integers(0, 5, rows).astype(float),
                        np.full(rows, 3.25), rng.standard_cauchy(rows)])
    matrix[rng.random(matrix.shape) < missing] = np.nan
    block = [NumericSketch(EDGES) for _ in matrix]
    single = [NumericSketch(EDGES) for _ in matrix]
    for _ in range(2):
        update_block(block, matrix)
        for s, col in zip(single, matrix, strict=True):
            s.update(col)
    for b, s, col in zip(block, single, matrix, strict=True):
        assert (b.n, b.missing) == (s.n, s.missing)
        assert np.array_equal(b.histogram.counts, s.histogram.counts)
        for attr in ("mean", "m2", "min", "max"):
            assert np.isclose(getattr(b.moments, attr), getattr(s.moments, attr), rtol=1e-9, atol=1e-12)
        if not b.n:
            continue
        assert b.distinct.estimate == s.distinct.estimate
        ranks = np.linspace(0, 1, 51)
        assert np.array_equal(b.tdigest.quantiles(ranks), s.tdigest.quantiles(ranks))
        assert (b.quantiles.n, b.quantiles.min(), b.quantiles.max()) == (s.quantiles.n, s.quantiles.min(),
                                                                         s.quantiles.max())
        present = np.sort(np.concatenate([col, col])[~np.isnan(np.concatenate([col, col]))])
        probes = np.unique(np.quantile(present, np.linspace(0.05, 0.95, 19)))
        exact = np.searchsorted(present, probes, side="right") / present.size
        assert np.max(np.abs(b.quantiles.cdf(probes) - exact)) <= b.quantiles.rank_error(all_ranks=True)

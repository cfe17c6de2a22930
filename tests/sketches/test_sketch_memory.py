"""Bytes held per feature per window stay bounded whatever the traffic.

Numeric: the serialised parts of a NumericSketch (KLL, t-digest, HLL, 10-bin
histogram, moments, missing count) stay under NUMERIC_SKETCH_BYTES_BOUND (16 KiB)
from 10^3 to 10^7 events, fed in chunks of at most 10^6 with numpy. Heavy-tailed
data (Cauchy) is used because it maximises the t-digest's centroid count.
Embedding: a window sketch (no second moments) at d=1024 with 256 frequencies and
10 components holds 8 KiB of mean sum + 4 KiB of feature-map sum + 160 bytes, whatever n.
"""
from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.sketches import EmbeddingSketch, EmbeddingSpace, NumericSketch, RandomFourierFeatures
from stream_monitor.sketches.numeric import NUMERIC_SKETCH_BYTES_BOUND

EDGES = np.linspace(-3, 3, 9)


def test_numeric_sketch_bytes_stay_under_the_bound() -> None:
    rng = np.random.default_rng(0)
    sketch = NumericSketch(EDGES)
    fed, sizes = 0, {}
    for target in (1_000, 10_000, 100_000, 1_000_000, 10_000_000):
        while fed < target:
            chunk = min(1_000_000, target - fed)
            values = rng.standard_cauchy(chunk)
            values[rng.random(chunk) < 0.01] = np.nan
            sketch.update(values)
            fed += chunk
        parts = sketch.part_sizes()
        sizes[target] = sum(parts.values())
        assert sizes[target] <= NUMERIC_SKETCH_BYTES_BOUND, (target, parts)
        assert len(sketch.to_bytes()) <= NUMERIC_SKETCH_BYTES_BOUND, target
    assert sketch.n + sketch.missing == 10_000_000
    # Growth from 10^5 to 10^7 events is logarithmic at most: well under 2x.
    assert sizes[10_000_000] < 2 * sizes[100_000]


@pytest.mark.parametrize("n", [100, 5_000])
def test_embedding_window_bytes_do_not_grow_with_traffic(n: int) -> None:
    rng = np.random.default_rng(1)
    comps = np.linalg.qr(rng.normal(size=(1024, 10)))[0].T
    space = EmbeddingSpace(RandomFourierFeatures(256, bandwidth=40.0, dim=1024), comps, np.zeros(1024))
    sketch = EmbeddingSketch(space)
    sketch.update(rng.normal(size=(n, 1024)))
    assert sum(sketch.part_sizes().values()) == 1024 * 8 + 512 * 8 + 2 * 10 * 8 + 32

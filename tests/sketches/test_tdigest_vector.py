"""The vectorised t-digest and KLL read-outs equal DataSketches' own answers exactly.

* ``TDigestSketch.quantiles`` interpolates in numpy from the serialised centroids; it
  must equal ``tdigest_double.get_quantile`` bit for bit at every rank (edge ranks,
  singletons, merged digests, k from 10 to 300 included).
* ``QuantileSketch.weighted_items`` reads the levels of the serialised KLL; the
  cumulative weights must equal those from the sketch's own CDF (``get_cdf``).
* Pre-clustered updates (``update_sorted``, which merges a numpy-built digest) keep
  the exact count, min and max.
"""
from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.sketches import QuantileSketch, TDigestSketch


def digest(rng: np.random.Generator) -> TDigestSketch:
    t = TDigestSketch(int(rng.choice([10, 50, 150, 300])))
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.choice([1, 2, 3, 5, 20, 200, 5_000, 50_000]))
        v = rng.standard_cauchy(n) if rng.random() < 0.3 else rng.normal(size=n).round(int(rng.integers(0, 5)))
        if rng.random() < 0.5:
            part = TDigestSketch(t.k)
            part.update(v)
            t.merge(part)
        else:
            t.update(v)
    return t


@pytest.mark.parametrize("seed", range(6))
def test_tdigest_quantiles_equal_get_quantile(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(25):
        t = digest(rng)
        w = t.n
        ranks = np.clip(np.concatenate([rng.random(200), [0.0, 1.0, 0.5, 1 / w, 0.5 / w, 2 / w, 1 - 1 / w,
                                                           1 - 0.5 / w, 1 - 2 / w], np.arange(min(w, 100)) / w]), 0, 1)
        got = t.quantiles(ranks)
        want = np.array([t._sketch.get_quantile(float(r)) for r in ranks])
        assert np.array_equal(got, want)


def test_preclustered_update_keeps_count_min_and_max() -> None:
    rng = np.random.default_rng(1)
    t = TDigestSketch()
    values = rng.lognormal(size=30_000)
    for part in np.array_split(values, 7):
        t.update(part)
    assert t.n == values.size
    assert t.quantiles([0.0, 1.0]).tolist() == [values.min(), values.max()]


def old_weighted_items(q: QuantileSketch) -> tuple[np.ndarray, np.ndarray]:
    values = np.unique(np.fromiter((item for item, _ in q._sketch), np.float64))
    cdf = np.asarray(q._sketch.get_cdf(values.tolist(), True)[:-1], dtype=np.float64)
    return values, np.round(cdf * q.n)


@pytest.mark.parametrize("seed", range(4))
def test_kll_weighted_items_equal_the_sketch_cdf(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(30):
        q = QuantileSketch(int(rng.choice([8, 50, 200, 400])))
        for _ in range(int(rng.integers(1, 5))):
            if rng.random() < 0.5:
                part = QuantileSketch(q.k)
                part.update(rng.normal(size=int(rng.integers(0, 30_000))).round(int(rng.integers(1, 6))))
                q.merge(part)
            else:
                q.update(rng.normal(size=int(rng.integers(1, 3_000))))
        if not q.n:
            continue
        got, want = q.weighted_items(), old_weighted_items(q)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])

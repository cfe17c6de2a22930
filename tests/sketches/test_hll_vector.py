"""HLL registers computed in numpy equal DataSketches' own (the independent reference: ``hll_sketch.update``).

Why exact equality: the numpy path hashes with DataSketches' MurmurHash3 (seed 9001) and
takes the same bits for the register index and value, so every register must match;
anything else would make sketches from the two paths merge into nonsense.
"""
from __future__ import annotations

import numpy as np
import pytest
from datasketches import HLL_8, hll_sketch, hll_union

from stream_monitor.sketches import DistinctCount
from stream_monitor.sketches._hll_vector import registers

LG_K = 10


def ds_registers(values: np.ndarray, lg_k: int = LG_K) -> np.ndarray:
    """Registers of a DataSketches HLL_8 fed one value at a time (promoted to HLL mode through a union)."""
    sketch = hll_sketch(lg_k, HLL_8)
    for v in values.tolist():
        sketch.update(v)
    union = hll_union(lg_k)
    union.update(sketch)
    data = bytes(union.get_result(HLL_8).serialize_updatable())
    if data[7] & 3 != 2:  # still LIST/SET mode: few values; compare estimates instead
        return np.empty(0, dtype=np.uint8)
    return np.frombuffer(data, np.uint8, 1 << lg_k, 40)


@pytest.mark.parametrize("seed", range(4))
def test_numpy_registers_equal_datasketches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(100, 15, 20_000).round(int(rng.integers(0, 6)))
    values[:6] = [0.0, -0.0, 1.0, 1e300, -5.5, np.inf]
    want = ds_registers(values)
    assert want.size == 1 << LG_K
    assert np.array_equal(registers(values, LG_K), want)


def test_many_sketches_at_once_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(9)
    cols = [rng.normal(size=3000), rng.exponential(size=5000), rng.integers(0, 10**6, 4000).astype(float)]
    rows = np.concatenate([np.full(c.size, i) for i, c in enumerate(cols)])
    together = registers(np.concatenate(cols), LG_K, rows, len(cols))
    for i, c in enumerate(cols):
        assert np.array_equal(together[i], registers(c, LG_K))


@pytest.mark.parametrize("pool_size", [1, 7, 200, 3_000, 100_000])
def test_distinct_count_estimate_within_the_documented_error(pool_size: int) -> None:
    rng = np.random.default_rng(pool_size)
    pool = rng.normal(size=pool_size)
    batches = [rng.choice(pool, size=20_000) for _ in range(5)]  # with repeats: a repeat never changes an HLL
    d = DistinctCount()
    for b in batches:
        d.update(b)
    truth = np.unique(np.concatenate(batches)).size
    assert abs(d.estimate - truth) <= d.relative_error(3) * truth + 1
    assert DistinctCount.from_bytes(d.to_bytes()).estimate == d.estimate


def test_vector_path_registers_merge_with_value_by_value_sketches() -> None:
    """A numeric sketch (vector path) merged with a string sketch (DataSketches path) counts both."""
    rng = np.random.default_rng(3)
    a, b = DistinctCount(), DistinctCount()
    a.update(rng.normal(size=10_000))
    b.update([f"id-{i}" for i in range(10_000)])
    a.merge(b)
    assert abs(a.estimate - 20_000) <= a.relative_error(3) * 20_000


def test_register_value_is_leading_zeros_plus_one_at_every_bit_length() -> None:
    from stream_monitor.sketches._hll_vector import _rank

    h2 = [0, 1, 2, 3, 2**11 - 1, 2**11, 2**11 + 1, 2**52 - 1, 2**53 + 1, 2**63, 2**64 - 1]
    h2 += [2**b - 1 for b in range(1, 65)] + [2**b for b in range(64)]
    got = _rank(np.array(h2, dtype=np.uint64))
    want = [min(64 - int(h).bit_length(), 62) + 1 for h in h2]
    assert got.tolist() == want

"""Long sorted columns compacted in numpy into a KLL sketch (``QuantileSketch.update_sorted``).

Why these checks: the image must be a sketch DataSketches itself would write (it
re-serialises to the same bytes), keep the exact count, min and max, and its rank error,
alone and merged window after window, must stay within KLL's documented bound measured
against the exact empirical CDF.
"""
from __future__ import annotations

import numpy as np
import pytest
from datasketches import kll_doubles_sketch

from stream_monitor.sketches.quantiles import COMPACT_MIN, QuantileSketch, compacted_image


def _max_rank_error(sketch: QuantileSketch, data: np.ndarray) -> float:
    data = np.sort(data)
    points = np.unique(np.quantile(data, np.linspace(0.001, 0.999, 400)))
    exact = np.searchsorted(data, points, side="right") / data.size
    return float(np.abs(sketch.cdf(points) - exact).max())


@pytest.mark.parametrize("n", [COMPACT_MIN, 10_001, 50_000, 300_000])
def test_image_is_a_sketch_datasketches_writes_back_unchanged(n: int) -> None:
    x = np.sort(np.random.default_rng(n).lognormal(size=n))
    image = compacted_image(x, 400)
    sketch = kll_doubles_sketch.deserialize(image)
    assert bytes(sketch.serialize()) == image
    assert (sketch.n, sketch.get_min_value(), sketch.get_max_value()) == (n, x[0], x[-1])
    assert sketch.num_retained <= 400


@pytest.mark.parametrize("dist", ["normal", "lognormal", "few_values"])
def test_rank_error_within_kll_bound_alone_and_merged(dist: str) -> None:
    rng = np.random.default_rng(7)
    draw = {"normal": lambda n: rng.normal(100, 15, n).round(4), "lognormal": lambda n: rng.lognormal(0, 1.5, n),
            "few_values": lambda n: rng.integers(0, 12, n).astype(float)}[dist]
    batches = [draw(int(rng.integers(COMPACT_MIN, 60_000))) for _ in range(12)]
    compacted, reference = QuantileSketch(), QuantileSketch()
    for b in batches:
        compacted.update_sorted(np.sort(b))
        reference.update(b)
        assert compacted.n == reference.n
    data = np.concatenate(batches)
    bound = reference.rank_error()
    assert _max_rank_error(compacted, data) <= bound
    one = QuantileSketch()
    one.update_sorted(np.sort(batches[0]))
    assert _max_rank_error(one, batches[0]) <= bound


def test_short_columns_stay_exact() -> None:
    s = QuantileSketch()
    s.update_sorted(np.arange(COMPACT_MIN - 1, dtype=float))
    assert s.n == COMPACT_MIN - 1 and s.quantiles([0.5])[0] == pytest.approx((COMPACT_MIN - 1) // 2, abs=40)


def test_ks_through_the_numeric_block_within_001_of_scipy() -> None:
    """The engine's path (sorted batches of 10,000 through ``NumericSketch.update``) against exact KS."""
    from scipy import stats

    from stream_monitor.sketches.numeric import NumericSketch
    from stream_monitor.stats.quantile import ks_from_sketches

    def sketch(x: np.ndarray) -> QuantileSketch:
        s = NumericSketch()
        for i in range(0, x.size, 10_000):
            s.update(x[i:i + 10_000])
        return s.quantiles

    rng = np.random.default_rng(7)
    errors = []
    for n in (10_000, 100_000):
        for shift in (0.0, 0.1, 0.5):
            for x, y in ((rng.normal(size=n), rng.normal(shift, 1, size=n)),
                         (rng.lognormal(size=n), rng.lognormal(shift, 1, size=n)),
                         (rng.exponential(size=n), rng.exponential(1 + shift, size=n))):
                d, _ = ks_from_sketches(sketch(x), sketch(y))
                errors.append(abs(d - stats.ks_2samp(x, y).statistic))
    assert max(errors) < 0.01, f"worst KS error {max(errors):.4f}"

"""Binned statistics against independent computations on the same bins.

Tolerance: 1e-9 absolute (these are exact computations; only float rounding differs).
The reference computation bins raw values with ``np.digitize(right=True)`` (bins
(e_{i-1}, e_i], open at both ends), smooths with the documented pseudo-count 0.5, and
evaluates each formula with numpy or scipy; the library bins with
``FixedEdgeHistogram`` and computes from the sketch.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, entropy

from stream_monitor.reference import CategoricalReference, NumericReference
from stream_monitor.sketches import CategoryCounts, FixedEdgeHistogram, NumericSketch
from stream_monitor.stats import (
    chi_square,
    hellinger,
    js_distance,
    js_divergence,
    kl_divergence,
    psi,
    smoothed,
    total_variation,
)
from stream_monitor.stats.compare import compare_categorical, compare_numeric

TOL = 1e-9


def exact_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(np.digitize(values, edges, right=True), minlength=edges.size + 1).astype(np.float64)


def jeffreys(counts: np.ndarray) -> np.ndarray:
    c = counts + 0.5
    return c / c.sum()


@pytest.fixture(params=[(0, 0.0, 1.0), (1, 0.3, 1.0), (2, 0.0, 2.0), (3, 1.5, 0.5)])
def samples(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seed, shift, scale = request.param
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=20_000)
    cur = rng.normal(shift, scale, size=5_000)
    edges = np.quantile(ref, np.arange(1, 10) / 10)
    return ref, cur, edges


def test_histogram_counts_equal_numpy(samples: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ref, cur, edges = samples
    h = FixedEdgeHistogram(edges)
    for chunk in np.array_split(cur, 7):
        h.update(chunk)
    assert np.array_equal(h.counts, exact_counts(cur, edges))


def test_binned_statistics_equal_exact_numpy(samples: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ref, cur, edges = samples
    cp, cq = exact_counts(ref, edges), exact_counts(cur, edges)
    p, q = jeffreys(cp), jeffreys(cq)
    m = 0.5 * (p + q)
    assert np.allclose(smoothed(cp), p, atol=TOL, rtol=0)
    assert psi(cp, cq) == pytest.approx(float(np.sum((q - p) * np.log(q / p))), abs=TOL)
    assert kl_divergence(cp, cq) == pytest.approx(float(entropy(p, q)), abs=TOL)
    assert kl_divergence(cq, cp) == pytest.approx(float(entropy(q, p)), abs=TOL)
    js = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    assert js_divergence(cp, cq) == pytest.approx(float(js), abs=TOL)
    assert js_distance(cp, cq) == pytest.approx(float(jensenshannon(p, q)), abs=TOL)
    assert hellinger(cp, cq) == pytest.approx(float(np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2))), abs=TOL)
    assert total_variation(cp, cq) == pytest.approx(float(0.5 * np.abs(p - q).sum()), abs=TOL)
    # PSI is the symmetrised KL of the same smoothed pair.
    assert psi(cp, cq) == pytest.approx(kl_divergence(cp, cq) + kl_divergence(cq, cp), abs=TOL)


def test_compare_numeric_uses_exact_bins(samples: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ref, cur, edges = samples
    ref_sketch = NumericSketch(edges)
    ref_sketch.update(ref)
    reference = NumericReference(edges=edges, counts=exact_counts(ref, edges), quantiles=ref_sketch.quantiles,
                                 n=ref.size, mean=float(ref.mean()), std=float(ref.std(ddof=1)), missing=0,
                                 tdigest=ref_sketch.tdigest)
    window = NumericSketch(edges)
    window.update(np.concatenate([cur, [np.nan] * 50]))
    result = compare_numeric("x", reference, window)
    p, q = jeffreys(exact_counts(ref, edges)), jeffreys(exact_counts(cur, edges))
    assert result.binning == "exact"
    assert result.stats["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), abs=TOL)
    assert result.stats["kl_divergence"] == pytest.approx(float(entropy(p, q)), abs=TOL)
    assert result.stats["kl_divergence_reverse"] == pytest.approx(float(entropy(q, p)), abs=TOL)
    assert result.stats["js_distance"] == pytest.approx(float(jensenshannon(p, q)), abs=TOL)
    assert result.stats["mean"] == pytest.approx(float(cur.mean()), abs=TOL)
    assert result.stats["std_ratio"] == pytest.approx(float(cur.std(ddof=1) / ref.std(ddof=1)), rel=1e-9)
    assert result.stats["mean_shift"] == pytest.approx(abs(cur.mean() - ref.mean()) / ref.std(ddof=1), rel=1e-9)
    assert result.stats["missing_rate"] == pytest.approx(50 / 5050, abs=TOL)
    assert result.stats["missing_rate_change"] == pytest.approx(50 / 5050, abs=TOL)


def test_chi_square_equals_scipy() -> None:
    rng = np.random.default_rng(4)
    cats = [f"c{i}" for i in range(8)]
    ref = rng.choice(cats, size=10_000, p=np.linspace(1, 2, 8) / np.linspace(1, 2, 8).sum())
    cur = rng.choice(cats + ["new"], size=3_000)
    ref_counts = CategoryCounts(100)
    ref_counts.update(list(ref))
    reference = CategoricalReference(categories=sorted(cats),
                                     counts=np.asarray(ref_counts.vector(sorted(cats)), np.float64), missing=0)
    window = CategoryCounts(50, reference.categories)
    window.update(list(cur))
    table = np.vstack([reference.counts, window.vector(reference.categories)])
    expected = chi2_contingency(table, correction=False)
    stat, p = chi_square(reference.counts, np.asarray(window.vector(reference.categories), np.float64))
    assert stat == pytest.approx(float(expected.statistic), abs=TOL)
    assert p == pytest.approx(float(expected.pvalue), abs=TOL)
    result = compare_categorical("c", reference, window)
    assert result.stats["chi2_statistic"] == pytest.approx(float(expected.statistic), abs=TOL)
    assert result.stats["new_category_rate"] == pytest.approx(float(np.mean(cur == "new")), abs=TOL)
    pp, qq = jeffreys(table[0]), jeffreys(table[1])
    assert result.stats["psi"] == pytest.approx(float(np.sum((qq - pp) * np.log(qq / pp))), abs=TOL)
    assert result.stats["hellinger"] == pytest.approx(
        float(np.sqrt(max(0.0, 1 - np.sum(np.sqrt(pp * qq))))), abs=TOL)
    assert window.new_category_count == int(np.sum(cur == "new"))


def test_empty_bins_stay_finite_and_identical_counts_give_zero() -> None:
    cp = np.array([100.0, 0.0, 50.0, 0.0])
    cq = np.array([0.0, 80.0, 0.0, 3.0])
    for fn in (psi, kl_divergence, js_divergence, js_distance, hellinger, total_variation):
        assert np.isfinite(fn(cp, cq)), fn.__name__
        assert fn(cp, cp) == pytest.approx(0.0, abs=1e-12), fn.__name__
    assert js_divergence(cp, cq) <= np.log(2)
    assert 0 <= hellinger(cp, cq) <= 1 and 0 <= total_variation(cp, cq) <= 1
    with pytest.raises(ValueError):
        psi(cp, cq[:3])

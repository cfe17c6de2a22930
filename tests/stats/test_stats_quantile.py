"""KS, Cramér-von Mises and Wasserstein-1 from sketches against scipy on the raw values.

Tolerances (docs/statistics.md, "Sketch error"):
* exact regime (n below KLL's k, the sketch holds every value): KS and CvM statistic and
  p-value equal scipy's asymptotic ones within 1e-9;
* KS statistic at the default k=400 for n >= 10,000: within 0.01 of ``ks_2samp``
  (measured worst 0.0065 over 360 cases; the 99% bound is the two rank errors added, 0.0136);
* Wasserstein-1 from t-digests: within 2% relative of ``wasserstein_distance`` for
  shifts of at least 0.25 standard deviations (measured worst 1.9% over 60 cases);
* CvM statistic at n = 20,000 with a 0.3-std shift: within 10% relative (its sketch
  error is about 2 x rank error / CDF gap).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stream_monitor.sketches import QuantileSketch, TDigestSketch
from stream_monitor.stats import cvm_from_sketches, ks_from_sketches, wasserstein_from_sketches


def kll(values: np.ndarray, chunks: int = 1) -> QuantileSketch:
    s = QuantileSketch()
    for part in np.array_split(values, chunks):
        s.update(part)
    return s


def tdigest(values: np.ndarray) -> TDigestSketch:
    s = TDigestSketch()
    s.update(values)
    return s


@pytest.mark.parametrize("seed", range(4))
def test_exact_regime_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=150), rng.normal(0.3 * seed, 1, size=137)
    a, b = kll(x), kll(y)
    assert a.is_exact and b.is_exact
    d, p = ks_from_sketches(a, b)
    ref = stats.ks_2samp(x, y, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, abs=1e-9)
    t, pt = cvm_from_sketches(a, b)
    ref_cvm = stats.cramervonmises_2samp(x, y, method="asymptotic")
    assert t == pytest.approx(ref_cvm.statistic, abs=1e-9)
    assert pt == pytest.approx(ref_cvm.pvalue, abs=1e-9)


CASES = [(n, shift, dist) for n in (10_000, 100_000, 1_000_000) for shift in (0.0, 0.1, 0.5)
         for dist in ("normal", "lognormal", "exponential")]


def draw(rng: np.random.Generator, dist: str, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    if dist == "normal":
        return rng.normal(size=n), rng.normal(shift, 1, size=n)
    if dist == "lognormal":
        return rng.lognormal(size=n), rng.lognormal(shift, 1, size=n)
    return rng.exponential(size=n), rng.exponential(1 + shift, size=n)


def test_ks_within_001_of_scipy_at_default_k() -> None:
    rng = np.random.default_rng(7)
    errors = []
    for n, shift, dist in CASES:
        x, y = draw(rng, dist, n, shift)
        d, _ = ks_from_sketches(kll(x, chunks=4), kll(y))
        errors.append(abs(d - stats.ks_2samp(x, y).statistic))
    assert max(errors) < 0.01, f"worst KS error {max(errors):.4f}"


def test_wasserstein_within_2_percent_of_scipy() -> None:
    rng = np.random.default_rng(8)
    worst = 0.0
    for n in (10_000, 100_000, 1_000_000):
        for shift in (0.25, 0.5, 1.0):
            for dist in ("normal", "lognormal", "exponential"):
                x, y = draw(rng, dist, n, shift)
                w = wasserstein_from_sketches(tdigest(x), tdigest(y))
                exact = stats.wasserstein_distance(x, y)
                worst = max(worst, abs(w - exact) / exact)
    assert worst < 0.02, f"worst W1 relative error {worst:.4f}"


def test_cvm_tracks_scipy_under_shift() -> None:
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=20_000), rng.normal(0.3, 1, size=20_000)
    t, p = cvm_from_sketches(kll(x), kll(y))
    assert t == pytest.approx(stats.cramervonmises_2samp(x, y).statistic, rel=0.10)
    assert p < 1e-6


def test_ks_is_zero_for_identical_sketches_and_one_for_disjoint() -> None:
    x = np.random.default_rng(1).normal(size=50_000)
    a = kll(x)
    assert ks_from_sketches(a, a)[0] == 0.0
    assert ks_from_sketches(a, kll(x + 100.0))[0] == 1.0


def test_merged_sketches_give_the_same_statistics() -> None:
    """Window sketches are merged (panes, partitions, reference spans): KS and CvM must use true weights.

    Tolerance: KS within 0.01 of scipy on the merged sketches, CvM within 10% relative.
    """
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=20_000), rng.normal(size=20_000) + 0.3
    a, b = QuantileSketch(), QuantileSketch()
    for part in np.array_split(x, 5):
        piece = QuantileSketch()
        piece.update(part)
        a.merge(piece)
    for part in np.array_split(y, 3):
        piece = QuantileSketch()
        piece.update(part)
        b.merge(piece)
    values, cum = a.weighted_items()
    assert cum[-1] == a.n and np.all(np.diff(values) > 0)
    assert ks_from_sketches(a, b)[0] == pytest.approx(stats.ks_2samp(x, y).statistic, abs=0.01)
    assert cvm_from_sketches(a, b)[0] == pytest.approx(stats.cramervonmises_2samp(x, y).statistic, rel=0.10)
    null = ks_from_sketches(a, kll(rng.normal(size=20_000)))[0]
    assert null < 0.03

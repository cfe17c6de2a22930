"""The paired intervals against independent computations: scipy's paired t interval and scipy's bootstrap."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stream_monitor.decisions.paired import bootstrap_interval, compare_paired, paired_t_interval


def _accuracy_pairs(n: int, p_champion: float, p_challenger: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    u = rng.random(n)  # shared per-request difficulty: the pairing that makes the test paired
    champion = (u < p_champion).astype(float)
    challenger = (u + rng.normal(0, 0.05, n) < p_challenger).astype(float)
    return champion, challenger


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_paired_t_interval_equals_scipy_ttest_rel(confidence: float) -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, 400)
    b = a + rng.normal(0.08, 0.5, 400)
    got = paired_t_interval(b - a, confidence)
    ref = stats.ttest_rel(b, a).confidence_interval(confidence)
    assert got.low == pytest.approx(ref.low, rel=1e-12, abs=1e-12)
    assert got.high == pytest.approx(ref.high, rel=1e-12, abs=1e-12)
    assert got.estimate == pytest.approx(float(np.mean(b - a)), rel=1e-12)


@pytest.mark.parametrize(("kind", "n"), [("accuracy", 3000), ("continuous", 1500)])
def test_bootstrap_percentile_interval_matches_scipy_bootstrap(kind: str, n: int) -> None:
    """Same data, same method, different random streams: the bounds agree within Monte-Carlo error.

    Tolerance: 10% of the interval width (each bound's Monte-Carlo s.e. with 4000 resamples is
    about 1-2% of the width; 10% is several of those, and far below any change that matters).
    The accuracy case exercises the multinomial shortcut (3 distinct differences), the
    continuous one the direct resampling of pairs.
    """
    if kind == "accuracy":
        champion, challenger = _accuracy_pairs(n, 0.80, 0.83, seed=5)
    else:
        rng = np.random.default_rng(5)
        champion = rng.normal(-0.40, 0.3, n)  # negated log-losses
        challenger = champion + rng.standard_t(4, n) * 0.1 + 0.01
    diff = challenger - champion
    got = bootstrap_interval(diff, 0.95, resamples=4000, seed=11)
    ref = stats.bootstrap((challenger, champion), lambda x, y, axis=-1: np.mean(x - y, axis=axis), paired=True,
                          vectorized=True, method="percentile", confidence_level=0.95, n_resamples=4000,
                          random_state=np.random.default_rng(12)).confidence_interval
    width = ref.high - ref.low
    assert abs(got.low - ref.low) < 0.1 * width
    assert abs(got.high - ref.high) < 0.1 * width
    # And the bootstrap agrees with the t interval at this n (CLT): a sanity check of the orientation.
    t = paired_t_interval(diff, 0.95)
    assert abs(got.low - t.low) < 0.15 * width and abs(got.high - t.high) < 0.15 * width


def test_bootstrap_is_reproducible_for_a_seed_and_varies_across_seeds() -> None:
    champion, challenger = _accuracy_pairs(1000, 0.7, 0.72, seed=1)
    d = challenger - champion
    assert bootstrap_interval(d, 0.95, 2000, seed=7) == bootstrap_interval(d, 0.95, 2000, seed=7)
    assert bootstrap_interval(d, 0.95, 2000, seed=7) != bootstrap_interval(d, 0.95, 2000, seed=8)


def test_comparison_lower_bound_is_the_more_conservative_method() -> None:
    champion, challenger = _accuracy_pairs(800, 0.7, 0.75, seed=2)
    cmp = compare_paired(challenger - champion, 0.95, 2000, 0)
    assert cmp.lower == min(cmp.bootstrap.low, cmp.t.low)
    assert cmp.upper == max(cmp.bootstrap.high, cmp.t.high)


def test_intervals_need_two_pairs() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        paired_t_interval(np.array([1.0]), 0.95)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_interval(np.array([]), 0.95, 100, 0)

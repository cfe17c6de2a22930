"""Paired comparison of two model versions on the same requests: bootstrap and paired-t intervals.

Why paired: the champion and the shadow challenger answer the *same* requests, so the
per-request differences ``d_i = m_challenger(i) - m_champion(i)`` remove the
request-to-request variance that two independent samples would carry; the interval
of their mean is much tighter than comparing two window accuracies.

Two intervals of ``mean(d)`` are computed and both are reported:

* **bootstrap percentile**: resample the pairs with replacement ``B`` times with a
  seeded generator (the decision is reproducible), take the ``(1-c)/2`` and ``(1+c)/2``
  quantiles of the resampled means. When ``d`` takes few distinct values (accuracy
  differences are -1, 0 or 1) the resampled sums are drawn as multinomial counts of
  those values, which has exactly the distribution of resampling the pairs at
  O(B x distinct) instead of O(B x n).
* **paired t**: ``mean(d) +- t_{n-1,(1+c)/2} * sd(d) / sqrt(n)``, the textbook interval
  (what ``scipy.stats.ttest_rel(...).confidence_interval`` gives).

``tests/decisions/test_paired.py`` checks both against scipy on the same data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Above this many distinct difference values the bootstrap resamples pairs directly.
_MULTINOMIAL_MAX_DISTINCT = 64
#: Resampled rows per chunk, so memory stays bounded for large n.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A two-sided interval of the mean paired difference."""

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    standard_error: float
    n: int


def paired_t_interval(diff: np.ndarray, confidence: float) -> Interval:
    """The paired-t interval of ``mean(diff)`` (needs n >= 2; a zero spread gives a zero-width interval)."""
    d = np.asarray(diff, dtype=np.float64)
    n = int(d.size)
    if n < 2:
        raise ValueError(f"a paired interval needs at least 2 pairs, got {n}")
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    return Interval(mean, mean - half, mean + half, confidence, "paired-t", se, n)


def bootstrap_interval(diff: np.ndarray, confidence: float, resamples: int, seed: int) -> Interval:
    """The percentile bootstrap interval of ``mean(diff)``, reproducible for a given seed."""
    d = np.asarray(diff, dtype=np.float64)
    n = int(d.size)
    if n < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 pairs, got {n}")
    rng = np.random.default_rng(seed)
    values, counts = np.unique(d, return_counts=True)
    if values.size <= _MULTINOMIAL_MAX_DISTINCT:
        draws = rng.multinomial(n, counts / n, size=resamples)
        means = draws @ values / n
    else:
        means = np.empty(resamples)
        rows = max(1, _CHUNK_CELLS // n)
        for start in range(0, resamples, rows):
            stop = min(resamples, start + rows)
            idx = rng.integers(0, n, size=(stop - start, n))
            means[start:stop] = d[idx].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(d.mean()), float(low), float(high), confidence, "bootstrap-percentile",
                    float(means.std(ddof=1)), n)


@dataclass(frozen=True)
class PairedComparison:
    """Both intervals of one oriented difference (> 0 means the challenger is better)."""

    bootstrap: Interval
    t: Interval

    @property
    def lower(self) -> float:
        """The more conservative lower bound of the two methods: what a promotion must clear."""
        return min(self.bootstrap.low, self.t.low)

    @property
    def upper(self) -> float:
        return max(self.bootstrap.high, self.t.high)


def compare_paired(diff: np.ndarray, confidence: float, resamples: int, seed: int) -> PairedComparison:
    return PairedComparison(bootstrap_interval(diff, confidence, resamples, seed), paired_t_interval(diff, confidence))

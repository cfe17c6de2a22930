"""Statistics that need the whole distribution function: KS and Wasserstein-1, from two KLL sketches."""
from __future__ import annotations

import numpy as np
from scipy.stats import kstwo

from stream_monitor.sketches.quantiles import QuantileSketch


def ks_from_sketches(reference: QuantileSketch, current: QuantileSketch) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic p-value.

    D is the largest CDF gap evaluated at both sketches' evenly ranked quantiles
    (where the empirical CDFs jump); its error is bounded by the two sketches' rank
    errors added. The p-value is scipy's asymptotic one (``kstwo.sf(D, round(en))``
    with ``en = n*m/(n+m)``), as ``ks_2samp(method='asymp')`` computes it.
    """
    points = np.union1d(reference.support_points(), current.support_points())
    d = float(np.max(np.abs(reference.cdf(points) - current.cdf(points))))
    n, m = reference.n, current.n
    en = n * m / (n + m)
    return d, float(kstwo.sf(d, max(1, round(en))))


def wasserstein_from_sketches(reference: QuantileSketch, current: QuantileSketch, grid: int = 2000) -> float:
    """W1 = integral over u of |F^-1(u) - G^-1(u)|, by the midpoint rule on `grid` ranks."""
    u = (np.arange(grid) + 0.5) / grid
    return float(np.mean(np.abs(reference.quantiles(u) - current.quantiles(u))))

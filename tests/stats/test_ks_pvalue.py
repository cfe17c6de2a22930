"""``ks_sf`` against ``scipy.stats.kstwo.sf`` (the independent reference) over every branch scipy takes.

Tolerance: 1e-8 relative or 1e-12 absolute. The branch computed in numpy (n > 140,
2.2 <= n d^2 < 370) sums the same exact series as scipy's ``smirnov`` in log space; its
measured worst relative difference is 6e-10 up to n = 500,000 (rounding of gammaln).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kstwo

from stream_monitor.stats.quantile import ks_sf


@pytest.mark.parametrize("n", [1, 7, 50, 140, 141, 1_000, 25_000, 200_000])
def test_ks_sf_equals_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    ds = np.concatenate([[0.0, 1e-9, 0.5 / n, 1 / n, 0.4999, 0.5, 0.7, 1.0],
                         np.sqrt(rng.uniform(0.01, 400, 40) / n), rng.uniform(0, 1, 10)])
    for d in np.clip(ds, 0.0, 1.0):
        want = float(kstwo.sf(d, n))
        assert ks_sf(float(d), n) == pytest.approx(want, rel=1e-8, abs=1e-12), (n, d)

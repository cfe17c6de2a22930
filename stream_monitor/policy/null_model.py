"""The law of a statistic under no drift, fitted once for a group of keys that share its shape.

Why not one parametric fit per key: Benjamini-Hochberg over a few hundred keys per
window acts on p-values near 1e-4, far beyond where a few hundred bootstrap draws
per key have points. There a fitted family decides everything, and measured on
50 features x 4 slices (bench/detection.py), neither a gamma nor a lognormal fit
by moments has the right tail for every statistic: the gamma is 2-3x too light
for the sketch-based KS statistic at 1e-4, the lognormal 3-20x too heavy for PSI;
and per-key parameters from 300 draws add their own noise, which a convex tail
turns into too many small p-values.

So the law is semi-parametric. Each key keeps only its own scale (the mean of its
null draws); the *shape* comes from the pooled draws of all keys in its group
(same statistic, same kind, similar window size, same number of bins, checked to
agree by a two-sample KS test), standardised by their means: 50 features give
15,000 draws instead of 300. The pooled draws are used as they are down to the
top ``tail_share`` of the pool, and beyond that a generalised Pareto tail is fitted
to the exceedances by moments, with its shape held at >= 0 and its scale at least
the pool's variance/mean (the decay scale a gamma law with the pool's moments tends
to, which the mean excess underestimates when that law's shape is below 1): never
lighter than the exponential tail of the moment-matched gamma. For statistics whose
tail decays faster than exponentially (PSI with several bins is gamma-like with
shape > 1, KS is close to Gaussian in this range) that is conservative: p-values
too large, never too small, at a small cost in power far beyond any realistic
drift alarm; for heavier ones (PSI of a binary feature is
chi-square with one degree of freedom) the Pareto shape follows the data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

#: Points of the stored survival table (bounded so a calibrated config stays readable).
TABLE_POINTS = 64
#: Minimum exceedances the tail fit uses.
MIN_EXCEEDANCES = 30
#: Upper bound on the fitted Pareto shape (a few dozen exceedances can suggest absurdly heavy tails).
MAX_TAIL_SHAPE = 0.5


@dataclass(frozen=True)
class NullModel:
    """A standardised null law: survival table of statistic/mean, then a generalised Pareto tail."""

    z: tuple[float, ...]  # increasing standardised values
    sf: tuple[float, ...]  # P(Z >= z), decreasing
    tail_z: float  # where the exponential tail starts
    tail_sf: float  # P(Z >= tail_z)
    tail_scale: float  # Pareto scale of the excess beyond tail_z
    tail_shape: float  # Pareto shape (0: exponential)
    draws: int  # pooled draws behind it
    keys: int  # keys pooled

    def survival(self, z: float) -> float:
        """P(Z >= z) under no drift."""
        if z >= self.tail_z:
            y = (z - self.tail_z) / self.tail_scale
            if self.tail_shape > 0:
                return self.tail_sf * (1.0 + self.tail_shape * y) ** (-1.0 / self.tail_shape)
            return self.tail_sf * math.exp(-y)
        if z <= self.z[0]:
            return 1.0
        # Linear in log-survival between the stored points.
        return float(np.exp(np.interp(z, self._z, self._log_sf)))

    def quantile(self, rate: float) -> float:
        """The z with P(Z >= z) = rate."""
        if rate <= self.tail_sf:
            if self.tail_shape > 0:
                return self.tail_z + self.tail_scale / self.tail_shape * (
                    (self.tail_sf / rate) ** self.tail_shape - 1.0)
            return self.tail_z + self.tail_scale * math.log(self.tail_sf / rate)
        return float(np.interp(-math.log(rate), -self._log_sf, self._z))

    @cached_property
    def _z(self) -> np.ndarray:
        return np.asarray(self.z)

    @cached_property
    def _log_sf(self) -> np.ndarray:
        return np.log(np.asarray(self.sf))

    def to_dict(self) -> dict[str, Any]:
        return {"z": [round(v, 6) for v in self.z], "sf": [float(f"{v:.6g}") for v in self.sf],
                "tail_z": round(self.tail_z, 6), "tail_sf": float(f"{self.tail_sf:.6g}"),
                "tail_scale": round(self.tail_scale, 6), "tail_shape": round(self.tail_shape, 6),
                "draws": self.draws, "keys": self.keys}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NullModel:
        return cls(z=tuple(d["z"]), sf=tuple(d["sf"]), tail_z=float(d["tail_z"]), tail_sf=float(d["tail_sf"]),
                   tail_scale=float(d["tail_scale"]), tail_shape=float(d.get("tail_shape", 0.0)),
                   draws=int(d["draws"]), keys=int(d["keys"]))


def tail_share(draws: int) -> float:
    """Share of the pool given to the tail fit: 1% of a large pool, more of a small one (>= 30 points)."""
    return min(0.2, max(0.01, MIN_EXCEEDANCES / draws))


def fit_null_model(standardised: np.ndarray, keys: int) -> NullModel:
    """The survival table and exponential tail of pooled standardised null draws."""
    x = np.sort(standardised[np.isfinite(standardised)])
    n = x.size
    share = tail_share(n)
    start = int(math.floor(n * (1.0 - share)))
    tail_z = float(x[start])
    excess = x[start:] - tail_z
    mean = float(excess.mean())
    var = float(excess.var(ddof=1)) if excess.size > 1 else 0.0
    # Moment estimates of the generalised Pareto: shape = (1 - mean^2/var) / 2, scale = mean (1 - shape).
    shape = 0.5 * (1.0 - mean * mean / var) if var > 0 else 0.0
    shape = min(max(shape, 0.0), MAX_TAIL_SHAPE)
    gamma_scale = float(x.var(ddof=1) / x.mean()) if x.mean() > 0 else 0.0
    tail_scale = max(mean * (1.0 - shape), gamma_scale, 1e-9 * max(tail_z, 1.0))
    tail_sf = (n - start) / n
    # Survival table: the empirical P(Z >= z) at quantiles spread evenly in log-survival down to the tail.
    levels = np.unique(np.geomspace(1.0, tail_sf, TABLE_POINTS))[::-1]
    z = np.quantile(x, 1.0 - levels)
    z, first = np.unique(z, return_index=True)
    return NullModel(z=tuple(float(v) for v in z), sf=tuple(float(v) for v in levels[first]), tail_z=tail_z,
                     tail_sf=float(tail_sf), tail_scale=tail_scale, tail_shape=shape, draws=n, keys=keys)

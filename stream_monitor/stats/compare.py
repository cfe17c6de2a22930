"""Per-feature comparison of a window's sketch with the reference: all statistics a rule can name."""
from __future__ import annotations

import numpy as np

from stream_monitor.engine_types import FeatureResult
from stream_monitor.reference import CategoricalReference, NumericReference
from stream_monitor.sketches import CategoryCounts, NumericSketch
from stream_monitor.stats.binned import js_divergence, psi
from stream_monitor.stats.categorical import chi_square
from stream_monitor.stats.quantile import ks_from_sketches, wasserstein_from_sketches


def _missing_rate(missing: int, n: int) -> float:
    return missing / (missing + n) if missing + n else 0.0


def compare_numeric(name: str, ref: NumericReference, cur: NumericSketch) -> FeatureResult:
    stats: dict[str, float] = {"missing_rate": _missing_rate(cur.missing, cur.n), "n": float(cur.n)}
    binning = "exact"
    if cur.n:
        counts, binning = cur.bin_counts(ref.edges)
        ks, p = ks_from_sketches(ref.quantiles, cur.quantiles)
        std = ref.std if ref.std > 0 else float("nan")
        stats.update(
            psi=psi(ref.counts, counts),
            js_divergence=js_divergence(ref.counts, counts),
            ks_statistic=ks,
            ks_pvalue=p,
            wasserstein=wasserstein_from_sketches(ref.quantiles, cur.quantiles),
            mean=cur.moments.mean,
            std=cur.moments.std if cur.n > 1 else float("nan"),
            mean_shift=abs(cur.moments.mean - ref.mean) / std,
        )
    return FeatureResult(feature=name, kind="numeric", n=cur.n, n_reference=ref.n,
                         stats=stats, binning=binning)  # type: ignore[arg-type]


def compare_categorical(name: str, ref: CategoricalReference, cur: CategoryCounts) -> FeatureResult:
    n = cur.n
    stats: dict[str, float] = {"missing_rate": _missing_rate(cur.missing, n), "n": float(n)}
    if n:
        counts = np.asarray(cur.vector(ref.categories), dtype=np.float64)
        chi2_stat, p = chi_square(ref.counts, counts)
        stats.update(
            psi=psi(ref.counts, counts),
            js_divergence=js_divergence(ref.counts, counts),
            chi2_statistic=chi2_stat,
            chi2_pvalue=p,
            new_category_rate=float(counts[-1] / n),
        )
    return FeatureResult(feature=name, kind="categorical", n=n, n_reference=ref.n, stats=stats, binning="exact")

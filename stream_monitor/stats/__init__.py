"""Drift statistics computed from sketches: each function takes reference and current summaries.

Definitions, binning, smoothing and minimum sample sizes are in docs/statistics.md.
(``stream_monitor.stats.compare`` assembles them per feature; it is not imported
here because it depends on the reference profile module.)
"""
from __future__ import annotations

from stream_monitor.stats.binned import (
    SMOOTHING_PSEUDOCOUNT,
    hellinger,
    js_distance,
    js_divergence,
    kl_divergence,
    psi,
    smoothed,
    total_variation,
)
from stream_monitor.stats.categorical import chi_square
from stream_monitor.stats.embedding import cosine_distance, mean_shift, mmd2_unbiased, pca_drift
from stream_monitor.stats.quantile import cvm_from_sketches, ks_from_sketches, wasserstein_from_sketches
from stream_monitor.stats.sufficiency import MIN_SAMPLES, Insufficient, StatisticSet

__all__ = [
    "MIN_SAMPLES",
    "SMOOTHING_PSEUDOCOUNT",
    "Insufficient",
    "StatisticSet",
    "chi_square",
    "cosine_distance",
    "cvm_from_sketches",
    "hellinger",
    "js_distance",
    "js_divergence",
    "kl_divergence",
    "ks_from_sketches",
    "mean_shift",
    "mmd2_unbiased",
    "pca_drift",
    "psi",
    "smoothed",
    "total_variation",
    "wasserstein_from_sketches",
]

"""Drift statistics computed from sketches: each function takes reference and current summaries.

Definitions, binning, smoothing and minimum sample sizes are in docs/statistics.md.
"""
from __future__ import annotations

from stream_monitor.stats.binned import SMOOTHING_PSEUDOCOUNT, js_divergence, kl_divergence, psi, smoothed
from stream_monitor.stats.categorical import chi_square
from stream_monitor.stats.quantile import ks_from_sketches, wasserstein_from_sketches

__all__ = [
    "SMOOTHING_PSEUDOCOUNT",
    "chi_square",
    "js_divergence",
    "kl_divergence",
    "ks_from_sketches",
    "psi",
    "smoothed",
    "wasserstein_from_sketches",
]

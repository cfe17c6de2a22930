"""Divergences between two binned distributions (counts over the same bins).

One smoothing rule everywhere: add a pseudo-count of 0.5 to every bin of both
distributions before normalising (Jeffreys prior). It keeps log-ratios finite when
a bin is empty and is negligible once a bin holds more than a few dozen events.
"""
from __future__ import annotations

import numpy as np

SMOOTHING_PSEUDOCOUNT = 0.5


def smoothed(counts: np.ndarray, pseudocount: float = SMOOTHING_PSEUDOCOUNT) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64) + pseudocount
    return c / c.sum()


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index: sum((q - p) * ln(q / p)), p = reference, q = current."""
    p, q = smoothed(reference_counts), smoothed(current_counts)
    return float(np.sum((q - p) * np.log(q / p)))


def kl_divergence(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """KL(P || Q) in nats, both smoothed."""
    p, q = smoothed(p_counts), smoothed(q_counts)
    return float(np.sum(p * np.log(p / q)))


def js_divergence(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Jensen-Shannon divergence in nats (bounded by ln 2); its square root is a metric."""
    p, q = smoothed(p_counts), smoothed(q_counts)
    m = 0.5 * (p + q)
    return float(0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m)))

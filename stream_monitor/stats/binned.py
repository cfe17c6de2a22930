"""Divergences between two binned distributions (counts over the same bins).

One smoothing rule everywhere: add a pseudo-count of 0.5 to every bin of both
distributions before normalising (Jeffreys prior). It keeps log-ratios finite when
a bin is empty and is negligible once a bin holds more than a few dozen events.
Every statistic in this module is computed on the smoothed distributions, so
they describe the same pair of distributions and stay comparable (for example
``psi == kl_divergence(p, q) + kl_divergence(q, p)`` exactly).
"""
from __future__ import annotations

import numpy as np

SMOOTHING_PSEUDOCOUNT = 0.5


def smoothed(counts: np.ndarray, pseudocount: float = SMOOTHING_PSEUDOCOUNT) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64) + pseudocount
    return c / c.sum()


def _pair(p_counts: np.ndarray, q_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, q = np.asarray(p_counts), np.asarray(q_counts)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"counts must be 1-d over the same bins, got shapes {p.shape} and {q.shape}")
    return smoothed(p), smoothed(q)


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index: sum((q - p) * ln(q / p)), p = reference, q = current."""
    p, q = _pair(reference_counts, current_counts)
    return float(np.sum((q - p) * np.log(q / p)))


def kl_divergence(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """KL(P || Q) in nats, both smoothed. Not symmetric: pass (reference, current) or (current, reference)."""
    p, q = _pair(p_counts, q_counts)
    return float(np.sum(p * np.log(p / q)))


def js_divergence(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Jensen-Shannon divergence in nats (bounded by ln 2); its square root is a metric."""
    p, q = _pair(p_counts, q_counts)
    m = 0.5 * (p + q)
    return float(0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m)))


def js_distance(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """sqrt(JS divergence in nats), in [0, sqrt(ln 2)]: ``scipy.spatial.distance.jensenshannon`` (base e)."""
    return float(np.sqrt(max(js_divergence(p_counts, q_counts), 0.0)))


def hellinger(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Hellinger distance sqrt(1 - sum(sqrt(p * q))), in [0, 1]; symmetric, and a metric."""
    p, q = _pair(p_counts, q_counts)
    return float(np.sqrt(max(1.0 - float(np.sum(np.sqrt(p * q))), 0.0)))


def total_variation(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Total variation 0.5 * sum(|p - q|), in [0, 1]: the largest difference in probability of any set of bins."""
    p, q = _pair(p_counts, q_counts)
    return float(0.5 * np.sum(np.abs(p - q)))

"""Benjamini-Hochberg: with many features per window, control the share of false discoveries.

Testing 100 stationary features at 1% each gives about one false alert per window;
BH at level q keeps the expected share of false discoveries among the rejections at
or below q, so stationary features stop producing a steady trickle of alerts.
"""
from __future__ import annotations

import numpy as np


def benjamini_hochberg(p_values: list[float], q: float) -> list[bool]:
    """Which hypotheses to reject at FDR level q (step-up procedure)."""
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q}")
    m = len(p_values)
    if m == 0:
        return []
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= q * np.arange(1, m + 1) / m
    reject = np.zeros(m, dtype=bool)
    if passed.any():
        k = int(np.nonzero(passed)[0].max())
        reject[order[: k + 1]] = True
    return reject.tolist()

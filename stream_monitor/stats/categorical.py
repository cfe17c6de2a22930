"""Chi-square test of homogeneity for a categorical feature, reference vs current counts."""
from __future__ import annotations

import numpy as np
from scipy.stats import chi2


def chi_square(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Pearson chi-square on the 2 x K table (categories empty in both are dropped), and its p-value.

    Same value as ``scipy.stats.chi2_contingency(table, correction=False)``.
    """
    table = np.vstack([reference_counts, current_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or np.any(table.sum(axis=1) == 0):
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, float(chi2.sf(stat, table.shape[1] - 1))

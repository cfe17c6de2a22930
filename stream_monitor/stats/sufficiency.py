"""Minimum sample sizes: below them a statistic says "insufficient data" instead of a number.

"Insufficient data" is not "no drift": a PSI over ten bins from 12 events is noise
that looks like a measurement. Each statistic has a minimum number of non-missing
values on *each* side (reference and current), and the binned ones also a minimum
per bin, in the spirit of Cochran's rule for chi-square (expected counts of about
five per cell). The table is the documentation: docs/statistics.md repeats it with
the reasons.

The comparison functions collect results in a :class:`StatisticSet`: a value for
every statistic that had enough data, an :class:`Insufficient` record for every one
that did not. Nothing below a minimum is ever reported as a number.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: Minimum non-missing values per side, by result key.
MIN_SAMPLES: dict[str, int] = {
    "mean": 1, "std": 2, "mean_shift": 2, "std_ratio": 2, "missing_rate": 1, "missing_rate_change": 1,
    "distinct_count": 1, "new_category_rate": 1,
    "psi": 30, "kl_divergence": 30, "kl_divergence_reverse": 30, "js_divergence": 30, "js_distance": 30,
    "hellinger": 30, "total_variation": 30, "chi2_statistic": 30, "chi2_pvalue": 30,
    "ks_statistic": 30, "ks_pvalue": 30, "cvm_statistic": 30, "cvm_pvalue": 30,
    "wasserstein": 30, "wasserstein_normed": 30,
    "mmd2": 50, "mmd": 50, "cosine_distance": 30, "embedding_mean_shift": 2,
    "pca_mean_shift": 30, "pca_chi2_statistic": 30, "pca_chi2_pvalue": 30, "pca_variance_change": 30,
    "pca_residual_ratio": 30,
}

#: Binned statistics also need this many values per non-empty bin, on average, per side.
PER_CELL: dict[str, int] = {key: 5 for key in (
    "psi", "kl_divergence", "kl_divergence_reverse", "js_divergence", "js_distance", "hellinger",
    "total_variation", "chi2_statistic", "chi2_pvalue",
)}


def required(statistic: str, cells: int = 1) -> int:
    """The minimum n per side for `statistic` over `cells` non-empty bins."""
    if statistic not in MIN_SAMPLES:
        raise ValueError(f"unknown statistic {statistic!r}; known: {', '.join(sorted(MIN_SAMPLES))}")
    return max(MIN_SAMPLES[statistic], PER_CELL.get(statistic, 0) * cells)


@dataclass(frozen=True)
class Insufficient:
    """Why a statistic was not computed: how much data it needs and how much there was."""

    statistic: str
    required: int
    n_reference: int
    n_current: int
    reason: str = ""

    def __str__(self) -> str:
        why = self.reason or f"needs n >= {self.required} on each side"
        return (f"insufficient data for {self.statistic}: {why} "
                f"(reference {self.n_reference}, current {self.n_current})")


def check(statistic: str, n_reference: int, n_current: int, cells: int = 1) -> Insufficient | None:
    need = required(statistic, cells)
    if n_reference < need or n_current < need:
        return Insufficient(statistic, need, n_reference, n_current)
    return None


@dataclass
class StatisticSet:
    """Values of the statistics that had enough data, and why the others were not computed."""

    n_reference: int
    n_current: int
    values: dict[str, float] = field(default_factory=dict)
    insufficient: dict[str, Insufficient] = field(default_factory=dict)

    def add(self, keys: str | Sequence[str], compute: Callable[[], float | tuple[float, ...]],
            cells: int = 1) -> None:
        """Compute `keys` (one value, or a tuple in the same order) only if each has enough data."""
        names = [keys] if isinstance(keys, str) else list(keys)
        missing = [c for c in (check(k, self.n_reference, self.n_current, cells) for k in names) if c]
        if missing:
            self.insufficient.update({m.statistic: m for m in missing})
            return
        result = compute()
        values = result if isinstance(result, tuple) else (result,)
        self.values.update(zip(names, map(float, values), strict=True))

    def refuse(self, key: str, reason: str) -> None:
        """Record that `key` is undefined here for a reason other than sample size."""
        self.insufficient[key] = Insufficient(key, required(key), self.n_reference, self.n_current, reason)

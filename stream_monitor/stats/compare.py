"""Per-feature comparison of a window's sketch with the reference: all statistics a rule can name.

Each ``*_statistics`` function returns a :class:`StatisticSet` (values, plus an
"insufficient data" record for every statistic below its minimum sample); the
``compare_*`` wrappers turn that into the engine's :class:`FeatureResult`, whose
``stats`` dict holds only the statistics that had enough data. Key names and
meanings are listed in docs/statistics.md.
"""
from __future__ import annotations

import numpy as np

from stream_monitor.engine_types import FeatureResult
from stream_monitor.reference import CategoricalReference, EmbeddingReference, NumericReference
from stream_monitor.sketches import CategoryCounts, NumericSketch
from stream_monitor.sketches.embedding import EmbeddingSketch
from stream_monitor.stats.binned import (
    hellinger,
    js_distance,
    js_divergence,
    kl_divergence,
    psi,
    total_variation,
)
from stream_monitor.stats.categorical import chi_square
from stream_monitor.stats.embedding import (
    ProjectionSums,
    cosine_distance,
    mean_is_resolved,
    mean_shift,
    mmd2_unbiased,
    pca_drift,
)
from stream_monitor.stats.quantile import cvm_from_sketches, ks_from_sketches, wasserstein_from_sketches
from stream_monitor.stats.sufficiency import StatisticSet

PCA_KEYS = ("pca_mean_shift", "pca_chi2_statistic", "pca_chi2_pvalue", "pca_variance_change", "pca_residual_ratio")


def _missing_rate(missing: int, n: int) -> float:
    return missing / (missing + n) if missing + n else 0.0


def add_binned(out: StatisticSet, ref_counts: np.ndarray, counts: np.ndarray) -> None:
    """The binned divergences, all on the same smoothed pair of distributions."""
    p, q = np.asarray(ref_counts, np.float64), np.asarray(counts, np.float64)
    cells = int(np.count_nonzero(p + q))
    for key, fn in (("psi", lambda: psi(p, q)), ("js_divergence", lambda: js_divergence(p, q)),
                    ("js_distance", lambda: js_distance(p, q)), ("kl_divergence", lambda: kl_divergence(p, q)),
                    ("kl_divergence_reverse", lambda: kl_divergence(q, p)), ("hellinger", lambda: hellinger(p, q)),
                    ("total_variation", lambda: total_variation(p, q))):
        out.add(key, fn, cells=cells)


def numeric_statistics(ref: NumericReference, cur: NumericSketch) -> tuple[StatisticSet, str]:
    """All numeric statistics of a window against the reference, and how the bins were counted."""
    out = StatisticSet(n_reference=ref.n, n_current=cur.n)
    out.values.update(missing_rate=_missing_rate(cur.missing, cur.n), n=float(cur.n))
    binning = "exact"
    if cur.n + cur.missing:
        out.add("missing_rate_change", lambda: _missing_rate(cur.missing, cur.n) - ref.missing_rate)
    if not cur.n:
        return out, binning
    counts, binning = cur.bin_counts(ref.edges)
    add_binned(out, ref.counts, counts)
    out.add("mean", lambda: cur.moments.mean)
    out.add("std", lambda: cur.moments.std)
    out.add(("ks_statistic", "ks_pvalue"), lambda: ks_from_sketches(ref.quantiles, cur.quantiles))
    out.add(("cvm_statistic", "cvm_pvalue"), lambda: cvm_from_sketches(ref.quantiles, cur.quantiles))
    pair = (ref.tdigest, cur.tdigest) if ref.tdigest is not None and cur.tdigest is not None else (
        ref.quantiles, cur.quantiles)
    out.add("wasserstein", lambda: wasserstein_from_sketches(*pair))
    scaled = ("mean_shift", "std_ratio", "wasserstein_normed")
    if not ref.std > 0:
        for key in scaled:
            out.refuse(key, "the reference has zero spread, so a change cannot be scaled by it")
    else:
        out.add("mean_shift", lambda: abs(cur.moments.mean - ref.mean) / ref.std)
        out.add("std_ratio", lambda: cur.moments.std / ref.std)
        if "wasserstein" in out.values:
            out.add("wasserstein_normed", lambda: out.values["wasserstein"] / ref.std)
    if cur.distinct is not None:
        out.add("distinct_count", lambda: cur.distinct.estimate)  # type: ignore[union-attr]
    return out, binning


def compare_numeric(name: str, ref: NumericReference, cur: NumericSketch) -> FeatureResult:
    out, binning = numeric_statistics(ref, cur)
    counts = tuple(float(c) for c in cur.bin_counts(ref.edges)[0]) if cur.n else None
    return FeatureResult(feature=name, kind="numeric", n=cur.n, n_reference=ref.n,
                         stats=out.values, binning=binning, counts=counts)  # type: ignore[arg-type]


def categorical_statistics(ref: CategoricalReference, cur: CategoryCounts) -> StatisticSet:
    n = cur.n
    out = StatisticSet(n_reference=ref.n, n_current=n)
    out.values.update(missing_rate=_missing_rate(cur.missing, n), n=float(n))
    if n + cur.missing:
        out.add("missing_rate_change", lambda: _missing_rate(cur.missing, n) - ref.missing_rate)
    if not n:
        return out
    counts = np.asarray(cur.vector(ref.categories), dtype=np.float64)
    add_binned(out, ref.counts, counts)
    table = np.vstack([ref.counts, counts])
    out.add(("chi2_statistic", "chi2_pvalue"), lambda: chi_square(ref.counts, counts),
            cells=int(np.count_nonzero(table.sum(axis=0))))
    out.add("new_category_rate", lambda: float(counts[-1] / n))
    if cur.distinct is not None:
        out.add("distinct_count", lambda: cur.distinct.estimate)  # type: ignore[union-attr]
    return out


def compare_categorical(name: str, ref: CategoricalReference, cur: CategoryCounts) -> FeatureResult:
    out = categorical_statistics(ref, cur)
    counts = tuple(float(c) for c in cur.vector(ref.categories)) if cur.n else None
    return FeatureResult(feature=name, kind="categorical", n=cur.n, n_reference=ref.n, stats=out.values,
                         binning="exact", counts=counts)


def embedding_statistics(ref: EmbeddingReference, cur: EmbeddingSketch) -> StatisticSet:
    """MMD (random Fourier features), mean-embedding distances and PCA projection drift.

    `cur` must live in ``ref.space()`` (create it with ``ref.new_sketch()``).
    """
    n = cur.n
    out = StatisticSet(n_reference=ref.n, n_current=n)
    lost = cur.missing + cur.invalid
    out.values.update(missing_rate=_missing_rate(lost, n), n=float(n))
    if n + lost:
        out.add("missing_rate_change", lambda: _missing_rate(lost, n) - ref.missing_rate)
    if not n:
        return out
    same_space = cur.space is ref.space() or cur.space.fingerprint() == ref.space().fingerprint()
    if not same_space and cur.space.rff.spec() != ref.space().rff.spec():
        raise ValueError("the window's embedding sketch was not built in the reference's feature map")
    mean = cur.mean
    out.add(("mmd2", "mmd"), lambda: _mmd(ref, cur))
    out.add("embedding_mean_shift", lambda: mean_shift(ref.mean, mean, ref.total_variance))
    cur_var = cur.sum_sq_norm / n - float(mean @ mean)
    if not mean_is_resolved(ref.mean, ref.total_variance, ref.n) or not mean_is_resolved(mean, cur_var, n):
        out.refuse("cosine_distance", "a mean embedding is within 3 standard errors of zero, so its "
                                      "direction is noise")
    else:
        out.add("cosine_distance", lambda: cosine_distance(ref.mean, mean))
    if not same_space:  # a window opened before the reference existed: same feature map, no PCA projections
        for key in PCA_KEYS:
            out.refuse(key, "the window began before the reference (and its components) existed")
    elif ref.eigenvalues.size:
        sq_dist = cur.sum_sq_norm - 2.0 * float(ref.mean @ cur.sum) + n * float(ref.mean @ ref.mean)
        sums = ProjectionSums(n, cur.proj_sum, cur.proj_sq_sum, sq_dist)
        out.add(PCA_KEYS, lambda: _in_order(pca_drift(ref.pca(), sums), PCA_KEYS))
        if ref.residual_variance <= 1e-12 and "pca_residual_ratio" in out.values:
            del out.values["pca_residual_ratio"]
            out.refuse("pca_residual_ratio", "the reference has no variance outside its top components")
    else:
        for key in PCA_KEYS:
            out.refuse(key, "the reference has no principal components with positive variance")
    return out


def _in_order(values: dict[str, float], keys: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(values[k] for k in keys)


def _mmd(ref: EmbeddingReference, cur: EmbeddingSketch) -> tuple[float, float]:
    m2 = mmd2_unbiased(ref.rff_mean * ref.n, ref.n, cur.rff_sum, cur.n)
    return m2, float(np.sqrt(max(m2, 0.0)))


def compare_embedding(name: str, ref: EmbeddingReference, cur: EmbeddingSketch) -> FeatureResult:
    out = embedding_statistics(ref, cur)
    return FeatureResult(feature=name, kind="embedding", n=cur.n, n_reference=ref.n,  # type: ignore[arg-type]
                         stats=out.values, binning="sketch")

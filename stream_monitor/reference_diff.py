"""Compare two reference profiles feature by feature (`stream-monitor reference diff A B`).

Profile A is the baseline, B is compared with it, with the same statistics a window
gets against a reference, so the numbers read the same way. Differences from a
window comparison, all reported in each feature's ``binning`` / ``notes``:

* numeric bins are A's edges; B's counts on them are exact only if B has the same
  edges, otherwise estimated from B's KLL sketch (``binning: "sketch"``);
* categorical bins are A's tracked categories plus OTHER; a category A tracks but B
  does not is counted as 0 in B (B's OTHER holds it, if it occurred);
* embeddings: MMD needs both profiles to share a feature map (same seed, frequencies,
  bandwidth and dimension); the PCA statistics use A's components and the two means,
  plus how much the two top-k subspaces overlap.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import chi2

from stream_monitor.reference import (
    CategoricalReference,
    EmbeddingReference,
    FeatureReference,
    NumericReference,
    ReferenceProfile,
)
from stream_monitor.stats.categorical import chi_square
from stream_monitor.stats.compare import add_binned
from stream_monitor.stats.embedding import cosine_distance, mean_is_resolved, mean_shift, mmd2_unbiased
from stream_monitor.stats.quantile import cvm_from_sketches, ks_from_sketches, wasserstein_from_sketches
from stream_monitor.stats.sufficiency import StatisticSet


def diff_profiles(a: ReferenceProfile, b: ReferenceProfile) -> dict[str, Any]:
    """Per-feature statistics of profile `b` against profile `a`, as a JSON-friendly dict.

    ``{"a": {...}, "b": {...}, "features": {name: {"kind", "n_a", "n_b", "binning",
    "stats": {key: value}, "insufficient": {key: reason}, "notes": [...]}},
    "only_in_a": [...], "only_in_b": [...], "kind_mismatch": {name: [kind_a, kind_b]}}``
    """
    common = sorted(set(a.features) & set(b.features))
    result: dict[str, Any] = {
        "a": _meta(a), "b": _meta(b), "features": {},
        "only_in_a": sorted(set(a.features) - set(b.features)),
        "only_in_b": sorted(set(b.features) - set(a.features)),
        "kind_mismatch": {},
    }
    for name in common:
        fa, fb = a.features[name], b.features[name]
        if fa.kind != fb.kind:
            result["kind_mismatch"][name] = [fa.kind, fb.kind]
            continue
        result["features"][name] = diff_feature(fa, fb)
    return result


def _meta(p: ReferenceProfile) -> dict[str, Any]:
    return {"profile_id": p.profile_id, "model_id": p.model_id, "source": p.source, "row_count": p.row_count,
            "time_span": list(p.time_span), "created_at": p.created_at}


def diff_feature(fa: FeatureReference, fb: FeatureReference) -> dict[str, Any]:
    """One feature of two profiles of the same kind."""
    notes: list[str] = []
    if isinstance(fa, NumericReference) and isinstance(fb, NumericReference):
        out, binning = _numeric(fa, fb, notes)
    elif isinstance(fa, CategoricalReference) and isinstance(fb, CategoricalReference):
        out, binning = _categorical(fa, fb, notes)
    elif isinstance(fa, EmbeddingReference) and isinstance(fb, EmbeddingReference):
        out, binning = _embedding(fa, fb, notes), "sketch"
    else:
        raise ValueError(f"cannot diff a {fa.kind} feature with a {fb.kind} one")
    return {"kind": fa.kind, "n_a": out.n_reference, "n_b": out.n_current, "binning": binning,
            "stats": out.values, "insufficient": {k: str(v) for k, v in out.insufficient.items()}, "notes": notes}


def _missing(out: StatisticSet, fa: FeatureReference, fb: FeatureReference) -> None:
    out.values.update(missing_rate_a=fa.missing_rate, missing_rate_b=fb.missing_rate)
    out.add("missing_rate_change", lambda: fb.missing_rate - fa.missing_rate)


def _numeric(fa: NumericReference, fb: NumericReference, notes: list[str]) -> tuple[StatisticSet, str]:
    out = StatisticSet(n_reference=fa.n, n_current=fb.n)
    _missing(out, fa, fb)
    if np.array_equal(fa.edges, fb.edges):
        counts_b, binning = fb.counts, "exact"
    else:
        cdf = fb.quantiles.cdf(fa.edges)
        counts_b = np.clip(np.diff(np.concatenate([[0.0], cdf, [1.0]])), 0.0, None) * fb.n
        binning = "sketch"
        notes.append("bin edges differ: B's counts on A's edges are estimated from B's KLL sketch")
    add_binned(out, fa.counts, counts_b)
    out.add(("ks_statistic", "ks_pvalue"), lambda: ks_from_sketches(fa.quantiles, fb.quantiles))
    out.add(("cvm_statistic", "cvm_pvalue"), lambda: cvm_from_sketches(fa.quantiles, fb.quantiles))
    if fa.tdigest is not None and fb.tdigest is not None:
        out.add("wasserstein", lambda: wasserstein_from_sketches(fa.tdigest, fb.tdigest))  # type: ignore[arg-type]
    else:
        notes.append("a profile has no t-digest: Wasserstein-1 from KLL, less accurate in the tails")
        out.add("wasserstein", lambda: wasserstein_from_sketches(fa.quantiles, fb.quantiles))
    out.values.update(mean_a=fa.mean, mean_b=fb.mean, std_a=fa.std, std_b=fb.std)
    if fa.std > 0:
        out.add("mean_shift", lambda: abs(fb.mean - fa.mean) / fa.std)
        out.add("std_ratio", lambda: fb.std / fa.std)
        if "wasserstein" in out.values:
            out.add("wasserstein_normed", lambda: out.values["wasserstein"] / fa.std)
    else:
        for key in ("mean_shift", "std_ratio", "wasserstein_normed"):
            out.refuse(key, "profile A has zero spread, so a change cannot be scaled by it")
    return out, binning


def _categorical(fa: CategoricalReference, fb: CategoricalReference, notes: list[str]) -> tuple[StatisticSet, str]:
    out = StatisticSet(n_reference=fa.n, n_current=fb.n)
    _missing(out, fa, fb)
    tracked_b = dict(zip(fb.categories, fb.counts[:-1], strict=True))
    counts_b = np.asarray([tracked_b.get(c, 0.0) for c in fa.categories], dtype=np.float64)
    counts_b = np.append(counts_b, max(fb.n - counts_b.sum(), 0.0))
    unseen = sorted(set(fa.categories) - set(fb.categories))
    binning = "exact" if not unseen else "sketch"
    if unseen:
        notes.append(f"{len(unseen)} categories tracked by A are not tracked by B and count as 0 there")
    added = sorted(set(fb.categories) - set(fa.categories))
    if added:
        notes.append(f"{len(added)} categories tracked by B are not tracked by A (in A's OTHER): {added[:10]}")
    add_binned(out, fa.counts, counts_b)
    table = np.vstack([fa.counts, counts_b])
    out.add(("chi2_statistic", "chi2_pvalue"), lambda: chi_square(fa.counts, counts_b),
            cells=int(np.count_nonzero(table.sum(axis=0))))
    out.add("new_category_rate", lambda: float(counts_b[-1] / fb.n))
    return out, binning


def _embedding(fa: EmbeddingReference, fb: EmbeddingReference, notes: list[str]) -> StatisticSet:
    out = StatisticSet(n_reference=fa.n, n_current=fb.n)
    _missing(out, fa, fb)
    if fa.dim != fb.dim:
        notes.append(f"dimensions differ ({fa.dim} vs {fb.dim}): nothing else is comparable")
        return out
    if fa.rff == fb.rff:
        def mmd() -> tuple[float, float]:
            m2 = mmd2_unbiased(fa.rff_mean * fa.n, fa.n, fb.rff_mean * fb.n, fb.n)
            return m2, float(np.sqrt(max(m2, 0.0)))
        out.add(("mmd2", "mmd"), mmd)
    else:
        for key in ("mmd2", "mmd"):
            out.refuse(key, "the profiles use different random feature maps (seed, frequencies or bandwidth)")
    out.add("embedding_mean_shift", lambda: mean_shift(fa.mean, fb.mean, fa.total_variance))
    if mean_is_resolved(fa.mean, fa.total_variance, fa.n) and mean_is_resolved(fb.mean, fb.total_variance, fb.n):
        out.add("cosine_distance", lambda: cosine_distance(fa.mean, fb.mean))
    else:
        out.refuse("cosine_distance", "a mean embedding is within 3 standard errors of zero")
    if fa.eigenvalues.size:
        shift = fa.components @ (fb.mean - fa.mean)
        lam = fa.eigenvalues
        out.add("pca_mean_shift", lambda: float(np.sqrt(np.mean(shift * shift / lam))))

        def chi() -> tuple[float, float]:
            stat = float(np.sum(shift * shift / lam) / (1.0 / fa.n + 1.0 / fb.n))
            return stat, float(chi2.sf(stat, lam.size))
        out.add(("pca_chi2_statistic", "pca_chi2_pvalue"), chi)
        if fb.eigenvalues.size:
            k = min(fa.components.shape[0], fb.components.shape[0])
            overlap = fa.components[:k] @ fb.components[:k].T
            out.values["pca_subspace_overlap"] = float(np.sum(overlap * overlap) / k)
            notes.append("pca_subspace_overlap: mean squared cosine of the principal angles between the two "
                         "top-k subspaces (1 = same subspace, k/dim = unrelated)")
    return out

"""Drift statistics for embedding features, from additive sums (reference profile or window sketch).

Three views of the same question, because no single one catches everything:

* MMD with random Fourier features: a distance between whole distributions under a
  Gaussian kernel; catches changes of shape and spread, not only of the mean.
* Mean embedding: cosine distance and a standardised shift between the means;
  cheap, readable, blind to changes that keep the mean.
* Principal components of the reference: per-component shift and variance change
  of the projections, a chi-square test of the mean shift, and how much energy the
  data now has outside the reference's top components (new directions).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2


def mmd2_unbiased(sum_a: np.ndarray, n_a: int, sum_b: np.ndarray, n_b: int) -> float:
    """Unbiased MMD^2 from sums of random Fourier features z with |z(x)|^2 = 1.

    MMD^2_u = (|S_a|^2 - n_a) / (n_a (n_a - 1)) + (|S_b|^2 - n_b) / (n_b (n_b - 1))
    - 2 S_a.S_b / (n_a n_b): Gretton et al. (2012)'s U-statistic with each kernel value
    k(x, y) replaced by z(x).z(y), whose expectation over the random map is exactly
    k(x, y). Near 0 (and possibly slightly negative) without drift.
    """
    if n_a < 2 or n_b < 2:
        raise ValueError("MMD^2_u needs at least two vectors on each side")
    sa, sb = np.asarray(sum_a, np.float64), np.asarray(sum_b, np.float64)
    return float((sa @ sa - n_a) / (n_a * (n_a - 1)) + (sb @ sb - n_b) / (n_b * (n_b - 1))
                 - 2.0 * (sa @ sb) / (n_a * n_b))


def cosine_distance(mean_a: np.ndarray, mean_b: np.ndarray) -> float:
    """1 - cos(angle between the mean embeddings), in [0, 2]."""
    na, nb = float(np.linalg.norm(mean_a)), float(np.linalg.norm(mean_b))
    if na == 0 or nb == 0:
        raise ValueError("cosine distance is undefined for a zero mean embedding")
    return float(1.0 - np.dot(mean_a, mean_b) / (na * nb))


def mean_is_resolved(mean: np.ndarray, total_variance: float, n: int, z: float = 3.0) -> bool:
    """True when the mean's norm exceeds `z` standard errors, sqrt(trace(cov) / n).

    Below that the mean embedding is mostly sampling noise and its direction (and so
    the cosine distance) means nothing: typical of centred embeddings.
    """
    return n > 0 and float(np.dot(mean, mean)) > z * z * max(total_variance, 0.0) / n


def mean_shift(ref_mean: np.ndarray, cur_mean: np.ndarray, ref_total_variance: float) -> float:
    """|mean_cur - mean_ref| / sqrt(trace(cov_ref)): the shift in units of the reference's total spread."""
    if not ref_total_variance > 0:
        raise ValueError("the reference embedding has no variance")
    return float(np.linalg.norm(np.asarray(cur_mean) - np.asarray(ref_mean)) / np.sqrt(ref_total_variance))


@dataclass(frozen=True)
class PCAReference:
    """The reference's top-k principal directions (rows, orthonormal), their variances, and what they leave out."""

    components: np.ndarray
    eigenvalues: np.ndarray
    residual_variance: float  # trace(cov_ref) - sum(eigenvalues): variance outside the top-k subspace
    n: int


@dataclass(frozen=True)
class ProjectionSums:
    """A window's sums, with projections taken after centring on the reference mean."""

    n: int
    proj_sum: np.ndarray
    proj_sq_sum: np.ndarray
    sq_dist_sum: float  # sum over the window of |x - mean_ref|^2


def pca_drift(ref: PCAReference, cur: ProjectionSums) -> dict[str, float]:
    """Drift of the projections onto the reference's principal components.

    With m_j, v_j the window's mean and variance along component j (reference: 0, l_j):

    * ``pca_mean_shift`` = sqrt(mean_j(m_j^2 / l_j)): RMS shift in reference std units;
    * ``pca_chi2_statistic`` = sum_j m_j^2 / (l_j (1/n + 1/n_ref)), chi-square with k
      degrees of freedom without drift; ``pca_chi2_pvalue`` its upper tail;
    * ``pca_variance_change`` = max_j |ln(v_j / l_j)|: the largest change of spread;
    * ``pca_residual_ratio`` = (E|x - mean_ref|^2 - sum_j E[p_j^2]) / residual_ref: energy
      outside the top-k subspace relative to the reference's; 1 without drift. NaN
      when the reference has no residual variance (k >= rank).
    """
    n = cur.n
    lam = np.asarray(ref.eigenvalues, np.float64)
    if n < 2 or lam.size == 0 or np.any(lam <= 0):
        raise ValueError("PCA drift needs n >= 2 and positive reference eigenvalues")
    m = cur.proj_sum / n
    v = np.maximum(cur.proj_sq_sum / n - m * m, np.finfo(np.float64).tiny)
    stat = float(np.sum(m * m / lam) / (1.0 / n + 1.0 / ref.n))
    residual = cur.sq_dist_sum / n - float(np.sum(cur.proj_sq_sum)) / n
    ratio = residual / ref.residual_variance if ref.residual_variance > 1e-12 else float("nan")
    return {
        "pca_mean_shift": float(np.sqrt(np.mean(m * m / lam))),
        "pca_chi2_statistic": stat,
        "pca_chi2_pvalue": float(chi2.sf(stat, lam.size)),
        "pca_variance_change": float(np.max(np.abs(np.log(v / lam)))),
        "pca_residual_ratio": float(ratio),
    }


def top_components(covariance: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(components as rows, eigenvalues, residual variance) of the top `k` directions, largest first.

    Directions with (numerically) zero variance are dropped, so fewer than `k` may come back.

    Signs are fixed (largest absolute entry positive) so the same data always gives
    the same profile bytes and hash.
    """
    cov = 0.5 * (covariance + covariance.T)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][: max(0, min(k, vals.size))]
    comps = vecs[:, order].T.copy()
    signs = np.sign(comps[np.arange(comps.shape[0]), np.argmax(np.abs(comps), axis=1)])
    comps *= np.where(signs == 0, 1.0, signs)[:, None]
    top = vals[order]
    keep = top > 1e-12 * max(float(top[0]) if top.size else 0.0, np.finfo(np.float64).tiny)
    comps, top = comps[keep], top[keep]
    return comps, top, float(max(np.trace(cov) - top.sum(), 0.0))

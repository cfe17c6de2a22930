"""Embedding drift statistics on seeded Gaussian embeddings, against exact computations.

* MMD-RFF separation (dim 384, n = 2,000 per window, reference n = 10,000): every window
  with a 0.2-std mean shift in every coordinate scores above every window without one.
* MMD-RFF vs the exact quadratic-time unbiased MMD^2 with the same Gaussian kernel
  (n = 300 per side): |rff - exact| <= 0.3 * |exact| + 1e-3. Measured over 30 map seeds
  at 256 frequencies, the error's standard deviation is about 7% of MMD^2 plus 2e-4,
  so the tolerance is about 4 standard deviations.
* Mean-embedding and PCA statistics equal numpy computations on the raw vectors (1e-9
  relative): they are exact functions of the sums the sketch keeps.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from stream_monitor.reference import EmbeddingReference
from stream_monitor.sketches import EmbeddingSketch, EmbeddingSpace, RandomFourierFeatures
from stream_monitor.stats.compare import compare_embedding, embedding_statistics
from stream_monitor.stats.embedding import mmd2_unbiased

DIM = 384


def reference(x: np.ndarray, components: int = 10, seed: int = 3) -> EmbeddingReference:
    sketch = EmbeddingSketch(EmbeddingSpace(RandomFourierFeatures(seed=seed)), track_covariance=True)
    for part in np.array_split(x, 3):
        sketch.update(part)
    return EmbeddingReference.from_sketch(sketch, components)


def window(ref: EmbeddingReference, x: np.ndarray) -> EmbeddingSketch:
    s = ref.new_sketch()
    s.update(x)
    return s


def exact_mmd2u(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return np.exp(-np.maximum(d2, 0) / (2 * bandwidth**2))

    n, m = len(x), len(y)
    kx, ky = k(x, x), k(y, y)
    return float((kx.sum() - np.trace(kx)) / (n * (n - 1)) + (ky.sum() - np.trace(ky)) / (m * (m - 1))
                 - 2 * k(x, y).mean())


def test_mmd_rff_separates_a_02_std_shift_at_n_2000() -> None:
    rng = np.random.default_rng(0)
    ref = reference(rng.normal(size=(10_000, DIM)))
    null = [embedding_statistics(ref, window(ref, rng.normal(size=(2_000, DIM)))).values["mmd2"]
            for _ in range(5)]
    shifted = [embedding_statistics(ref, window(ref, rng.normal(size=(2_000, DIM)) + 0.2)).values["mmd2"]
               for _ in range(5)]
    assert max(null) < 1e-4 < 5e-3 < min(shifted), (null, shifted)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shift", [0.0, 0.2, 0.5])
def test_mmd_rff_tracks_exact_mmd(seed: int, shift: float) -> None:
    rng = np.random.default_rng(100 + seed)
    x, y = rng.normal(size=(300, DIM)), rng.normal(size=(300, DIM)) + shift
    space = EmbeddingSpace(RandomFourierFeatures(seed=seed))
    a, b = EmbeddingSketch(space), EmbeddingSketch(space)
    a.update(x)
    b.update(y)
    exact = exact_mmd2u(x, y, space.rff.bandwidth)  # type: ignore[arg-type]
    approx = mmd2_unbiased(a.rff_sum, a.n, b.rff_sum, b.n)
    assert abs(approx - exact) <= 0.3 * abs(exact) + 1e-3, (approx, exact)


def test_mean_and_pca_statistics_equal_numpy() -> None:
    rng = np.random.default_rng(5)
    scales = np.linspace(3.0, 0.5, 64)
    base = rng.normal(size=64) * 2
    x = base + rng.normal(size=(8_000, 64)) * scales
    y = base + 0.3 + rng.normal(size=(1_500, 64)) * scales * 1.2
    y[:20, 5] = np.nan  # missing rows
    ref = reference(x, components=5)
    cur = window(ref, y)
    values = compare_embedding("e", ref, cur).stats
    yy = y[~np.isnan(y).any(axis=1)]
    mu_x, mu_y = x.mean(0), yy.mean(0)
    cov = np.cov(x, rowvar=False, bias=True)
    lam, vec = np.linalg.eigh(cov)
    top = vec[:, ::-1][:, :5].T
    lam = lam[::-1][:5]
    proj = (yy - mu_x) @ top.T
    m, v = proj.mean(0), proj.var(0)
    resid_ref = np.trace(cov) - lam.sum()
    resid_cur = np.mean(((yy - mu_x) ** 2).sum(1)) - np.mean((proj**2).sum(1))
    stat = np.sum(m * m / lam) / (1 / len(yy) + 1 / len(x))
    expected = {
        "cosine_distance": 1 - mu_x @ mu_y / np.linalg.norm(mu_x) / np.linalg.norm(mu_y),
        "embedding_mean_shift": np.linalg.norm(mu_y - mu_x) / np.sqrt(np.trace(cov)),
        "pca_mean_shift": np.sqrt(np.mean(m * m / lam)),
        "pca_chi2_statistic": stat,
        "pca_chi2_pvalue": chi2.sf(stat, 5),
        "pca_variance_change": np.max(np.abs(np.log(v / lam))),
        "pca_residual_ratio": resid_cur / resid_ref,
        "missing_rate": 20 / 1_500,
    }
    for key, want in expected.items():
        assert values[key] == pytest.approx(float(want), rel=1e-9, abs=1e-12), key
    assert np.allclose(np.abs(ref.components), np.abs(top), atol=1e-8)  # signs are normalised, not numpy's


def test_cosine_distance_is_refused_for_centred_embeddings() -> None:
    rng = np.random.default_rng(6)
    ref = reference(rng.normal(size=(2_000, 32)))
    out = embedding_statistics(ref, window(ref, rng.normal(size=(500, 32))))
    assert "cosine_distance" not in out.values
    assert "standard errors" in str(out.insufficient["cosine_distance"])
    assert "mmd2" in out.values


def test_reference_round_trips_and_windows_rebuild_the_same_map() -> None:
    rng = np.random.default_rng(7)
    ref = reference(rng.normal(size=(1_000, 24)) + 1)
    again = EmbeddingReference.from_dict(ref.to_dict())
    y = rng.normal(size=(300, 24)) + 1.1
    a, b = embedding_statistics(ref, window(ref, y)).values, embedding_statistics(again, window(again, y)).values
    assert a == b
    w = window(ref, y)
    restored = EmbeddingSketch.from_bytes(w.to_bytes(), again.space())
    assert embedding_statistics(again, restored).values == a
    with pytest.raises(ValueError, match="reference's space"):
        EmbeddingSketch.from_bytes(w.to_bytes())


def test_small_windows_are_insufficient_not_zero() -> None:
    rng = np.random.default_rng(8)
    ref = reference(rng.normal(size=(1_000, 16)) + 1)
    out = embedding_statistics(ref, window(ref, rng.normal(size=(10, 16)) + 1))
    assert "mmd2" not in out.values and out.insufficient["mmd2"].required == 50
    assert out.values["n"] == 10

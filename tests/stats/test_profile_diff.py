"""diff_profiles: two profiles compared with the statistics a window gets, and profile hashing.

Same-edge numeric features compare exactly, so PSI equals the exact numpy value on
both profiles' bin counts (1e-9); different edges fall back to B's KLL (reported).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream_monitor.errors import ProfileError
from stream_monitor.reference import ReferenceProfile, build_profile
from stream_monitor.reference_diff import diff_profiles
from stream_monitor.sketches import CategoryCounts, EmbeddingSketch, EmbeddingSpace, NumericSketch
from stream_monitor.sketches.embedding import RandomFourierFeatures


def profile(seed: int, shift: float, edges: list[float] | None = None) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    num = NumericSketch(np.asarray(edges) if edges else None)
    num.update(rng.normal(shift, 1, size=20_000))
    cat = CategoryCounts(100)
    cat.update(list(rng.choice(["a", "b", "c"] + (["d"] if shift else []), size=5_000)))
    emb = EmbeddingSketch(EmbeddingSpace(RandomFourierFeatures(64, seed=1, bandwidth=6.0)), track_covariance=True)
    emb.update(rng.normal(size=(3_000, 16)) + 1 + shift)
    return build_profile("m", {"x": num}, {"c": cat}, bins=10, max_categories=10, source=f"s{seed}",
                         row_count=20_000, time_span=(None, None), embedding={"e": emb},
                         edges={"x": edges} if edges else None)


def test_diff_of_a_profile_with_itself_is_no_drift() -> None:
    a = profile(0, 0.0)
    d = diff_profiles(a, a)
    x = d["features"]["x"]
    assert x["binning"] == "exact" and x["stats"]["psi"] == pytest.approx(0.0, abs=1e-12)
    assert x["stats"]["ks_statistic"] == 0.0 and x["stats"]["wasserstein"] == pytest.approx(0.0, abs=1e-12)
    assert d["features"]["c"]["stats"]["chi2_statistic"] == pytest.approx(0.0, abs=1e-9)
    assert d["features"]["e"]["stats"]["mmd2"] == pytest.approx(0.0, abs=1e-3)
    assert d["features"]["e"]["stats"]["pca_subspace_overlap"] == pytest.approx(1.0)
    json.dumps(d, allow_nan=False)  # JSON-friendly


def test_diff_detects_a_shift_and_uses_exact_bins_when_edges_match() -> None:
    edges = [-1.5, -0.5, 0.0, 0.5, 1.5]
    a, b = profile(0, 0.0, edges), profile(1, 0.5, edges)
    d = diff_profiles(a, b)
    x = d["features"]["x"]
    fa, fb = a.features["x"], b.features["x"]
    p = (fa.counts + 0.5) / (fa.counts + 0.5).sum()
    q = (fb.counts + 0.5) / (fb.counts + 0.5).sum()
    assert x["binning"] == "exact"
    assert x["stats"]["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), abs=1e-9)
    assert x["stats"]["mean_shift"] == pytest.approx(0.5, abs=0.05)
    assert x["stats"]["wasserstein"] == pytest.approx(0.5, rel=0.05)
    assert d["features"]["c"]["stats"]["new_category_rate"] > 0.15
    assert d["features"]["e"]["stats"]["mmd2"] > 0.01
    assert d["a"]["profile_id"] == a.profile_id and d["b"]["profile_id"] == b.profile_id


def test_diff_with_different_edges_estimates_from_kll_and_says_so() -> None:
    d = diff_profiles(profile(0, 0.0), profile(1, 0.0, [-1.0, 0.0, 1.0]))
    x = d["features"]["x"]
    assert x["binning"] == "sketch" and any("KLL" in note for note in x["notes"])
    assert x["stats"]["psi"] < 0.01


def test_profiles_with_embeddings_and_tdigests_round_trip_and_detect_tampering(tmp_path: Path) -> None:
    a = profile(0, 0.2)
    path = a.save(tmp_path / "p.json")
    loaded = ReferenceProfile.load(path)
    assert loaded.profile_id == a.profile_id
    assert diff_profiles(a, loaded)["features"]["x"]["stats"]["ks_statistic"] == 0.0
    data = json.loads(path.read_text())
    data["features"]["e"]["total_variance"] *= 1.01
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="content hash mismatch"):
        ReferenceProfile.load(path)


def test_single_value_feature_profile_loads(tmp_path: Path) -> None:
    s = NumericSketch()
    s.update(np.array([3.0]))
    p = build_profile("m", {"x": s}, {}, bins=10, max_categories=5, source="t", row_count=1,
                      time_span=(None, None))
    assert ReferenceProfile.load(p.save(tmp_path / "one.json")).profile_id == p.profile_id

"""Every statistic has a minimum sample: below it, "insufficient data", never a number."""
from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.reference import build_profile
from stream_monitor.sketches import CategoryCounts, NumericSketch
from stream_monitor.stats.compare import categorical_statistics, numeric_statistics
from stream_monitor.stats.sufficiency import MIN_SAMPLES, StatisticSet, check, required


def numeric_reference(n: int = 5_000, spread: float = 1.0):  # type: ignore[no-untyped-def]
    s = NumericSketch()
    s.update(np.random.default_rng(0).normal(size=n) * spread)
    return build_profile("m", {"x": s}, {}, bins=10, max_categories=5, source="t", row_count=n,
                         time_span=(None, None)).features["x"]


def test_required_grows_with_bins_for_binned_statistics() -> None:
    assert required("psi", cells=10) == 50
    assert required("psi", cells=2) == MIN_SAMPLES["psi"]
    assert required("ks_statistic", cells=100) == MIN_SAMPLES["ks_statistic"]
    with pytest.raises(ValueError, match="unknown statistic"):
        required("nope")
    assert check("psi", 1_000, 49, cells=10) is not None
    assert check("psi", 1_000, 50, cells=10) is None


@pytest.mark.parametrize("n", [0, 1, 20, 49, 50, 400])
def test_numeric_statistics_appear_exactly_when_their_minimum_is_met(n: int) -> None:
    ref = numeric_reference()
    window = NumericSketch(ref.edges)
    window.update(np.random.default_rng(1).normal(size=n))
    out, _ = numeric_statistics(ref, window)
    cells = int(np.count_nonzero(ref.counts + window.bin_counts(ref.edges)[0]))
    for key in set(MIN_SAMPLES) - {"missing_rate"}:  # missing_rate is always reported (0.0 for an empty window)
        if key in out.values:
            assert n >= required(key, cells), key
        elif key in out.insufficient:
            assert n < required(key, cells) or out.insufficient[key].reason, key
    assert out.values["n"] == n and "missing_rate" in out.values
    assert ("psi" in out.values) == (n >= 50)
    assert ("ks_statistic" in out.values) == (n >= 30)
    assert all(np.isfinite(v) for v in out.values.values())
    if 0 < n < 50:
        assert "insufficient data for psi" in str(out.insufficient["psi"])


def test_zero_spread_reference_refuses_scaled_statistics() -> None:
    ref = numeric_reference(spread=0.0)
    window = NumericSketch(ref.edges)
    window.update(np.ones(500))
    out, _ = numeric_statistics(ref, window)
    for key in ("mean_shift", "std_ratio", "wasserstein_normed"):
        assert key not in out.values and "zero spread" in out.insufficient[key].reason


def test_chi_square_needs_five_per_category() -> None:
    ref_counts = CategoryCounts(100)
    ref_counts.update(list(np.random.default_rng(2).choice(list("abcdefghij"), size=5_000)))
    ref = build_profile("m", {}, {"c": ref_counts}, bins=10, max_categories=20, source="t", row_count=1,
                        time_span=(None, None)).features["c"]
    small = CategoryCounts(20, ref.categories)
    small.update(list("abcdefghij") * 4)  # 40 values over 10 categories: fewer than 5 each
    out = categorical_statistics(ref, small)
    assert "chi2_pvalue" not in out.values and out.insufficient["chi2_pvalue"].required == 50
    assert out.values["new_category_rate"] == 0.0


def test_statistic_set_records_instead_of_computing() -> None:
    out = StatisticSet(n_reference=100, n_current=3)
    calls = []
    out.add("ks_statistic", lambda: calls.append(1) or 0.5)  # type: ignore[func-returns-value]
    assert calls == [] and "ks_statistic" in out.insufficient
    out.add("mean", lambda: 2.0)
    assert out.values == {"mean": 2.0}

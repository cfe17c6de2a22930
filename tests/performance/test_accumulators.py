"""Performance accumulators against scikit-learn / exact numpy on the same joined rows."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    recall_score,
    roc_auc_score,
)

from stream_monitor.config_outcomes import PerformanceConfig
from stream_monitor.labels.join import Pending
from stream_monitor.performance.accumulators import PerformanceAccumulator, roc_auc_from_histograms

EXACT = 1e-9


def _rows(rng: np.random.Generator, n: int, *, with_class: bool) -> tuple[list, np.ndarray, np.ndarray]:
    y = rng.random(n) < 0.35
    score = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    rows = []
    for i in range(n):
        cls = ("1" if score[i] >= 0.5 else "0") if with_class else None
        rows.append((Pending("v1", 0, 1000 * i, float(score[i]), cls, math.nan), bool(y[i]), 1000 * i + 5000))
    return rows, y.astype(int), score


def ece_numpy(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / p.size * abs(p[m].mean() - y[m].mean())
    return total


@pytest.mark.parametrize("with_class", [False, True])
def test_classification_metrics_equal_sklearn_after_out_of_order_merges(with_class: bool) -> None:
    rng = np.random.default_rng(3)
    cfg = PerformanceConfig(positive_class="1", score_bins=1000, calibration_bins=10)
    rows, y, score = _rows(rng, 5000, with_class=with_class)
    # Labels arrive in random order, split over three panes merged afterwards.
    order = rng.permutation(len(rows))
    parts = [PerformanceAccumulator(cfg) for _ in range(3)]
    for k, chunk in enumerate(np.array_split(order, 17)):
        parts[k % 3].add(cfg, [rows[i] for i in chunk])
    acc = PerformanceAccumulator(cfg)
    for p in parts:
        acc.merge(p)
    m = acc.metrics()
    pred = (score >= 0.5).astype(int)
    assert abs(m["accuracy"] - accuracy_score(y, pred)) < EXACT
    assert abs(m["precision"] - precision_score(y, pred, zero_division=0)) < EXACT
    assert abs(m["recall"] - recall_score(y, pred, zero_division=0)) < EXACT
    assert abs(m["f1"] - f1_score(y, pred, zero_division=0)) < EXACT
    assert abs(m["brier"] - brier_score_loss(y, score)) < EXACT
    assert abs(m["log_loss"] - log_loss(y, score, labels=[0, 1])) < EXACT
    assert abs(m["ece"] - ece_numpy(y, score, 10)) < EXACT
    assert abs(m["positive_rate"] - y.mean()) < EXACT
    exact_auc = roc_auc_score(y, score)
    # The sketch's bound holds by construction; with 1000 bins it is below 1e-3 on this data.
    assert abs(m["roc_auc"] - exact_auc) <= m["roc_auc_error_bound"] + 1e-12
    assert m["roc_auc_error_bound"] < 1e-3
    assert m["labels"] == 5000 and m["label_delay_mean_seconds"] == pytest.approx(5.0)


def test_log_loss_clips_certain_wrong_predictions_like_sklearn() -> None:
    cfg = PerformanceConfig()
    rows = [(Pending("v", 0, 0, s, None, math.nan), lab, 0) for s, lab in [(0.0, 1), (1.0, 0), (1.0, 1), (0.3, 0)]]
    acc = PerformanceAccumulator(cfg)
    acc.add(cfg, rows)
    assert abs(acc.metrics()["log_loss"] - log_loss([1, 0, 1, 0], [0.0, 1.0, 1.0, 0.3])) < EXACT


def test_auc_with_ties_in_one_bin_is_exactly_the_tie_corrected_value() -> None:
    # All scores distinct bins except ties that sklearn also counts as 1/2: here every score sits on a bin centre.
    bins = 10
    scores = np.array([0.05, 0.15, 0.15, 0.45, 0.75, 0.95])
    y = np.array([0, 0, 1, 1, 0, 1])
    pos = np.bincount((scores[y == 1] * bins).astype(int), minlength=bins)
    neg = np.bincount((scores[y == 0] * bins).astype(int), minlength=bins)
    auc, bound = roc_auc_from_histograms(pos, neg)  # type: ignore[misc]
    assert abs(auc - roc_auc_score(y, scores)) < EXACT
    assert bound == pytest.approx(0.5 * 1 / 9)


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(5)
    cfg = PerformanceConfig(task="regression")
    truth = rng.normal(10, 3, 3000)
    pred = truth + rng.normal(0.4, 1.5, 3000)
    rows = [(Pending("v", 0, 0, math.nan, None, float(p)), float(t), 0) for p, t in zip(pred, truth, strict=True)]
    a, b = PerformanceAccumulator(cfg), PerformanceAccumulator(cfg)
    a.add(cfg, rows[:1234])
    b.add(cfg, rows[1234:])
    a.merge(b)
    m = a.metrics()
    assert abs(m["mae"] - mean_absolute_error(truth, pred)) < EXACT
    assert abs(m["rmse"] - math.sqrt(mean_squared_error(truth, pred))) < EXACT
    assert abs(m["bias"] - float(np.mean(pred - truth))) < EXACT


def test_snapshot_round_trip_keeps_every_number() -> None:
    rng = np.random.default_rng(9)
    cfg = PerformanceConfig()
    rows, _, _ = _rows(rng, 800, with_class=False)
    acc = PerformanceAccumulator(cfg)
    acc.predictions = 1000
    acc.add(cfg, rows)
    again = PerformanceAccumulator.from_dict(cfg, acc.to_dict())
    assert again.metrics() == acc.metrics()


def test_label_drift_is_psi_of_label_classes_against_the_baseline() -> None:
    cfg = PerformanceConfig()
    base, cur = PerformanceAccumulator(cfg), PerformanceAccumulator(cfg)
    base.add(cfg, [(Pending("v", 0, 0, 0.5, None, math.nan), int(i < 300), 0) for i in range(1000)])
    cur.add(cfg, [(Pending("v", 0, 0, 0.5, None, math.nan), int(i < 600), 0) for i in range(1000)])
    from stream_monitor.stats.binned import psi

    expected = psi(np.array([700.0, 300.0, 0.0]), np.array([400.0, 600.0, 0.0]))
    assert abs(cur.metrics(base)["label_psi"] - expected) < EXACT

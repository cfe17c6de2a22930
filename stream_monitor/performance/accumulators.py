"""Per-pane performance state that merges: confusion counts, score histograms, calibration bins, error sums.

Why these shapes: a window's performance changes every time a late label arrives,
and a sliding window is the merge of several panes. Everything here is a sum (or a
histogram of counts), so adding labels in any order and merging panes in any
grouping gives the same numbers; the exact metrics (accuracy, precision, recall,
F1, log loss, Brier, ECE over its declared bins, MAE, RMSE, bias) equal the ones
computed offline on the joined rows up to float rounding (tested to 1e-9 against
scikit-learn / numpy). ROC AUC comes from fixed-bin score histograms per class:
only positive/negative pairs that share a bin are uncertain (counted as ties), so
``|AUC_binned - AUC_exact| <= 0.5 * sum_b pos_b * neg_b / (P * N)``, which is
reported with every window as ``roc_auc_error_bound``. Formulas:
docs/performance-monitoring.md.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from stream_monitor.config_outcomes import PerformanceConfig
from stream_monitor.labels.join import Pending, normalise_label
from stream_monitor.sketches import CategoryCounts, Moments, QuantileSketch
from stream_monitor.stats.binned import psi

#: Probabilities are clipped to [eps, 1 - eps] for log loss, as scikit-learn does (float64 machine epsilon).
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)
#: KLL size of the label-delay sketch (rank error ~1.3% at 99% confidence; delays need no more).
DELAY_SKETCH_K = 200

_SUMS = ("predictions", "labels", "expired", "unusable", "n_class", "correct", "tp", "fp", "tn", "fn",
         "n_scored", "log_loss_sum", "brier_sum", "n_reg", "err_sum", "abs_sum", "sq_sum")


class PerformanceAccumulator:
    """Everything one pane (or window, after merging) knows about predictions and their labels."""

    def __init__(self, config: PerformanceConfig) -> None:
        self.task = config.task
        self.predictions = 0  # predictions held for a label
        self.labels = 0  # labels joined
        self.expired = 0  # predictions that left the buffer without a label
        self.unusable = 0  # labels joined but not usable (a regression label that is not a number)
        self.n_class = self.correct = self.tp = self.fp = self.tn = self.fn = 0
        self.n_scored = 0
        self.log_loss_sum = self.brier_sum = 0.0
        self.pos_hist = np.zeros(config.score_bins, dtype=np.int64)
        self.neg_hist = np.zeros(config.score_bins, dtype=np.int64)
        self.cal_n = np.zeros(config.calibration_bins, dtype=np.int64)
        self.cal_p = np.zeros(config.calibration_bins)
        self.cal_y = np.zeros(config.calibration_bins)
        self.n_reg = 0
        self.err_sum = self.abs_sum = self.sq_sum = 0.0
        self.label_classes = CategoryCounts(config.max_label_classes)
        self.label_values = Moments()
        self.delay = QuantileSketch(DELAY_SKETCH_K)
        self.delay_sum = 0.0
        self.newest_label_ms: int | None = None

    # -- updates --------------------------------------------------------------------------------

    def add(self, config: PerformanceConfig, joined: Sequence[tuple[Pending, object, int]]) -> None:
        """Joined (prediction, label, label time in ms) rows of this pane, as one vector update."""
        if not joined:
            return
        self.labels += len(joined)
        delays = np.fromiter(((t - p.ts_ms) / 1000.0 for p, _, t in joined), np.float64, len(joined))
        self.delay.update(delays)
        self.delay_sum += float(delays.sum())
        newest = max(t for _, _, t in joined)
        self.newest_label_ms = newest if self.newest_label_ms is None else max(self.newest_label_ms, newest)
        if config.task == "classification":
            self._add_classification(config, joined)
        else:
            self._add_regression(joined)

    def _add_classification(self, config: PerformanceConfig, joined: Sequence[tuple[Pending, object, int]]) -> None:
        pos = config.positive_class
        names = [normalise_label(label) for _, label, _ in joined]
        y = np.fromiter((n == pos for n in names), bool, len(names))
        score = np.fromiter((p.score for p, _, _ in joined), np.float64, len(joined))
        has_score = ~np.isnan(score)
        classes = [p.cls for p, _, _ in joined]
        has_class = np.fromiter((c is not None for c in classes), bool, len(classes))
        pred_pos = np.where(has_class, np.fromiter((c == pos for c in classes), bool, len(classes)),
                            np.nan_to_num(score, nan=-1.0) >= config.threshold)
        usable = has_class | has_score
        correct = np.where(has_class, np.fromiter((c == n for c, n in zip(classes, names, strict=True)), bool,
                                                  len(names)), pred_pos == y)
        self.n_class += int(usable.sum())
        self.correct += int((correct & usable).sum())
        self.tp += int((pred_pos & y & usable).sum())
        self.fp += int((pred_pos & ~y & usable).sum())
        self.tn += int((~pred_pos & ~y & usable).sum())
        self.fn += int((~pred_pos & y & usable).sum())
        self.label_classes.update(names)
        self.label_values.update(y.astype(np.float64))
        if has_score.any():
            s, t = score[has_score], y[has_score]
            bins = self.pos_hist.size
            idx = np.clip((np.clip(s, 0.0, 1.0) * bins).astype(np.int64), 0, bins - 1)
            self.pos_hist += np.bincount(idx[t], minlength=bins)
            self.neg_hist += np.bincount(idx[~t], minlength=bins)
            p = np.clip(s, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
            yf = t.astype(np.float64)
            self.log_loss_sum += float(-(yf * np.log(p) + (1.0 - yf) * np.log1p(-p)).sum())
            self.brier_sum += float(((s - yf) ** 2).sum())
            cb = self.cal_n.size
            cidx = np.clip((np.clip(s, 0.0, 1.0) * cb).astype(np.int64), 0, cb - 1)
            self.cal_n += np.bincount(cidx, minlength=cb)
            self.cal_p += np.bincount(cidx, weights=s, minlength=cb)
            self.cal_y += np.bincount(cidx, weights=yf, minlength=cb)
            self.n_scored += int(s.size)

    def _add_regression(self, joined: Sequence[tuple[Pending, object, int]]) -> None:
        preds, truth = [], []
        for p, label, _ in joined:
            y = _as_number(label)
            pred = p.value if p.value == p.value else p.score
            if y is None or pred != pred:
                self.unusable += 1
                continue
            preds.append(pred)
            truth.append(y)
        if not preds:
            return
        err = np.asarray(preds) - np.asarray(truth)
        self.n_reg += int(err.size)
        self.err_sum += float(err.sum())
        self.abs_sum += float(np.abs(err).sum())
        self.sq_sum += float((err * err).sum())
        self.label_values.update(np.asarray(truth))

    def merge(self, other: PerformanceAccumulator) -> None:
        for name in _SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("pos_hist", "neg_hist", "cal_n", "cal_p", "cal_y"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.label_classes.merge(other.label_classes)
        self.label_values.merge(other.label_values)
        self.delay.merge(other.delay)
        self.delay_sum += other.delay_sum
        if other.newest_label_ms is not None:
            self.newest_label_ms = (other.newest_label_ms if self.newest_label_ms is None
                                    else max(self.newest_label_ms, other.newest_label_ms))

    # -- metrics --------------------------------------------------------------------------------

    @property
    def coverage(self) -> float:
        return min(1.0, self.labels / self.predictions) if self.predictions else 0.0

    def metrics(self, baseline: PerformanceAccumulator | None = None) -> dict[str, float]:
        """The window's performance (only the metrics its rows support), label counts and delays."""
        out: dict[str, float] = {"labels": float(self.labels), "predictions": float(self.predictions),
                                 "label_coverage": self.coverage, "expired_unlabelled": float(self.expired)}
        if self.labels:
            q = self.delay.quantiles([0.5, 0.95])
            out.update(label_delay_mean_seconds=self.delay_sum / self.labels,
                       label_delay_p50_seconds=float(q[0]), label_delay_p95_seconds=float(q[1]))
        if self.task == "classification":
            out.update(self._classification())
            if baseline is not None and baseline.label_classes.n and self.label_classes.n:
                cats = sorted(k for k in baseline.label_classes.counts if k != "__other__")
                out["label_psi"] = psi(np.asarray(baseline.label_classes.vector(cats), dtype=np.float64),
                                       np.asarray(self.label_classes.vector(cats), dtype=np.float64))
        else:
            out.update(self._regression())
            if baseline is not None and baseline.label_values.n > 1 and self.label_values.n:
                sd = baseline.label_values.std
                if sd > 0:
                    out["label_mean_shift"] = (self.label_values.mean - baseline.label_values.mean) / sd
        return out

    def _classification(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.n_class:
            tp, fp, fn = self.tp, self.fp, self.fn
            out.update(accuracy=self.correct / self.n_class,
                       precision=tp / (tp + fp) if tp + fp else 0.0,
                       recall=tp / (tp + fn) if tp + fn else 0.0,
                       f1=2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
                       predicted_positive_rate=(tp + fp) / self.n_class)
        if self.label_values.n:
            out["positive_rate"] = self.label_values.mean
        if self.n_scored:
            out.update(log_loss=self.log_loss_sum / self.n_scored, brier=self.brier_sum / self.n_scored,
                       ece=float(np.abs(self.cal_p - self.cal_y).sum()) / self.n_scored)
            auc = roc_auc_from_histograms(self.pos_hist, self.neg_hist)
            if auc is not None:
                out["roc_auc"], out["roc_auc_error_bound"] = auc
        return out

    def _regression(self) -> dict[str, float]:
        if not self.n_reg:
            return {}
        n = self.n_reg
        return {"mae": self.abs_sum / n, "rmse": math.sqrt(self.sq_sum / n), "bias": self.err_sum / n,
                "label_mean": self.label_values.mean}

    # -- snapshot -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {name: getattr(self, name) for name in _SUMS}
        d.update(task=self.task, newest_label_ms=self.newest_label_ms, delay_sum=self.delay_sum,
                 pos_hist=_sparse(self.pos_hist), neg_hist=_sparse(self.neg_hist), cal_n=self.cal_n.tolist(),
                 cal_p=self.cal_p.tolist(), cal_y=self.cal_y.tolist(), label_classes=self.label_classes.to_dict(),
                 label_values=self.label_values.to_dict(), delay=self.delay.to_dict())
        return d

    @classmethod
    def from_dict(cls, config: PerformanceConfig, d: dict[str, Any]) -> PerformanceAccumulator:
        acc = cls(config)
        for name in _SUMS:
            setattr(acc, name, type(getattr(acc, name))(d[name]))
        acc.newest_label_ms = d.get("newest_label_ms")
        acc.delay_sum = float(d["delay_sum"])
        if len(d["cal_n"]) == acc.cal_n.size and d["pos_hist"][0] == acc.pos_hist.size:
            acc.pos_hist, acc.neg_hist = _dense(d["pos_hist"]), _dense(d["neg_hist"])
            acc.cal_n = np.asarray(d["cal_n"], dtype=np.int64)
            acc.cal_p, acc.cal_y = np.asarray(d["cal_p"]), np.asarray(d["cal_y"])
        acc.label_classes = CategoryCounts.from_dict(d["label_classes"])
        acc.label_values = Moments.from_dict(d["label_values"])
        acc.delay = QuantileSketch.from_dict(d["delay"])
        return acc


def roc_auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float] | None:
    """(AUC, error bound) from per-class counts over the same ascending score bins; None if a class is absent.

    AUC = P(score_pos > score_neg) + 0.5 P(tie): pairs in different bins are ordered
    exactly, pairs in the same bin count one half. The exact AUC can differ only on
    those same-bin pairs, by at most half of each, hence the bound.
    """
    p_total, n_total = int(pos.sum()), int(neg.sum())
    if p_total == 0 or n_total == 0:
        return None
    below = np.concatenate([[0], np.cumsum(neg)[:-1]]).astype(np.float64)
    pairs = float(p_total) * float(n_total)
    same = float(np.dot(pos.astype(np.float64), neg.astype(np.float64)))
    auc = (float(np.dot(pos.astype(np.float64), below)) + 0.5 * same) / pairs
    return auc, 0.5 * same / pairs


def _as_number(label: object) -> float | None:
    if isinstance(label, bool):
        return 1.0 if label else 0.0
    if isinstance(label, int | float):
        return float(label)
    try:
        x = float(str(label))
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _sparse(a: np.ndarray) -> list[int]:
    """[size, i0, c0, i1, c1, ...]: score histograms are mostly empty bins."""
    nz = np.flatnonzero(a)
    return [int(a.size), *np.column_stack([nz, a[nz]]).ravel().tolist()]


def _dense(s: list[int]) -> np.ndarray:
    out = np.zeros(int(s[0]), dtype=np.int64)
    pairs = np.asarray(s[1:], dtype=np.int64).reshape(-1, 2)
    out[pairs[:, 0]] = pairs[:, 1]
    return out

"""A seeded prediction stream with delayed labels and an accuracy drop, plus the offline reference computation.

Predictions: model ``churn``, 50 events/s, windows of 10 s, 12 windows. Before
``CHANGE_AT`` the label follows the score (accurate model); after it the world
changes and labels mostly ignore the score (accuracy drops). Each label arrives
0.5 to 35 s after its prediction (up to 3.5 windows late); 10% never arrive.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, log_loss, precision_score, recall_score

START = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = 10
RATE = 50
WINDOWS = 12
CHANGE_AT = 60  # seconds after START
NEVER = 0.10
MAX_DELAY = 35.0


@dataclass
class Labelled:
    predictions: list[dict[str, Any]]
    labels: list[dict[str, Any]]  # in label-time order
    ticks: list[dict[str, Any]]  # predictions in a later window, so the watermark closes all 12 windows

    def prediction_messages(self) -> list[tuple[bytes, bytes]]:
        return [(b"churn", orjson.dumps(e)) for e in self.predictions + self.ticks]

    def label_messages(self) -> list[tuple[bytes, bytes]]:
        return [(b"churn", orjson.dumps(e)) for e in self.labels]


def model_config(**performance: Any) -> dict[str, Any]:
    perf = {"positive_class": "1", "min_label_coverage": 0.85, "label_ttl_seconds": 60, "max_pending_labels": 5000,
            "baseline_windows": 2}
    perf.update(performance)
    return {
        "model_id": "churn", "owner": "growth-ml",
        "features": [{"name": "x1", "kind": "numeric"}, {"name": "plan", "kind": "categorical"}],
        "window": {"size_seconds": WINDOW},
        "reference": {"from_stream_windows": 2},
        "rules": [{"id": "acc-drop", "metric": "delta.accuracy", "comparison": "<=",
                   "thresholds": {"warning": -0.1, "critical": -0.2}, "min_samples": 100}],
        "renotify_windows": 1,
        "performance": perf,
    }


def labelled_stream(seed: int = 17) -> Labelled:
    rng = np.random.default_rng(seed)
    n = WINDOWS * WINDOW * RATE
    preds: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for i in range(n):
        t = i / RATE
        ts = START + timedelta(seconds=t)
        x1 = float(rng.normal())
        score = 1.0 / (1.0 + math.exp(-2.5 * x1))
        p_true = score if t < CHANGE_AT else 0.5 + 0.1 * math.tanh(x1)  # after the change labels ignore the score
        y = int(rng.random() < p_true)
        eid = f"churn-{seed}-{i}"
        preds.append({"event_id": eid, "model_id": "churn", "model_version": "v1", "timestamp": ts.isoformat(),
                      "features": {"x1": round(x1, 6), "plan": ["a", "b", "c"][int(rng.integers(3))]},
                      "prediction": {"score": round(score, 6)}, "latency_ms": round(float(rng.gamma(3.0, 5.0)), 3)})
        delay = float(rng.uniform(0.5, MAX_DELAY))
        if rng.random() >= NEVER:
            labels.append({"event_id": eid, "model_id": "churn", "label": y,
                           "timestamp": (ts + timedelta(seconds=delay)).isoformat()})
    labels.sort(key=lambda e: e["timestamp"])
    tick_at = START + timedelta(seconds=WINDOWS * WINDOW + WINDOW + 1)
    ticks = [{"event_id": f"tick-{k}", "model_id": "churn", "model_version": "v1",
              "timestamp": (tick_at + timedelta(seconds=k / RATE)).isoformat(),
              "features": {"x1": 0.0, "plan": "a"}, "prediction": {"score": 0.5}} for k in range(5)]
    return Labelled(predictions=preds, labels=labels, ticks=ticks)


def offline_window_metrics(stream: Labelled) -> dict[datetime, dict[str, float]]:
    """Per window (by prediction time): metrics on the joined rows, computed with scikit-learn."""
    by_id = {p["event_id"]: p for p in stream.predictions}
    rows: dict[datetime, list[tuple[float, int]]] = {}
    counts: dict[datetime, int] = {}
    for p in stream.predictions:
        w = _window_of(p["timestamp"])
        counts[w] = counts.get(w, 0) + 1
    for lab in stream.labels:
        p = by_id[lab["event_id"]]
        rows.setdefault(_window_of(p["timestamp"]), []).append((p["prediction"]["score"], int(lab["label"])))
    out: dict[datetime, dict[str, float]] = {}
    for w, r in sorted(rows.items()):
        score = np.array([s for s, _ in r])
        y = np.array([t for _, t in r])
        pred = (score >= 0.5).astype(int)
        out[w] = {"accuracy": accuracy_score(y, pred), "precision": precision_score(y, pred, zero_division=0),
                  "recall": recall_score(y, pred, zero_division=0), "f1": f1_score(y, pred, zero_division=0),
                  "brier": brier_score_loss(y, score), "log_loss": log_loss(y, score, labels=[0, 1]),
                  "labels": float(len(r)), "label_coverage": len(r) / counts[w]}
        from sklearn.metrics import roc_auc_score

        out[w]["roc_auc"] = roc_auc_score(y, score)
    return out


def _window_of(timestamp: str) -> datetime:
    t = datetime.fromisoformat(timestamp)
    secs = int((t - START).total_seconds()) // WINDOW * WINDOW
    return START + timedelta(seconds=secs)

"""The engine joins delayed labels: performance per window equals the offline result, alerts hit the right windows."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from helpers import FakeClock
from labelled import CHANGE_AT, START, WINDOW, WINDOWS, labelled_stream, model_config, offline_window_metrics

from stream_monitor.config import config_from_dict
from stream_monitor.contracts.events import LabelEvent, PredictionEvent
from stream_monitor.engine import Engine
from stream_monitor.engine_types import EngineOutput

EXACT = 1e-9


def run_interleaved(eng: Engine, stream, chunk: int = 150) -> tuple[EngineOutput, dict[datetime, float]]:
    """Feed predictions and labels in event-time order, in chunks; note each window's provisional flag at close."""
    items = [(p["timestamp"], "p", p) for p in stream.predictions + stream.ticks]
    items += [(lab["timestamp"], "l", lab) for lab in stream.labels]
    items.sort(key=lambda x: (datetime.fromisoformat(x[0]), x[1]))
    total = EngineOutput()
    at_close: dict[datetime, float] = {}
    for i in range(0, len(items), chunk):
        part = items[i:i + chunk]
        preds = [PredictionEvent.model_validate(e) for _, k, e in part if k == "p"]
        labs = [LabelEvent.model_validate(e) for _, k, e in part if k == "l"]
        out = eng.process(preds)
        for r in out.reports:
            at_close[r.window_start] = r.performance.get("provisional", -1.0)
        total.extend(out)
        total.extend(eng.process_labels(labs))
    total.extend(eng.flush())
    return total, at_close


@pytest.fixture(scope="module")
def result():
    stream = labelled_stream()
    eng = Engine(config_from_dict({"models": [model_config()]}), clock=FakeClock())
    out, at_close = run_interleaved(eng, stream)
    return stream, eng, out, at_close


def test_window_performance_equals_sklearn_on_the_joined_rows(result) -> None:
    stream, _eng, out, _ = result
    offline = offline_window_metrics(stream)
    reports = {r.window_start: r for r in out.reports if r.window_start < START + timedelta(seconds=WINDOWS * WINDOW)}
    assert sorted(reports) == sorted(offline) and len(reports) == WINDOWS
    for w, expected in offline.items():
        got = reports[w].performance
        for name in ("accuracy", "precision", "recall", "f1", "brier", "log_loss", "labels", "label_coverage"):
            assert abs(got[name] - expected[name]) < EXACT, (w, name)
        assert abs(got["roc_auc"] - expected["roc_auc"]) <= got["roc_auc_error_bound"] + 1e-12
        assert got["roc_auc_error_bound"] < 2e-3


def test_provisional_flag_clears_as_labels_arrive(result) -> None:
    _stream, _eng, out, at_close = result
    windows = [START + timedelta(seconds=k * WINDOW) for k in range(WINDOWS)]
    assert all(at_close[w] == 1.0 for w in windows), "labels lag: every window closes provisional"
    final = {r.window_start: r.performance for r in out.reports}
    assert all(final[w]["provisional"] == 0.0 and final[w]["label_coverage"] >= 0.85 for w in windows)
    assert len(out.updates) > WINDOWS, "late labels update closed windows"


def test_performance_alerts_fire_for_the_windows_after_the_change_point(result) -> None:
    _stream, _eng, out, _ = result
    perf = [a for a in out.alerts if a.kind == "performance" and a.status == "firing"]
    starts = sorted({a.window_start for a in perf})
    assert starts == [START + timedelta(seconds=s) for s in range(CHANGE_AT, WINDOWS * WINDOW, WINDOW)]
    first = min(perf, key=lambda a: a.window_start)
    assert first.metric == "delta.accuracy" and first.severity == "critical" and first.owner == "growth-ml"
    assert first.evidence["provisional"] is False and first.evidence["label_coverage"] >= 0.85
    assert len({a.incident_id for a in perf}) == 1
    assert not [a for a in out.alerts if a.kind in ("feature_drift", "prediction_drift")]


def test_unlabelled_predictions_are_counted_and_the_buffer_drains(result) -> None:
    stream, eng, out, _ = result
    n_pred = len(stream.predictions) + len(stream.ticks)
    assert out.labels_joined["churn"] == len(stream.labels) and out.labels_unmatched["churn"] == 0
    expired = out.labels_expired[("churn", "ttl")]
    assert expired + eng.models["churn"].outcomes.pending == n_pred - len(stream.labels)
    assert out.labels_expired[("churn", "capacity")] == 0


def test_a_small_cap_drops_the_oldest_waiting_predictions_and_counts_them() -> None:
    stream = labelled_stream()
    eng = Engine(config_from_dict({"models": [model_config(max_pending_labels=300)]}), clock=FakeClock())
    out, _ = run_interleaved(eng, stream)
    assert eng.models["churn"].outcomes.pending <= 300
    dropped = out.labels_expired[("churn", "capacity")]
    assert dropped > 0 and out.labels_unmatched["churn"] > 0
    assert out.labels_joined["churn"] + out.labels_unmatched["churn"] == len(stream.labels)

"""The pure engine: windows and watermark, late events, reference from the stream, rules, determinism."""
from __future__ import annotations

from datetime import timedelta

import orjson
from helpers import DRIFTED, START, drifted_stream, monitor_config

from stream_monitor.config import config_from_dict
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.engine import Engine
from stream_monitor.simulate import TrafficSimulator


def events(sim: TrafficSimulator, seconds: float, rate: int = 100, offset: float = 0.0) -> list[PredictionEvent]:
    start = START + timedelta(seconds=offset)
    return [PredictionEvent.model_validate_json(v) for _k, v, _ in sim.messages(start, int(seconds * rate), rate)]


def engine(**model_overrides: object) -> Engine:
    cfg = monitor_config()
    cfg["models"][0].update(model_overrides)
    return Engine(config_from_dict(cfg))


def test_windows_close_when_the_watermark_passes_their_end() -> None:
    eng = engine()
    out = eng.process(events(TrafficSimulator(seed=1), 9.99))
    assert out.reports == [] and out.processed["credit-risk"] == 999
    out = eng.process(events(TrafficSimulator(seed=2), 0.05, offset=10.0))
    assert [r.role for r in out.reports] == ["reference"]
    assert out.reports[0].n_events == 999 and out.reports[0].window_start == START


def test_late_events_are_counted_not_folded_into_a_closed_window() -> None:
    eng = engine()
    sim = TrafficSimulator(seed=1)
    eng.process(events(sim, 25))  # windows [0,10) and [10,20) closed
    late = eng.process(events(sim, 1, offset=5))
    assert late.late["credit-risk"] == 100 and late.processed["credit-risk"] == 0


def test_allowed_lateness_keeps_a_window_open() -> None:
    eng = engine(window={"size_seconds": 10, "allowed_lateness_seconds": 5})
    sim = TrafficSimulator(seed=1)
    out = eng.process(events(sim, 12))
    assert out.reports == []  # watermark = 12 - 5 < 10
    out = eng.process(events(sim, 1, offset=9))  # late but within the allowed lateness
    assert out.late["credit-risk"] == 0 and out.processed["credit-risk"] == 100


def test_stationary_stream_raises_no_alert() -> None:
    eng = engine()
    out = eng.process(events(TrafficSimulator(seed=5), 200))
    out.extend(eng.flush())
    assert sum(r.role == "evaluated" for r in out.reports) == 18
    assert out.alerts == []
    psi = [r.features["income"].stats["psi"] for r in out.reports if r.role == "evaluated"]
    assert max(psi) < 0.05


def test_drifted_features_alert_and_the_result_does_not_depend_on_batching() -> None:
    stream = drifted_stream()
    valid = []
    for i, (_k, v) in enumerate(stream.messages):
        if i not in stream.malformed:
            valid.append(PredictionEvent.model_validate_json(v))

    def run(batch: int) -> tuple[list[str], list[str]]:
        eng = engine()
        alerts = []
        for i in range(0, len(valid), batch):
            alerts += eng.process(valid[i : i + batch]).alerts
        drifted = {f.feature for a in alerts for f in a.findings if not f.feature.startswith("prediction.")}
        return sorted(a.alert_id for a in alerts), sorted(drifted)

    ids_small, features = run(97)
    ids_large, _ = run(5000)
    assert ids_small == ids_large and ids_small
    assert set(features) == DRIFTED


def test_rules_need_min_samples() -> None:
    eng = engine(rules=[{"id": "psi", "metric": "psi", "thresholds": {"warning": 0.1}, "min_samples": 5000}])
    sim = TrafficSimulator(seed=3, drift_at=START + timedelta(seconds=30), drift_features=("income",))
    out = eng.process(events(sim, 60))
    out.extend(eng.flush())
    assert out.alerts == [], "1,000 events per window is below min_samples=5000: insufficient, not drift"


def test_severity_levels_and_declared_actions() -> None:
    eng = engine(rules=[{"id": "psi", "metric": "psi", "thresholds": {"info": 0.01, "warning": 0.1, "critical": 100},
                         "actions": {"info": "none", "warning": "escalate"}, "features": ["income"]}])
    sim = TrafficSimulator(seed=3, drift_at=START + timedelta(seconds=30), drift_features=("income",))
    out = eng.process(events(sim, 45))
    out.extend(eng.flush())
    drifted = [a for a in out.alerts if a.window_start >= START + timedelta(seconds=30)]
    assert drifted and all(a.severity == "warning" and a.action == "escalate" for a in drifted)
    assert all(a.feature == "income" for a in out.alerts)


def test_alert_serialises_with_class_alias_free_fields() -> None:
    eng = engine()
    sim = TrafficSimulator(seed=3, drift_at=START + timedelta(seconds=30), drift_features=("income",))
    out = eng.process(events(sim, 45))
    alert = out.alerts[0]
    body = orjson.loads(alert.model_dump_json())
    for field in ("alert_id", "model_id", "model_version", "kind", "metric", "feature", "slice", "window_start",
                  "window_end", "value", "threshold", "severity", "action", "reference_version", "evidence",
                  "created_at"):
        assert field in body

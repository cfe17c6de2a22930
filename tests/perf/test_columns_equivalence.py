"""The columnar hot path gives the engine's per-event results: same windows, counts and alert ids."""
from __future__ import annotations

import contextlib
from datetime import datetime

import orjson
from helpers import drifted_stream, monitor_config

from stream_monitor.columns import columns_from_events
from stream_monitor.config import config_from_dict
from stream_monitor.contracts.batch import encode_json
from stream_monitor.contracts.decode import EventDecoder
from stream_monitor.contracts.records import RecordDecoder
from stream_monitor.engine import Engine
from stream_monitor.errors import EventRejected


def _summary(out_reports: list) -> list:  # type: ignore[type-arg]
    return [(r.model_id, r.model_version, r.window_start, r.n_events, r.role,
             sorted((k, f.n) for k, f in r.features.items())) for r in out_reports]


def test_process_columns_matches_process_on_the_same_rows() -> None:
    cfg = config_from_dict(monitor_config())
    stream = drifted_stream()
    values = [v for _k, v in stream.messages]
    slow, fast = Engine(cfg), Engine(cfg)
    decoder = EventDecoder(cfg, slow.feature_kinds())
    records = RecordDecoder.for_engine(fast)
    a_reports, b_reports, a_alerts, b_alerts = [], [], [], []
    for i in range(0, len(values), 700):
        events = []
        for v in values[i : i + 700]:
            with contextlib.suppress(EventRejected):
                events.append(decoder.decode(v))
        out = slow.process(events)
        a_reports += out.reports
        a_alerts += out.alerts
        out = fast.process_columns(records.decode(values[i : i + 700]).batches)
        b_reports += out.reports
        b_alerts += out.alerts
    for eng, reps, alerts in ((slow, a_reports, a_alerts), (fast, b_reports, b_alerts)):
        out = eng.flush()
        reps += out.reports
        alerts += out.alerts
    assert _summary(a_reports) == _summary(b_reports)
    assert sorted(a.alert_id for a in a_alerts) == sorted(a.alert_id for a in b_alerts)


def test_json_batch_message_equals_its_rows_as_events() -> None:
    cfg = config_from_dict(monitor_config(service={"max_event_bytes": 2_000_000}))
    stream = drifted_stream()
    rows = [orjson.loads(v) for i, (_k, v) in enumerate(stream.messages[:3000]) if i not in stream.malformed]
    engine = Engine(cfg)
    records = RecordDecoder.for_engine(engine)
    names = engine.models["credit-risk"]
    batch = {"model_id": "credit-risk", "model_version": "v1", "event_id": [r["event_id"] for r in rows],
             "timestamp_ms": [int(datetime.fromisoformat(r["timestamp"]).timestamp() * 1000) for r in rows],
             "features": {k: [r["features"].get(k) for r in rows] for k in rows[0]["features"]},
             "prediction": {"score": [r["prediction"]["score"] for r in rows],
                            "class": [r["prediction"]["class"] for r in rows]}}
    decoded = records.decode([encode_json(batch)])
    assert decoded.rejected == [] and decoded.valid == len(rows)
    per_event = records.decode([orjson.dumps(r) for r in rows]).batches[0]
    got = decoded.batches[0]
    assert got.ts_ms.tolist() == per_event.ts_ms.tolist()
    for name in names.numeric_features:
        assert got.numeric[name].tolist() == per_event.numeric[name].tolist() or name == "employment_years"
    for name in names.categorical_features:
        assert got.categorical[name] == per_event.categorical[name]
    bad = dict(batch, prediction={"score": [None] * len(rows)})
    assert records.decode([encode_json(bad)]).rejected[0][1].reason == "schema"
    assert columns_from_events("credit-risk", names.numeric_features, names.categorical_features, []).ts_ms.size == 0

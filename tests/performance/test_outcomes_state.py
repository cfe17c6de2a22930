"""Outcome state survives a checkpoint: a restored engine ends with the same performance and alerts."""
from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from labelled import labelled_stream, model_config

from stream_monitor import state
from stream_monitor.columns import ColumnBatch
from stream_monitor.config import config_from_dict
from stream_monitor.contracts.arrow import to_arrow
from stream_monitor.contracts.events import LabelEvent, PredictionEvent
from stream_monitor.contracts.records import RecordDecoder
from stream_monitor.engine import Engine
from stream_monitor.engine_types import EngineOutput


def clock() -> datetime:
    return datetime(2026, 3, 2, tzinfo=UTC)


def feed(eng: Engine, items: list, out: EngineOutput) -> None:
    for i in range(0, len(items), 200):
        part = items[i:i + 200]
        out.extend(eng.process([PredictionEvent.model_validate(e) for _, k, e in part if k == "p"]))
        out.extend(eng.process_labels([LabelEvent.model_validate(e) for _, k, e in part if k == "l"]))


def test_a_restored_engine_finishes_like_the_uninterrupted_one() -> None:
    stream = labelled_stream(seed=23)
    items = sorted([(p["timestamp"], "p", p) for p in stream.predictions + stream.ticks]
                   + [(lab["timestamp"], "l", lab) for lab in stream.labels],
                   key=lambda x: (datetime.fromisoformat(x[0]), x[1]))
    cfg = config_from_dict({"models": [model_config()]})
    whole, whole_out = Engine(cfg, clock=clock), EngineOutput()
    feed(whole, items, whole_out)
    whole_out.extend(whole.flush())

    first, out = Engine(cfg, clock=clock), EngineOutput()
    cut = len(items) // 2
    feed(first, items[:cut], out)
    assert first.models["churn"].outcomes.pending > 0 and first.models["churn"].outcomes.windows
    doc = state.decode_document(state.encode_document(state.snapshot_models(first, ["churn"])))
    second = Engine(cfg, clock=clock)
    assert state.restore_models(second, doc) == ["churn"]
    feed(second, items[cut:], out)
    out.extend(second.flush())

    def final(o: EngineOutput) -> dict:
        """Each window's last state: a window closed before the cut lives on as the restored engine's object."""
        return {r.window_start: r.performance for r in [*o.reports, *o.updates]}

    assert final(out) == final(whole_out) or _close(final(out), final(whole_out))
    perf = sorted(a.alert_id for a in out.alerts if a.kind == "performance")
    assert perf and perf == sorted(a.alert_id for a in whole_out.alerts if a.kind == "performance")
    assert sum(out.labels_joined.values()) == sum(whole_out.labels_joined.values()) == len(stream.labels)


def _close(a: dict, b: dict) -> bool:
    """Equal up to float rounding (KLL delay sketches may differ after a serialisation round trip)."""
    assert a.keys() == b.keys()
    for w in a:
        assert a[w].keys() == b[w].keys(), w
        for k in a[w]:
            if not k.startswith("label_delay"):
                assert abs(a[w][k] - b[w][k]) < 1e-9, (w, k)
    return True


def test_every_decoder_path_carries_event_ids_latency_and_values() -> None:
    cfg = config_from_dict({"models": [model_config()]})
    eng = Engine(cfg)
    stream = labelled_stream(seed=3)
    events = stream.predictions[:50]
    events[3] = dict(events[3], prediction={"score": 0.2, "value": 7.5})
    del events[4]["latency_ms"]
    decoder = RecordDecoder.for_engine(eng)
    import orjson

    per_event = decoder.decode([orjson.dumps(e) for e in events]).batches[0]
    columns = {"model_id": "churn", "model_version": "v1", "event_id": [e["event_id"] for e in events],
               "timestamp_ms": [int(datetime.fromisoformat(e["timestamp"]).timestamp() * 1000) for e in events],
               "features": {name: [e["features"][name] for e in events] for name in ("x1", "plan")},
               "prediction": {"score": [e["prediction"]["score"] for e in events],
                              "value": [e["prediction"].get("value") for e in events]},
               "latency_ms": [e.get("latency_ms") for e in events]}
    batched = decoder.decode([orjson.dumps({"prediction_batch": columns})]).batches[0]
    arrow = decoder.decode([to_arrow(columns)]).batches[0]
    pydantic = eng.columns("churn", [PredictionEvent.model_validate(e) for e in events])
    for b in (per_event, batched, arrow, pydantic):
        assert isinstance(b, ColumnBatch)
        assert b.event_ids == [e["event_id"] for e in events]
        np.testing.assert_array_equal(b.latency_ms, [e.get("latency_ms", np.nan) for e in events])
        np.testing.assert_array_equal(b.values, [e["prediction"].get("value", np.nan) for e in events])

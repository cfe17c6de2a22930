"""Engine snapshot / restore: complete, faithful, versioned, and safe to read from an untrusted topic."""
from __future__ import annotations

import base64
import dataclasses
import os
import pickle

import pytest
from faults.oracle import state_digest, window_diffs
from helpers import drifted_stream, monitor_config
from prometheus_client import CollectorRegistry

from stream_monitor import state
from stream_monitor.config import config_from_dict
from stream_monitor.engine import Engine, ModelMonitor
from stream_monitor.policy.engine import PolicyEngine, SeriesState
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sinks.files import CountingDeadLetterSink
from stream_monitor.sinks.kafka import window_record
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.pipeline import Pipeline

MODEL = "credit-risk"


class _Alerts:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def publish(self, alert) -> None:  # type: ignore[no-untyped-def]
        self.ids.append(alert.alert_id)

    def flush(self) -> int:
        return 0


def _config(**model: object):  # type: ignore[no-untyped-def]
    cfg = monitor_config()
    cfg["models"][0].update({"detectors": [{"id": "adwin-income", "type": "adwin", "signal": "income"}],
                             "slices": {"keys": ["region"], "max_values": 3}, **model})
    return config_from_dict(cfg)


def _pipeline(config) -> tuple[Pipeline, _Alerts]:  # type: ignore[no-untyped-def]
    alerts = _Alerts()
    return Pipeline(Engine(config), MonitorMetrics(CollectorRegistry()), alerts, CountingDeadLetterSink()), alerts


def _feed(pipeline: Pipeline, values: list[bytes], start: int = 0, batch: int = 400) -> list:  # type: ignore[type-arg]
    reports = []
    for i in range(0, len(values), batch):
        recs = [RawRecord(value=v, key=None, topic="t", partition=0, offset=start + i + j)
                for j, v in enumerate(values[i:i + batch])]
        reports.extend(pipeline.handle(recs).reports)
    return reports


def test_every_engine_field_is_covered_by_the_snapshot() -> None:
    """A new ModelMonitor / policy field must be added to stream_monitor/state.py, or restarts silently reset it."""
    assert state.uncovered_fields() == set()
    assert {f.name for f in dataclasses.fields(SeriesState)} == {"keys", "incident"}
    assert set(vars(PolicyEngine())) == {"series"}
    assert {f.name for f in dataclasses.fields(ModelMonitor)} >= set(state.MODEL_FIELDS)


@pytest.mark.parametrize("cut", [1500, 2600, 7000])
def test_a_restored_engine_continues_exactly_like_the_uninterrupted_one(cut: int) -> None:
    """Cut before, just after and well after the stream-built reference: same windows, alerts and exact state.

    Before the reference exists (cut=1500) its bin edges come from KLL quantiles of panes
    that both engines go on updating with randomised compaction, so only its identity,
    the window sizes and the alert ids must agree, not the binned values.
    """
    values = [v for _k, v in drifted_stream().messages]
    config = _config()
    a, a_alerts = _pipeline(config)
    b, b_alerts = _pipeline(config)
    _feed(a, values[:cut])
    _feed(b, values[:cut])  # b's sketches are a's twin up to here; then b is replaced by a's snapshot
    doc = state.decode_document(state.encode_document(state.snapshot_models(a.engine, [MODEL])))
    restored, r_alerts = _pipeline(config)
    assert state.restore_models(restored.engine, doc) == [MODEL]
    assert state_digest(state.snapshot_models(restored.engine, [MODEL])) == state_digest(doc)

    want = [window_record(r) for r in _feed(a, values[cut:], start=cut)]
    got = [window_record(r) for r in _feed(restored, values[cut:], start=cut)]
    assert len(got) == len(want) > 0
    import orjson

    reference_in_snapshot = doc["models"][MODEL]["fields"]["reference"] is not None
    for g, w in zip(got, want, strict=True):
        gw, ww = orjson.loads(g), orjson.loads(w)
        if reference_in_snapshot:
            assert window_diffs(gw, ww) == []
        else:
            assert (gw["n_events"], gw["reference_version"]) == (ww["n_events"], ww["reference_version"])
    assert r_alerts.ids == a_alerts.ids[len(a_alerts.ids) - len(r_alerts.ids):]
    if reference_in_snapshot:
        assert state_digest(state.snapshot_models(restored.engine, [MODEL])) == state_digest(
            state.snapshot_models(a.engine, [MODEL]))
    ref_a, ref_r = a.engine.models[MODEL].reference, restored.engine.models[MODEL].reference
    assert ref_a is not None and ref_r is not None and ref_r.profile_id == ref_a.profile_id


def test_detectors_and_policy_state_survive_a_restore() -> None:
    values = [v for _k, v in drifted_stream().messages]
    config = _config()
    a, _ = _pipeline(config)
    _feed(a, values[:8000])
    doc = state.snapshot_models(a.engine, [MODEL])
    b, _ = _pipeline(config)
    state.restore_models(b.engine, state.decode_document(state.encode_document(doc)))
    da, db = a.engine.models[MODEL].detectors, b.engine.models[MODEL].detectors
    assert set(da) == set(db) and da
    for key in da:  # river's own state, not only the wrapper
        assert pickle.dumps(da[key]) == pickle.dumps(db[key])
    tail = _feed(a, values[8000:], 8000), _feed(b, values[8000:], 8000)
    assert [r.detections for r in tail[0]] == [r.detections for r in tail[1]]
    assert a.engine.policy.series.keys() == b.engine.policy.series.keys()
    assert a.engine.models[MODEL].slice_values == b.engine.models[MODEL].slice_values


def test_a_model_can_be_dropped_and_restored_elsewhere() -> None:
    values = [v for _k, v in drifted_stream().messages]
    a, _ = _pipeline(_config())
    _feed(a, values[:5000])
    doc = state.snapshot_models(a.engine, [MODEL])
    state.reset_model(a.engine, MODEL, None)
    mm = a.engine.models[MODEL]
    assert mm.panes == {} and mm.watermark.max_event_ms is None and mm.reference is None
    assert not [k for k in a.engine.policy.series if k[0] == MODEL]
    state.restore_models(a.engine, doc)
    assert state_digest(state.snapshot_models(a.engine, [MODEL])) == state_digest(doc)


def test_snapshots_from_a_newer_format_or_another_configuration_are_not_applied() -> None:
    values = [v for _k, v in drifted_stream().messages]
    a, _ = _pipeline(_config())
    _feed(a, values[:3000])
    doc = state.snapshot_models(a.engine, [MODEL])
    with pytest.raises(state.StateError, match="newer"):
        state.restore_models(Engine(_config()), doc | {"format_version": state.STATE_FORMAT_VERSION + 1})
    with pytest.raises(state.StateError, match="format"):
        state.restore_models(Engine(_config()), {"format": "something else"})
    other = Engine(_config(window={"size_seconds": 20}))
    assert state.restore_models(other, doc) == [], "a different window size: state not restored"
    assert other.models[MODEL].panes == {}


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned",))


class _Dunder:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        from stream_monitor.detectors import RiverDetector

        return (getattr, (RiverDetector, "__init__"))  # the first step out of river towards module globals


def test_the_unpickler_refuses_anything_outside_the_detector_allow_list() -> None:
    evil = base64.b64encode(pickle.dumps(_Evil())).decode()
    with pytest.raises(state.StateError, match="allow-list"):
        state.load_object(evil)
    sneaky = base64.b64encode(pickle.dumps(_Dunder())).decode()
    with pytest.raises(state.StateError, match="getattr"):
        state.load_object(sneaky)
    from stream_monitor.detectors import make_detector

    det = make_detector("kswin", {})
    assert type(state.load_object(state.dump_object(det))).__name__ == "RiverDetector"


def test_checkpoint_size_per_model_is_bounded_and_reported() -> None:
    """Figure for docs/guarantees.md: bytes of one model's checkpoint (13 features + prediction, 1-2 open panes)."""
    import zlib

    values = [v for _k, v in drifted_stream().messages]
    for label, config in (("no slices", config_from_dict(monitor_config())), ("4 slices + detector", _config())):
        a, _ = _pipeline(config)
        _feed(a, values[:7500])
        raw = state.encode_document(state.snapshot_models(a.engine, [MODEL]))
        size = len(zlib.compress(raw, 6))
        print(f"\ncheckpoint of one model ({label}): {len(raw)} bytes JSON, {size} bytes compressed")
        assert size < 1_000_000

"""The service end to end on a real Kafka-protocol broker: drift in, alerts, dead letters and metrics out."""
from __future__ import annotations

import threading
from collections import Counter

import pytest
import yaml
from helpers import (
    DRIFT_AFTER,
    DRIFTED,
    START,
    Stream,
    committed_total,
    drifted_stream,
    monitor_config,
    sample,
    scrape,
    wait_for,
    write_jsonl,
)
from prometheus_client import CollectorRegistry

from stream_monitor.cli import main
from stream_monitor.config import config_from_dict
from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.service import MonitorService
from stream_monitor.testing import consume_all, produce_all, unique_name


@pytest.fixture(scope="module")
def stream() -> Stream:
    return drifted_stream()


def test_service_detects_injected_drift_on_a_real_broker(kafka_bootstrap, topic_factory, stream, tmp_path):
    preds, alerts_topic, dlq_topic = topic_factory("preds", 2), topic_factory("alerts"), topic_factory("dlq")
    group = unique_name("monitor")
    settings = monitor_config(
        kafka={"bootstrap_servers": kafka_bootstrap, "group_id": group},
        topics={"predictions": preds, "alerts": alerts_topic, "dead_letter": dlq_topic},
    )
    settings["models"][0]["renotify_windows"] = 1
    cfg = config_from_dict(settings)
    produce_all(kafka_bootstrap, preds, stream.messages)

    service = MonitorService(cfg, registry=CollectorRegistry())
    port = service.serve_metrics()
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
    runner.start()
    try:
        wait_for(lambda: sample(scrape(port), "stream_monitor_windows_closed_total", role="evaluated") == 10,
                 90, "10 evaluated windows")
        text = scrape(port)
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()

    # Alerts on the topic: exactly the shifted features, only after the shift, with the contract's fields.
    n_alerts = len(service.pipeline.totals.alerts)
    msgs = consume_all(kafka_bootstrap, alerts_topic, expected=n_alerts, timeout=30)
    alerts = [AlertEvent.model_validate_json(m.value()) for m in msgs]
    assert len(alerts) == n_alerts > 0
    assert all(m.key().decode() == a.alert_id for m, a in zip(msgs, alerts, strict=True))
    assert all(a.kind == "feature_drift" and a.status == "firing" for a in alerts)
    drifted = {f.feature for a in alerts for f in a.findings if not f.feature.startswith("prediction.")}
    assert drifted == DRIFTED
    assert min(a.window_start for a in alerts).timestamp() >= START.timestamp() + DRIFT_AFTER
    ref_id = alerts[0].reference_version
    assert {a.reference_version for a in alerts} == {ref_id} and ref_id.startswith("credit-risk-s")
    assert len(alerts) == 6, "one alert per model and drifted window (renotify_windows=1)"
    assert len({a.incident_id for a in alerts}) == 1
    for a in alerts:
        psi = {f.feature for f in a.findings if f.metric == "psi" and f.slice is None}
        assert psi >= DRIFTED and psi - DRIFTED <= {"prediction.score", "prediction.class"}
    first = alerts[0]
    top = first.findings[0]
    assert top.feature in DRIFTED and top.severity == "critical" and top.value >= 0.25
    assert first.severity == "critical" and first.action == "retrain" and first.feature == top.feature
    assert first.evidence["n_current"] > 900 and first.evidence["binning"] == "exact"
    assert first.owner == "risk-ml-team" and first.model_version == "v1"
    assert first.diagnosis is not None and first.diagnosis.cause == "covariate_shift_with_prediction_impact"

    # Dead letters: every malformed record, with its reason and original position.
    dead = consume_all(kafka_bootstrap, dlq_topic, expected=len(stream.malformed), timeout=30)
    reasons = Counter(dict(m.headers())["sm.reason"].decode() for m in dead)
    assert reasons == Counter(stream.malformed.values())
    for m in dead:
        h = dict(m.headers())
        assert h["sm.source.topic"].decode() == preds and int(h["sm.source.offset"]) >= 0
        assert h["sm.error"]

    # Metrics: drift values per feature, rejects by reason, everything valid processed.
    valid = len(stream.messages) - len(stream.malformed)
    assert sample(text, "stream_monitor_events_processed_total", model_id="credit-risk") == valid
    assert sample(text, "stream_monitor_drift", feature="income", statistic="psi") > 0.25
    assert sample(text, "stream_monitor_drift", feature="age", statistic="psi") < 0.1
    for reason in stream.malformed.values():
        assert sample(text, "stream_monitor_events_rejected_total", reason=reason) == 1.0
    assert sample(text, "stream_monitor_reference_info", reference_version=ref_id) == 1.0

    # Offsets committed on shutdown cover everything consumed.
    assert committed_total(kafka_bootstrap, group, preds, 2) == len(stream.messages)

    # Replay of the same input gives the same alerts, with the same ids.
    config_path = tmp_path / "monitor.yaml"
    replay_settings = monitor_config()
    replay_settings["models"][0]["renotify_windows"] = 1
    config_path.write_text(yaml.safe_dump(replay_settings))
    input_path, out_path = tmp_path / "events.jsonl", tmp_path / "alerts.jsonl"
    write_jsonl(input_path, stream.messages)
    assert main(["replay", "-c", str(config_path), "--input", str(input_path), "--alerts-out", str(out_path)]) == 0
    replayed = [AlertEvent.model_validate_json(line) for line in out_path.read_text().splitlines()]
    assert sorted(a.alert_id for a in replayed) == sorted(a.alert_id for a in alerts)

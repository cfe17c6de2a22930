"""On the real broker: delayed labels on their own topic, performance per window, provisional flags, freshness."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import orjson
from helpers import FakeClock, sample, scrape, wait_for
from labelled import CHANGE_AT, START, WINDOW, WINDOWS, labelled_stream, model_config, offline_window_metrics
from prometheus_client import CollectorRegistry

from stream_monitor.config import config_from_dict
from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.service import MonitorService
from stream_monitor.testing import consume_all, produce_all, unique_name

EXACT = 1e-9
#: Peak pending here is ~1600: a window of predictions ahead of its labels, plus the never-labelled within the TTL.
CAP = 2500


def settings(bootstrap: str, topics: dict[str, str], **model: Any) -> dict[str, Any]:
    m = model_config(max_pending_labels=CAP)
    m.update(model)
    return {"kafka": {"bootstrap_servers": bootstrap, "group_id": unique_name("perf")}, "topics": topics,
            "service": {"metrics_host": "127.0.0.1", "metrics_port": 0, "poll_timeout_seconds": 0.1,
                        "commit_interval_seconds": 0.2, "lag_refresh_seconds": 0.5},
            "checkpoint": {"backend": "none"}, "models": [m]}


def test_delayed_labels_on_a_real_broker_give_offline_performance_and_alert_after_the_change(
        kafka_bootstrap, topic_factory) -> None:
    stream = labelled_stream()
    names = {k: topic_factory(k) for k in ("predictions", "labels", "alerts", "dead_letter", "windows")}
    service = MonitorService(config_from_dict(settings(kafka_bootstrap, names)), registry=CollectorRegistry(),
                             clock=FakeClock())
    port = service.serve_metrics()
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
    runner.start()
    preds, labels = stream.prediction_messages(), stream.label_messages()
    label_ts = [datetime.fromisoformat(e["timestamp"]) for e in stream.labels]
    bad = [(b"churn", b'{"event_id": "x", "model_id": "churn", "label": 1'),
           (b"churn", orjson.dumps({"event_id": "x", "model_id": "nope", "label": 1, "timestamp": START.isoformat()})),
           (b"churn", orjson.dumps({"event_id": "x", "model_id": "churn", "timestamp": START.isoformat()}))]
    pending_seen: list[float] = []
    sent_p = sent_l = 0
    try:
        # Event time advances window by window: a window's predictions, then every label known by its end.
        for k in range(WINDOWS + 6):  # labels trail the last prediction by up to 35 s
            end = START + timedelta(seconds=(k + 1) * WINDOW)
            upto = min(len(stream.predictions), (k + 1) * WINDOW * 50) if k < WINDOWS else len(preds)
            if upto > sent_p:
                produce_all(kafka_bootstrap, names["predictions"], preds[sent_p:upto])
                sent_p = upto
                wait_for(lambda n=sent_p: sample(scrape(port), "stream_monitor_events_processed_total",
                                                 model_id="churn") == n, 60, f"{sent_p} predictions")
            lab_upto = sum(1 for t in label_ts if t < end)
            if lab_upto > sent_l:
                produce_all(kafka_bootstrap, names["labels"], labels[sent_l:lab_upto] + (bad if k == 3 else []))
                sent_l = lab_upto
                wait_for(lambda n=sent_l: sample(scrape(port), "stream_monitor_labels_joined_total",
                                                 model_id="churn") == n, 60, f"{sent_l} labels joined")
            pending_seen.append(sample(scrape(port), "stream_monitor_labels_pending", model_id="churn") or 0.0)
        assert sent_l == len(labels)
        text = scrape(port)
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()

    # Memory: the join buffer stayed under its cap while labels were pending; nothing was pushed out.
    assert 0 < max(pending_seen) <= CAP
    assert sample(text, "stream_monitor_labels_pending_cap", model_id="churn") == CAP
    assert sample(text, "stream_monitor_labels_expired_total", model_id="churn", reason="capacity") == 0
    assert sample(text, "stream_monitor_labels_unmatched_total", model_id="churn") == 0

    # Numbers: every window's performance equals scikit-learn on the joined rows.
    offline = offline_window_metrics(stream)
    reports = {r.window_start: r for r in service.pipeline.totals.reports}
    for w, expected in offline.items():
        got = reports[w].performance
        for name in ("accuracy", "precision", "recall", "f1", "brier", "log_loss", "labels", "label_coverage"):
            assert abs(got[name] - expected[name]) < EXACT, (w, name)
        assert abs(got["roc_auc"] - expected["roc_auc"]) <= got["roc_auc_error_bound"] < 2e-3
        assert got["provisional"] == 0.0

    # Alerts: performance alerts for exactly the windows after the change point.
    n_alerts = len(service.pipeline.totals.alerts)
    alerts = [AlertEvent.model_validate_json(m.value())
              for m in consume_all(kafka_bootstrap, names["alerts"], expected=n_alerts, timeout=30)]
    perf = [a for a in alerts if a.kind == "performance" and a.status == "firing"]
    assert sorted({a.window_start for a in perf}) == [START + timedelta(seconds=s)
                                                      for s in range(CHANGE_AT, WINDOWS * WINDOW, WINDOW)]
    assert all(a.evidence["provisional"] is False for a in perf)
    assert sample(text, "stream_monitor_performance", model_id="churn", metric="accuracy", status="settled") > 0

    # The windows topic carries each window at close (provisional) and again as labels arrive (final).
    records = [orjson.loads(m.value()) for m in consume_all(kafka_bootstrap, names["windows"], timeout=30)]
    for w in offline:
        mine = [r for r in records if r["window_start"].startswith(w.isoformat()[:19])]
        assert mine[0]["performance"]["provisional"] == 1.0 and mine[-1]["performance"]["provisional"] == 0.0

    # Bad labels are dead-lettered like bad predictions, with their source topic.
    dead = consume_all(kafka_bootstrap, names["dead_letter"], expected=3, timeout=30)
    assert sorted(dict(m.headers())["sm.reason"].decode() for m in dead) == ["bad_json", "schema", "unknown_model"]
    assert {dict(m.headers())["sm.source.topic"].decode() for m in dead} == {names["labels"]}


def test_a_silent_topic_raises_a_freshness_alert_at_the_next_check(kafka_bootstrap, topic_factory) -> None:
    stream = labelled_stream()
    names = {k: topic_factory(k) for k in ("predictions", "labels", "alerts", "dead_letter")}
    clock = FakeClock()
    cfg = settings(kafka_bootstrap, names, freshness={"max_silence_seconds": 30, "labels_max_silence_seconds": 120})
    service = MonitorService(config_from_dict(cfg), registry=CollectorRegistry(), clock=clock)
    port = service.serve_metrics()
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
    runner.start()
    try:
        produce_all(kafka_bootstrap, names["predictions"], stream.prediction_messages()[:100])
        produce_all(kafka_bootstrap, names["labels"], stream.label_messages()[:5])
        wait_for(lambda: sample(scrape(port), "stream_monitor_labels_joined_total", model_id="churn") == 5, 60,
                 "labels joined")
        assert not service.pipeline.totals.alerts
        clock.now += timedelta(seconds=31)  # predictions silent past their limit, labels not yet
        fired_at = clock.now
        firing = wait_for(lambda: [a for a in service.pipeline.totals.alerts if a.kind == "freshness"], 30,
                          "a freshness alert")
        assert [(a.feature, a.status) for a in firing] == [("predictions", "firing")]
        assert firing[0].window_end == fired_at, "raised by the first check after the limit passed"
        assert sample(scrape(port), "stream_monitor_stream_silence_seconds", model_id="churn",
                      stream="predictions") == 31.0
        produce_all(kafka_bootstrap, names["predictions"], stream.prediction_messages()[100:110])
        wait_for(lambda: [a for a in service.pipeline.totals.alerts if a.status == "resolved"], 30, "resolved")
    finally:
        stop.set()
        runner.join(30)
    published = [AlertEvent.model_validate_json(m.value())
                 for m in consume_all(kafka_bootstrap, names["alerts"], expected=2, timeout=30)]
    assert [(a.kind, a.status) for a in published] == [("freshness", "firing"), ("freshness", "resolved")]
    assert published[0].incident_id == published[1].incident_id

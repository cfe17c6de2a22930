"""Freshness in a consumer group: each instance speaks only for the streams on its own partitions.

Before, every instance tracked every configured model, so in a group of two each
model was reported silent by the instance that does not read it, all the time.
"""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from helpers import FakeClock, wait_for
from labelled import model_config
from prometheus_client import CollectorRegistry

from stream_monitor.config import config_from_dict
from stream_monitor.performance.freshness import FreshnessTracker
from stream_monitor.service import MonitorService
from stream_monitor.testing import unique_name

T0 = datetime(2026, 3, 2, tzinfo=UTC)
MODELS = ("churn-a", "churn-b")


def _models() -> list[dict[str, Any]]:
    out = []
    for model_id in MODELS:
        m = model_config()
        m.update(model_id=model_id, freshness={"max_silence_seconds": 30})
        m.pop("performance")
        m["rules"] = []
        out.append(m)
    return out


def _tracker() -> FreshnessTracker:
    cfg = config_from_dict({"models": _models()})
    return FreshnessTracker(list(cfg.models), T0)


def _firing(tracker: FreshnessTracker, at: datetime) -> set[str]:
    return {a.model_id for a in tracker.tick(at, {}) if a.status == "firing"}


def test_outside_a_group_every_stream_is_owned_and_reported() -> None:
    t = _tracker()
    t.seen("churn-a", "predictions", T0, 0)
    assert _firing(t, T0 + timedelta(seconds=60)) == set(MODELS)


def test_in_a_group_a_stream_is_reported_where_it_arrived_and_never_seen_ones_only_by_a_lone_instance() -> None:
    one, two = _tracker(), _tracker()
    for t, mine in ((one, {0}), (two, {1})):
        t.join_group()
        t.hold("predictions", mine, total=2)
    one.seen("churn-a", "predictions", T0, 0)
    one.arrived_on("churn-a", "predictions", 0)
    two.seen("churn-b", "predictions", T0, 0)
    two.arrived_on("churn-b", "predictions", 1)
    later = T0 + timedelta(seconds=60)
    assert _firing(one, later) == {"churn-a"} and _firing(two, later) == {"churn-b"}
    assert {m for m, *_ in one.gauges(later)} == {"churn-a"}  # the silence gauge follows ownership
    # Partition 1 moves to the first instance: it has never seen churn-b arrive, and now holds the whole
    # topic, so it reports it; the second instance holds nothing and reports nothing more.
    two.hold("predictions", set(), total=2)
    one.hold("predictions", {0, 1}, total=2)
    assert _firing(one, later + timedelta(seconds=1)) == {"churn-b"}
    assert _firing(two, later + timedelta(seconds=1)) == set()
    # Not alone: a stream never seen here may live on another instance's partitions.
    three = _tracker()
    three.join_group()
    three.hold("predictions", {0}, total=2)
    assert _firing(three, later) == set()


def _event(model_id: str) -> bytes:
    return orjson.dumps({"event_id": unique_name("e"), "model_id": model_id, "model_version": "v1",
                         "timestamp": "2026-03-01T00:00:00Z", "features": {"x1": 0.5, "plan": "basic"},
                         "prediction": {"score": 0.5}})


def test_two_instances_of_a_group_each_report_only_the_model_on_their_partition(
        kafka_bootstrap, topic_factory) -> None:
    from confluent_kafka import Producer

    names = {"predictions": topic_factory("predictions", partitions=2),
             **{k: topic_factory(k) for k in ("alerts", "dead_letter")}}
    config = {"kafka": {"bootstrap_servers": kafka_bootstrap, "group_id": unique_name("fresh"),
                        "settings": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}},
              "topics": names, "checkpoint": {"backend": "none"}, "models": _models(),
              "service": {"metrics_host": "127.0.0.1", "metrics_port": 0, "poll_timeout_seconds": 0.1,
                          "commit_interval_seconds": 0.2, "lag_refresh_seconds": 0.5}}
    clocks = [FakeClock(T0), FakeClock(T0)]
    services = [MonitorService(config_from_dict(config), registry=CollectorRegistry(), clock=c) for c in clocks]
    stop = threading.Event()
    runners = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s in services]
    try:
        for r in runners:
            r.start()

        def held() -> list[set[int]]:
            return [{p.partition for p in s.source.assigned} for s in services]

        wait_for(lambda: sorted(map(sorted, held())) == [[0], [1]], 120, "one partition per instance")
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for partition, model_id in enumerate(MODELS):  # churn-a on partition 0, churn-b on partition 1
            producer.produce(names["predictions"], value=_event(model_id), partition=partition)
        assert producer.flush(30) == 0
        wait_for(lambda: sum(sum(s.pipeline.totals.processed.values()) for s in services) == 2, 60,
                 "both events processed")
        owner = {model_id: next(i for i, h in enumerate(held()) if p in h) for p, model_id in enumerate(MODELS)}
        for c in clocks:
            c.now = T0 + timedelta(seconds=60)  # both streams silent for longer than their 30 s limit

        def fired() -> list[set[str]]:
            return [{a.model_id for a in s.pipeline.totals.alerts if a.kind == "freshness"} for s in services]

        # Each instance evaluates every stream at the same tick, so once each has fired, its set is complete.
        wait_for(lambda: all(fired()), 30, "a freshness alert from each instance")
        assert fired()[owner["churn-a"]] == {"churn-a"}
        assert fired()[owner["churn-b"]] == {"churn-b"}
    finally:
        stop.set()
        for r in runners:
            r.join(30)
        for s in services:
            s.producer.close()

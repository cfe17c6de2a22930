"""Section 3: end to end through the embedded broker: produce N events while the service consumes them."""
from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from bench import stream
from stream_monitor.broker import EmbeddedBroker, create_topics
from stream_monitor.service import MonitorService
from stream_monitor.testing import unique_name


def _produce(bootstrap: str, topic: str, messages: list[bytes], done: dict[str, float]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10000,
                         "queue.buffering.max.messages": 1_000_000})
    for m in messages:
        while True:
            try:
                producer.produce(topic, value=m, key=b"bench-model")
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)
    done["produced"] = time.perf_counter()


def run(n_events: int, window_seconds: float, in_process: dict[str, Any] | None) -> dict[str, Any]:
    messages = stream.json_messages(stream.block(0, n_events, n_events))
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = unique_name("bench")
        create_topics(bootstrap, {topic: 1, topic + ".alerts": 1, topic + ".dlq": 1})
        cfg = stream.config(window_seconds, kafka={"bootstrap_servers": bootstrap, "group_id": unique_name("g")},
                            topics={"predictions": topic, "alerts": topic + ".alerts",
                                    "dead_letter": topic + ".dlq"})
        cfg.service.poll_timeout_seconds = 0.05
        service = MonitorService(cfg, registry=CollectorRegistry())
        totals = service.pipeline.totals
        stop = threading.Event()
        done: dict[str, float] = {}
        lag_max = 0
        started = time.perf_counter()
        producer = threading.Thread(target=_produce, args=(bootstrap, topic, messages, done), daemon=True)
        producer.start()
        consumer = threading.Thread(target=service.run, args=(stop,), daemon=True)
        consumer.start()
        first = None
        deadline = time.monotonic() + 600
        while sum(totals.processed.values()) + sum(totals.late.values()) < n_events and time.monotonic() < deadline:
            n = sum(totals.processed.values())
            if first is None and n:
                first = time.perf_counter()
            produced_so_far = n_events if "produced" in done else None
            if produced_so_far:
                lag_max = max(lag_max, produced_so_far - n)
            time.sleep(0.005)
        finished = time.perf_counter()
        stop.set()
        consumer.join(30)
        producer.join(30)
    processed = sum(totals.processed.values())
    drained_after_produce = finished - done.get("produced", finished)
    res = {"events": n_events, "processed": processed,
           "events_per_s": processed / (finished - (first or started)),
           "wall_s": finished - started,
           "lag_s_after_last_produced": max(0.0, drained_after_produce),
           "max_backlog_events_after_produce": lag_max}
    if in_process:
        res["vs_in_process_json"] = res["events_per_s"] / in_process["engine_json"]["events_per_s"]
    return res

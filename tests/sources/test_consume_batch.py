"""The consume loop's batch path: values straight to the decoder, a full record only for a dead letter.

`KafkaSource.poll_once` no longer builds a record object per message; these tests pin
what that must not change: per-partition order and grouping, the same engine output
as the record path, and exact provenance (topic, partition, offset, key, timestamp)
on every dead letter, on a real broker.
"""
from __future__ import annotations

import threading

import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer
from helpers import committed_total, drifted_stream, monitor_config, wait_for
from prometheus_client import CollectorRegistry

from stream_monitor.config import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.errors import EventRejected
from stream_monitor.service import MonitorService
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.kafka import by_partition, consumer_config, raw_record
from stream_monitor.sources.pipeline import Pipeline
from stream_monitor.testing import consume_all, unique_name


def _msg(partition: int, offset: int, value: bytes = b"{}", topic: str = "t") -> Message:
    return Message(topic=topic, partition=partition, offset=offset, value=value, key=b"k", timestamp=(1, 1000 + offset))


def test_by_partition_keeps_order_per_partition_and_drops_errors():
    eof = Message(topic="t", partition=0, error=KafkaError(KafkaError._PARTITION_EOF))
    batch = [_msg(0, 10), _msg(1, 5), eof, _msg(0, 11), _msg(1, 6), _msg(0, 12, topic="labels")]
    groups = by_partition(batch)
    assert [(tp, [m.offset() for m in ms]) for tp, ms in groups] == [
        (("t", 0), [10, 11]), (("t", 1), [5, 6]), (("labels", 0), [12])]
    one = [_msg(3, i) for i in range(5)]
    assert by_partition(one) == [(("t", 3), one)]
    assert by_partition([eof]) == [] and by_partition([]) == []


def test_raw_record_has_the_provenance_a_dead_letter_needs():
    r = raw_record(_msg(2, 41, b"x"))
    assert r == RawRecord(value=b"x", key=b"k", topic="t", partition=2, offset=41, timestamp_ms=1041)


class _Keep:
    def __init__(self) -> None:
        self.sent: list[tuple[RawRecord, EventRejected]] = []

    def publish(self, alert: object) -> None: ...

    def send(self, record: RawRecord, error: EventRejected) -> None:
        self.sent.append((record, error))

    def flush(self) -> int:
        return 0


def test_handle_values_equals_handle_and_builds_records_only_for_rejects():
    stream = drifted_stream()
    values = [v for _k, v in stream.messages]
    recs = [RawRecord(value=v, key=None, topic="p", partition=0, offset=i) for i, v in enumerate(values)]
    outs = []
    for mode in ("records", "values"):
        cfg = config_from_dict(monitor_config())
        dlq = _Keep()
        p = Pipeline(Engine(cfg), MonitorMetrics(CollectorRegistry()), _Keep(), dlq)
        asked: list[int] = []
        for start in range(0, len(values), 500):
            if mode == "records":
                p.handle(recs[start:start + 500])
            else:
                def at(i: int, start: int = start, asked: list[int] = asked) -> RawRecord:
                    asked.append(start + i)
                    return recs[start + i]

                p.handle_values("p", values[start:start + 500], at)
        p.finish()
        outs.append((p.totals.processed, [r.window_start for r in p.totals.reports],
                     [a.alert_id for a in p.totals.alerts], [(r.offset, e.reason) for r, e in dlq.sent]))
        if mode == "values":
            assert sorted(asked) == sorted(stream.malformed), "a record is built for rejected values only"
    assert outs[0] == outs[1]
    assert [o for o, _ in outs[0][3]] == sorted(stream.malformed)


def test_dead_letters_name_the_exact_source_position_on_a_real_broker(kafka_bootstrap, topic_factory):
    preds, alerts, dlq = topic_factory("preds", 2), topic_factory("alerts"), topic_factory("dlq")
    group = unique_name("g")
    cfg = config_from_dict(monitor_config(kafka={"bootstrap_servers": kafka_bootstrap, "group_id": group},
                                          topics={"predictions": preds, "alerts": alerts, "dead_letter": dlq}))
    good = orjson.dumps({"event_id": "e", "model_id": "credit-risk", "model_version": "v1",
                         "timestamp": "2026-01-01T00:00:00Z", "features": {"income": 1.0},
                         "prediction": {"score": 0.5}})
    per_partition = {0: [good, b"{bad", good, good, b"[1]"], 1: [b"nope", good, good, good, good, b"{"]}
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for part, values in per_partition.items():
        for v in values:
            producer.produce(preds, value=v, key=f"k{part}".encode(), partition=part)
    assert producer.flush(30) == 0
    expected = {(part, off) for part, values in per_partition.items() for off, v in enumerate(values) if v != good}

    service = MonitorService(cfg, registry=CollectorRegistry())
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
    runner.start()
    try:
        dead = consume_all(kafka_bootstrap, dlq, expected=len(expected), timeout=60)
        wait_for(lambda: committed_total(kafka_bootstrap, group, preds, 2) == 11, 30, "offsets committed to the end")
    finally:
        stop.set()
        runner.join(30)
    got = set()
    for m in dead:
        h = {k: v.decode() for k, v in m.headers()}
        assert h["sm.source.topic"] == preds and h["sm.reason"] and "sm.source.timestamp_ms" in h
        part, off = int(h["sm.source.partition"]), int(h["sm.source.offset"])
        assert m.value() == per_partition[part][off] and m.key() == f"k{part}".encode()
        got.add((part, off))
    assert got == expected


def test_consumer_refetches_soon_after_a_full_queue_and_users_can_override():
    """librdkafka's default fetch.queue.backoff.ms (1 s) made a lagging consumer read one queue per second."""
    conf = consumer_config(config_from_dict(monitor_config()))
    assert conf["fetch.queue.backoff.ms"] == 10
    Consumer(conf).close()  # the linked librdkafka knows the property
    mine = config_from_dict(monitor_config(kafka={"settings": {"fetch.queue.backoff.ms": 500}}))
    assert consumer_config(mine)["fetch.queue.backoff.ms"] == 500

"""The Kafka consumer loop: batch consume, hand to the pipeline, confirm outputs, then commit.

Offsets are stored and committed by hand (``enable.auto.commit=false``,
``enable.auto.offset.store=false``) and only after the alerts and dead letters of
the records they cover were confirmed delivered: an alert is never lost behind a
committed offset (at-least-once; the deterministic alert id makes a repeat harmless).
On a revoke, pending offsets are committed before the partitions are released.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from stream_monitor.config import MonitorConfig
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.pipeline import Pipeline

log = logging.getLogger(__name__)


def consumer_config(config: MonitorConfig) -> dict[str, Any]:
    conf = {
        "group.id": config.kafka.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    }
    conf.update(config.kafka.librdkafka())  # users' settings win, e.g. a different auto.offset.reset
    conf.setdefault("group.id", config.kafka.group_id)
    return conf


class KafkaSource:
    def __init__(self, config: MonitorConfig, pipeline: Pipeline, metrics: MonitorMetrics) -> None:
        self.config = config
        self.pipeline = pipeline
        self.metrics = metrics
        self.consumer = Consumer(consumer_config(config))
        self.pending: dict[tuple[str, int], int] = {}
        self.assigned: list[TopicPartition] = []
        self._last_commit = time.monotonic()
        self._last_lag = 0.0

    # -- rebalance --------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self.assigned = list({(p.topic, p.partition): p for p in [*self.assigned, *partitions]}.values())

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self.commit(force=True)
        gone = {(p.topic, p.partition) for p in partitions}
        self.assigned = [p for p in self.assigned if (p.topic, p.partition) not in gone]

    # -- loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        topics = [self.config.topics.predictions]
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        self.metrics.up.set(1)
        try:
            while not stop.is_set():
                self.poll_once()
        finally:
            self.metrics.up.set(0)
            self.close()

    def poll_once(self) -> int:
        svc = self.config.service
        messages = self.consumer.consume(svc.batch_size, svc.poll_timeout_seconds)
        records: list[RawRecord] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.error("consumer error on %s[%s]: %s", msg.topic(), msg.partition(), err)
                continue
            ts_type, ts = msg.timestamp()
            records.append(RawRecord(value=msg.value(), key=msg.key(), topic=str(msg.topic()),
                                     partition=int(msg.partition() or 0), offset=int(msg.offset() or 0),
                                     timestamp_ms=ts if ts_type else None))
        if records:
            self.pipeline.handle(records)
            for r in records:
                self.pending[(r.topic, r.partition)] = r.offset + 1
        self.commit()
        self._refresh_lag()
        return len(records)

    def commit(self, force: bool = False) -> None:
        """Confirm outputs, then commit the offsets after the records they covered."""
        due = force or time.monotonic() - self._last_commit >= self.config.service.commit_interval_seconds
        if not self.pending or not due:
            return
        failed = self.pipeline.flush()
        if failed:
            log.error("%d output deliveries failed; offsets not committed, the records will be read again", failed)
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self.pending.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.error("offset commit failed: %s", exc)
            return
        self.pending.clear()
        self._last_commit = time.monotonic()

    def _refresh_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < self.config.service.lag_refresh_seconds or not self.assigned:
            return
        self._last_lag = now
        try:
            positions = self.consumer.position(list(self.assigned))
            for tp in positions:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=2.0)
                if tp.offset >= 0 and high >= 0:
                    self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, high - tp.offset))
        except KafkaException as exc:
            log.debug("lag refresh skipped: %s", exc)

    def close(self) -> None:
        try:
            self.commit(force=True)
        finally:
            self.consumer.close()

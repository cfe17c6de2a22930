"""Kafka sinks: alerts keyed by their deterministic id, dead letters with provenance headers.

Dead letters keep the original key and bytes (so they can be replayed after a fix)
and say why and where in headers; nothing of the payload is logged.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.errors import EventRejected
from stream_monitor.sinks.base import RawRecord

log = logging.getLogger(__name__)


class _DeliveryTracker:
    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.failed = 0

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            log.error("delivery to %s failed: %s", msg.topic(), err)

    def flush(self, timeout: float = 30.0) -> int:
        remaining = self.producer.flush(timeout)
        failed, self.failed = self.failed + remaining, 0
        return failed

    def produce(self, **kwargs: Any) -> None:
        while True:
            try:
                self.producer.produce(on_delivery=self.on_delivery, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.1)  # local queue full: let deliveries drain, then retry


class KafkaAlertSink:
    """Publishes alerts as JSON; an id already published by this process is not published again."""

    def __init__(self, producer: Producer, topic: str, remember: int = 100_000) -> None:
        self.topic = topic
        self.tracker = _DeliveryTracker(producer)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    def publish(self, alert: AlertEvent) -> None:
        if alert.alert_id in self._seen:
            return
        self._seen[alert.alert_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self.tracker.produce(topic=self.topic, key=alert.alert_id.encode(), value=alert.model_dump_json().encode(),
                             headers={"sm.kind": alert.kind, "sm.severity": alert.severity})
        log.info("alert %s model=%s feature=%s severity=%s", alert.alert_id, alert.model_id, alert.feature,
                 alert.severity)

    def flush(self) -> int:
        return self.tracker.flush()


class KafkaDeadLetterSink:
    def __init__(self, producer: Producer, topic: str) -> None:
        self.topic = topic
        self.tracker = _DeliveryTracker(producer)

    def send(self, record: RawRecord, error: EventRejected) -> None:
        headers = {
            "sm.reason": error.reason,
            "sm.error": error.detail[:1000],
            "sm.source.topic": record.topic,
            "sm.source.partition": str(record.partition),
            "sm.source.offset": str(record.offset),
        }
        if record.timestamp_ms is not None:
            headers["sm.source.timestamp_ms"] = str(record.timestamp_ms)
        self.tracker.produce(topic=self.topic, key=record.key, value=record.value, headers=headers)
        log.debug("dead-lettered %s reason=%s", record.position(), error.reason)

    def flush(self) -> int:
        return self.tracker.flush()

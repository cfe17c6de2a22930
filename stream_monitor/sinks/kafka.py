"""Kafka sinks: alerts keyed by their deterministic id, dead letters with provenance headers, window records.

Dead letters keep the original key and bytes (so they can be replayed after a fix)
and say why and where in headers; nothing of the payload is logged. A payload too
large to republish is replaced by an empty value and ``sm.payload.dropped_bytes``:
its position in the input topic still points at it.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from stream_monitor.contracts.alerts import AlertEvent, stable_id
from stream_monitor.engine_types import WindowReport
from stream_monitor.errors import EventRejected
from stream_monitor.sinks.base import RawRecord

log = logging.getLogger(__name__)


class DeliveryTracker:
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


class OncePublisher:
    """Produces records keyed by a deterministic id, each id at most once per process (the last `remember`).

    Restarts and replays produce the same ids again; this keeps a process from sending one twice,
    and readers deduplicate across restarts by the key.
    """

    def __init__(self, producer: Producer, topic: str, remember: int = 100_000) -> None:
        self.topic = topic
        self.tracker = DeliveryTracker(producer)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    def publish(self, record_id: str, value: bytes, headers: dict[str, str]) -> bool:
        """Produce unless this id was already published; whether it was produced."""
        if record_id in self._seen:
            return False
        self._seen[record_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self.tracker.produce(topic=self.topic, key=record_id.encode(), value=value, headers=headers)
        return True

    def flush(self) -> int:
        return self.tracker.flush()


class KafkaAlertSink:
    """Publishes alerts as JSON, key = alert_id; an id already published by this process is not published again."""

    def __init__(self, producer: Producer, topic: str, remember: int = 100_000) -> None:
        self.topic = topic
        self.once = OncePublisher(producer, topic, remember)

    def publish(self, alert: AlertEvent) -> None:
        if self.once.publish(alert.alert_id, alert.model_dump_json().encode(),
                             {"sm.kind": alert.kind, "sm.severity": alert.severity}):
            log.info("alert %s model=%s feature=%s severity=%s", alert.alert_id, alert.model_id, alert.feature,
                     alert.severity)

    def flush(self) -> int:
        return self.once.flush()


class KafkaDeadLetterSink:
    def __init__(self, producer: Producer, topic: str, max_payload_bytes: int = 900_000) -> None:
        self.topic = topic
        self.tracker = DeliveryTracker(producer)
        self.max_payload_bytes = max_payload_bytes

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
        value = record.value
        if value is not None and len(value) > self.max_payload_bytes:
            headers["sm.payload.dropped_bytes"] = str(len(value))
            value = None
        key = record.key if record.key is None or len(record.key) <= 4096 else record.key[:4096]
        self.tracker.produce(topic=self.topic, key=key, value=value, headers=headers)
        log.debug("dead-lettered %s reason=%s", record.position(), error.reason)

    def flush(self) -> int:
        return self.tracker.flush()


def window_id_for(report: WindowReport) -> str:
    """Deterministic: the same window of the same model version against the same reference, in any run."""
    return stable_id(report.model_id, report.model_version, report.window_start.isoformat(),
                     report.window_end.isoformat(), report.reference_version or "", report.role)


def window_record(report: WindowReport) -> bytes:
    """One closed window as JSON: its id, size, role, reference and every statistic (NaN becomes null)."""
    body = {"window_id": window_id_for(report), **dataclasses.asdict(report)}
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


class KafkaWindowSink:
    """Every closed window to `topics.windows`, keyed by its window id: an audit trail consumers can join on."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.topic = topic
        self.tracker = DeliveryTracker(producer)

    def publish(self, report: WindowReport) -> None:
        self.tracker.produce(topic=self.topic, key=window_id_for(report).encode(), value=window_record(report),
                             headers={"sm.model_id": report.model_id, "sm.role": report.role})

    def flush(self) -> int:
        return self.tracker.flush()

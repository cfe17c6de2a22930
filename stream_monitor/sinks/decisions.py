"""Where decisions go: the decisions topic (key = decision_id), an append-only audit file, the console.

Decisions are few and consequential, so every sink is deliberately plain: the Kafka
sink publishes each id once per process (a replayed or re-decided window gives the
same id; downstream consumers de-duplicate across processes by the key), the audit
file is opened in append mode and never rewritten, and both are flushed before
offsets are committed, like alerts. The readers here serve ``stream-monitor decisions``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from stream_monitor.contracts.decisions import DecisionEvent
from stream_monitor.sinks.kafka import OncePublisher

log = logging.getLogger(__name__)


class DecisionSink(Protocol):
    def publish(self, decision: DecisionEvent) -> None: ...

    def flush(self) -> int:
        """Block until everything published is delivered; the number of failed deliveries."""
        ...


class NullDecisionSink:
    """For pipelines built without one (models without `retraining` make no decisions anyway)."""

    def publish(self, decision: DecisionEvent) -> None:
        return None

    def flush(self) -> int:
        return 0


class FanoutDecisionSink:
    def __init__(self, *sinks: DecisionSink) -> None:
        self.sinks = sinks

    def publish(self, decision: DecisionEvent) -> None:
        for s in self.sinks:
            s.publish(decision)

    def flush(self) -> int:
        return sum(s.flush() for s in self.sinks)


class KafkaDecisionSink:
    """Decisions as JSON on `topics.decisions`, key = decision_id; an id already published here is skipped."""

    def __init__(self, producer: Producer, topic: str, remember: int = 100_000) -> None:
        self.topic = topic
        self.once = OncePublisher(producer, topic, remember)

    def publish(self, decision: DecisionEvent) -> None:
        if self.once.publish(decision.decision_id, decision.model_dump_json().encode(),
                             {"sm.type": decision.type, "sm.model_id": decision.model_id,
                              "sm.source": decision.source}):
            log.info("decision %s model=%s type=%s policy=%s", decision.decision_id, decision.model_id,
                     decision.type, decision.policy_id)

    def flush(self) -> int:
        return self.once.flush()


class JsonlDecisionSink:
    """The audit log: one JSON line per decision, appended (``service.audit_log``, ``replay --decisions-out``).

    ``append=False`` truncates first (replay output files); the service always appends.
    Ids already written by this process are not written again.
    """

    def __init__(self, path: str | Path, append: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] = self.path.open("ab" if append else "wb")
        self._seen: set[str] = set()

    def publish(self, decision: DecisionEvent) -> None:
        if decision.decision_id in self._seen:
            return
        self._seen.add(decision.decision_id)
        self._fh.write(decision.model_dump_json().encode() + b"\n")

    def flush(self) -> int:
        self._fh.flush()
        return 0

    def close(self) -> None:
        self._fh.close()


class ConsoleDecisionSink:
    def __init__(self, write: object = print) -> None:
        self.write = write

    def publish(self, decision: DecisionEvent) -> None:
        self.write(decision.one_line())  # type: ignore[operator]

    def flush(self) -> int:
        return 0


# -- readers (the `decisions` command) ----------------------------------------------------------


def read_audit_log(path: str | Path) -> Iterator[DecisionEvent]:
    """Every decision in an audit file, in the order written (a torn last line is skipped)."""
    with Path(path).open("rb") as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    yield DecisionEvent.model_validate_json(line)
                except ValueError:
                    log.warning("%s: skipped an unreadable line", path)


def read_topic(conf: dict[str, object], topic: str, timeout: float = 10.0) -> list[DecisionEvent]:
    """Every decision on the topic, from the beginning until each partition reports its end (nothing committed).

    The end is the consumer's end-of-partition event rather than the high watermark,
    which some Kafka-compatible brokers report per record batch.
    """
    consumer = Consumer({**conf, "group.id": "stream-monitor-decisions-reader", "enable.auto.commit": False,
                         "enable.partition.eof": True, "isolation.level": "read_committed"})
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            raise LookupError(f"topic {topic!r} not found")
        todo = set(meta.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(todo)])
        out: list[DecisionEvent] = []
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(500, min(0.5, max(0.0, deadline - time.monotonic()))):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        todo.discard(int(msg.partition() or 0))
                    continue
                value = msg.value()
                if value is None:
                    continue
                d = DecisionEvent.model_validate_json(value)
                if d.decision_id not in seen:
                    seen.add(d.decision_id)
                    out.append(d)
        return out
    finally:
        consumer.close()

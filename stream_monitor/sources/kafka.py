"""The Kafka consumer loop: batch consume, hand to the pipeline, checkpoint, then commit.

Offsets are stored and committed by hand (``enable.auto.commit=false``,
``enable.auto.offset.store=false``) and only after the outputs of the records they
cover were confirmed delivered and the engine state covering them was durably
checkpointed (:mod:`stream_monitor.checkpoint.delivery` has the order). Records are
handed to the engine one partition at a time, so every model is owned by the
partition its events arrive on; on revoke that state is checkpointed and dropped,
on assign it is restored before the partition is read (docs/guarantees.md).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from stream_monitor.broker import partition_count
from stream_monitor.checkpoint.coordinator import TP, Checkpointer
from stream_monitor.checkpoint.delivery import AtLeastOnce, Delivery, RewindRequired
from stream_monitor.checkpoint.records import CheckpointError
from stream_monitor.config import MonitorConfig
from stream_monitor.engine_types import WindowReport
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
        "log.connection.close": False,
        "isolation.level": "read_committed",
        # Bounded prefetch: when processing falls behind, the lag grows (and shows), memory does not.
        # The bound is the size in kbytes. A message-count bound of a couple of batches kept one
        # fetch in flight at a time and capped consumption at ~10k events/s on the embedded broker
        # (bench/broker_e2e.py), so the count is left at librdkafka's default scale.
        "queued.max.messages.kbytes": config.service.max_queued_kbytes,
        "queued.min.messages": max(100_000, 2 * config.service.batch_size),
        # Once that bound is reached, librdkafka (>= 2.1) waits fetch.queue.backoff.ms (default 1000)
        # before it fetches again, even if the queue drained long before: a consumer behind by more
        # than a queue's worth read one queue per second (32 MiB, ~45k events of 730 bytes: the
        # 49.5k events/s end to end measured before). 10 ms keeps the queue topped up; the cost is
        # a timer check while the queue is full.
        "fetch.queue.backoff.ms": 10,
    }
    conf.update(config.kafka.librdkafka())  # users' settings win, e.g. a different auto.offset.reset
    conf.setdefault("group.id", config.kafka.group_id)
    return conf


_ERROR = Message.error
_TOPIC = Message.topic
_PARTITION = Message.partition
_VALUE = Message.value
_NO_ERROR = {type(None)}


def raw_record(msg: Message) -> RawRecord:
    """One message as a full record: built only for a dead letter's provenance (the hot path takes values)."""
    ts_type, ts = msg.timestamp()
    return RawRecord(value=msg.value(), key=msg.key(), topic=str(msg.topic()), partition=int(msg.partition() or 0),
                     offset=int(msg.offset() or 0), timestamp_ms=ts if ts_type else None)


def records_of(batch: list[Message]) -> Callable[[int], RawRecord]:
    """``Pipeline.handle_values``' record_at for one partition's messages: a record is built only when asked."""
    return lambda i: raw_record(batch[i])


def by_partition(messages: list[Message]) -> list[tuple[TP, list[Message]]]:
    """A consumed batch split per (topic, partition), each part in consumed order; error messages logged, dropped.

    Why C-level ``map`` calls and no loop over the messages: this runs for every message, and a
    consumed batch nearly always comes from a single partition. A Python object per message here
    (as ``RawRecord`` was) cost 1.2-1.3 us per message; this costs about 0.07 (docs/performance.md).
    """
    if not messages:
        return []
    errors = list(map(_ERROR, messages))
    if {*map(type, errors)} != _NO_ERROR:  # (a KafkaError cannot be compared with None: no list.count)
        for msg, err in zip(messages, errors, strict=True):
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                log.error("consumer error on %s[%s]: %s", msg.topic(), msg.partition(), err)
        messages = [m for m, e in zip(messages, errors, strict=True) if e is None]
        if not messages:
            return []
    topics = cast("list[str]", list(map(_TOPIC, messages)))  # set on every non-error message
    partitions = cast("list[int]", list(map(_PARTITION, messages)))
    if partitions.count(partitions[0]) == len(partitions) and topics.count(topics[0]) == len(topics):
        return [((topics[0], partitions[0]), messages)]
    parts: dict[TP, list[Message]] = {}
    for tp, msg in zip(zip(topics, partitions, strict=True), messages, strict=True):
        parts.setdefault(tp, []).append(msg)
    return list(parts.items())


class WindowSink(Protocol):
    def publish(self, report: WindowReport) -> None: ...

    def flush(self) -> int: ...


class KafkaSource:
    def __init__(self, config: MonitorConfig, pipeline: Pipeline, metrics: MonitorMetrics, *,
                 checkpointer: Checkpointer | None = None, delivery: Delivery | None = None,
                 windows: WindowSink | None = None) -> None:
        self.config = config
        self.pipeline = pipeline
        self.metrics = metrics
        self.consumer = Consumer(consumer_config(config))
        self.windows = windows
        self.checkpointer = checkpointer or Checkpointer(
            pipeline.engine, None, group_id=config.kafka.group_id, writer="", lock=metrics.lock,
            registry=metrics.registry)
        self.delivery = delivery or AtLeastOnce(self.flush_outputs)
        strategy = str(consumer_config(config).get("partition.assignment.strategy", ""))
        self.cooperative = "cooperative" in strategy
        self.pending: dict[tuple[str, int], int] = {}
        self.assigned: list[TopicPartition] = []
        #: Input topic -> freshness stream: each instance of a group speaks for its own partitions' streams.
        self.streams = {config.topics.predictions: "predictions"}
        if config.topics.labels:
            self.streams[config.topics.labels] = "labels"
        self._sizes: dict[str, int] = {}  # partitions per input topic, read when first assigned
        pipeline.engine.freshness.join_group()
        self._last_commit = time.monotonic()
        self._last_lag = 0.0

    def flush_outputs(self) -> int:
        """Confirm delivery of every output so far; the number of failed deliveries."""
        return self.pipeline.flush() + (self.windows.flush() if self.windows is not None else 0)

    # -- rebalance --------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Restore the partitions' state before the first record is read, and start where it ends."""
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        tps: list[TP] = [(p.topic, p.partition) for p in partitions]
        if self.checkpointer.enabled and tps:
            committed = {(tp.topic, tp.partition): tp.offset
                         for tp in consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=30)}
            for (t, p), offset in self.checkpointer.restore(tps, committed).items():
                next(x for x in partitions if (x.topic, x.partition) == (t, p)).offset = offset
        else:
            self.checkpointer.restore(tps, {})
        if self.cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        self.assigned = list({(p.topic, p.partition): p for p in [*self.assigned, *partitions]}.values())
        for topic in {p.topic for p in partitions} & self.streams.keys():
            self._sizes[topic] = partition_count(consumer, topic) or 0
        self._hold_freshness()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Checkpoint and commit before the partitions go, then drop the state of their models."""
        log.info("revoked %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self.commit(force=True)
        gone = {(p.topic, p.partition) for p in partitions}
        self.checkpointer.release(gone, "revoked")
        for tp in gone:
            self.pending.pop(tp, None)
        self.assigned = [p for p in self.assigned if (p.topic, p.partition) not in gone]
        self._hold_freshness()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group moved on without us: nothing may be committed; drop the state, another owner restores it."""
        log.warning("lost %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        gone = {(p.topic, p.partition) for p in partitions}
        self.checkpointer.release(gone, "lost")
        for tp in gone:
            self.pending.pop(tp, None)
        self.assigned = [p for p in self.assigned if (p.topic, p.partition) not in gone]
        self._hold_freshness()
        if self.delivery.transactional:  # the open transaction mixes lost and kept partitions' outputs
            self.delivery.abort()
            self._rewind()

    def _hold_freshness(self) -> None:
        """Tell freshness which partitions of each input stream this instance now holds (after any rebalance)."""
        for topic, stream in self.streams.items():
            self.pipeline.engine.freshness.hold(stream, {p.partition for p in self.assigned if p.topic == topic},
                                                self._sizes.get(topic, 0))

    # -- loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        topics = [self.config.topics.predictions]
        if self.config.topics.labels:  # delayed ground truth, joined in the engine (stream_monitor.labels)
            topics.append(self.config.topics.labels)
        if self.pipeline.spread is not None:  # partial window sketches of spread models (stream_monitor.spread)
            topics.append(self.config.topics.partials)
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        self.metrics.up.set(1)
        try:
            while not stop.is_set():
                self.poll_once()
        finally:
            self.metrics.up.set(0)
            self.close()

    def poll_once(self) -> int:
        svc = self.config.service
        groups = by_partition(self.consumer.consume(svc.batch_size, svc.poll_timeout_seconds))
        consumed = 0
        if groups:
            self.delivery.begin()
            for tp, batch in groups:
                # One partition at a time: its models are its own. Values go to the decoder as they are;
                # a rejected one gets its full record (position, key, timestamp) for the dead-letter topic.
                out = self.pipeline.handle_values(tp[0], list(map(_VALUE, batch)), records_of(batch))
                self.checkpointer.observe(tp, out)
                if self.windows is not None:
                    for report in [*out.reports, *out.updates]:  # updates: late labels changed its performance
                        self.windows.publish(report)
                self.pending[tp] = int(batch[-1].offset() or 0) + 1  # only the next offset is committed
                consumed += len(batch)
        if consumed or not self.delivery.transactional:
            # Schedules (and other time-driven outputs). A transactional producer only produces inside the
            # cycle's transaction, so there an idle stream's tick waits for the next records.
            self.pipeline.tick()
        self.commit()
        self._refresh_lag()
        return consumed

    def commit(self, force: bool = False) -> None:
        """Confirm outputs, checkpoint the state covering them, then commit the offsets (see delivery.py)."""
        due = force or time.monotonic() - self._last_commit >= self.config.service.commit_interval_seconds
        if not self.pending or not due:
            return
        offsets = dict(self.pending)
        try:
            checkpoints = self.checkpointer.snapshot(offsets)
            committed = self.delivery.complete(self.consumer, offsets, checkpoints, self.checkpointer)
        except CheckpointError as exc:
            log.error("checkpoint failed (%s); offsets not committed, retrying at the next interval", exc)
            self.delivery.abort()
            if self.delivery.transactional:
                self._rewind()
            return
        except RewindRequired as exc:
            log.error("%s; replaying from the last checkpoint", exc)
            self._rewind()
            return
        if committed:
            self.pending.clear()
        self._last_commit = time.monotonic()

    def _rewind(self) -> None:
        """Outputs since the last checkpoint may be lost: restore every assigned partition and re-read it."""
        tps = [(p.topic, p.partition) for p in self.assigned]
        self.pending.clear()
        if not self.checkpointer.enabled or not tps:
            return
        self.checkpointer.release(tps, "rewound")
        committed = {(tp.topic, tp.partition): tp.offset
                     for tp in self.consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=30)}
        start = self.checkpointer.restore(tps, committed)
        for t, p in tps:
            offset = start.get((t, p), committed.get((t, p), -1))
            if offset is not None and offset >= 0:
                self.consumer.seek(TopicPartition(t, p, offset))

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

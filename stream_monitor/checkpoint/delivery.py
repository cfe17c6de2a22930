"""The two ways a checkpoint cycle completes: at-least-once (default) and exactly-once (transactions).

At-least-once, in this order: (1) confirm every output (alerts, decisions, dead
letters, window records) is delivered, (2) write the checkpoint and confirm it,
(3) commit the input offsets. A crash anywhere re-reads records after the last
checkpoint and publishes their outputs again, under the same deterministic ids.

Exactly-once: one Kafka transaction per cycle holds the outputs, the checkpoint
records and the input offsets (``send_offsets_to_transaction``); consumers of the
outputs that read with ``isolation.level=read_committed`` see each output once.
A failed cycle is aborted and the source rewinds to the last committed checkpoint.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from stream_monitor.checkpoint.coordinator import TP, Checkpointer
from stream_monitor.checkpoint.records import PartitionCheckpoint
from stream_monitor.errors import StreamMonitorError

log = logging.getLogger(__name__)


class RewindRequired(StreamMonitorError):
    """Outputs since the last checkpoint may be lost (failed delivery, aborted transaction): replay them."""


class Delivery(Protocol):
    transactional: bool

    def begin(self) -> None:
        """Called before any output of a batch is produced."""
        ...

    def complete(self, consumer: Consumer, offsets: dict[TP, int], checkpoints: Sequence[PartitionCheckpoint],
                 checkpointer: Checkpointer) -> bool:
        """Make outputs, checkpoints and offsets durable; False if only the offset commit failed (retry later)."""
        ...

    def abort(self) -> None: ...


def _offsets(offsets: dict[TP, int]) -> list[TopicPartition]:
    return [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]


class AtLeastOnce:
    transactional = False

    def __init__(self, flush_outputs: Callable[[], int]) -> None:
        self.flush_outputs = flush_outputs

    def begin(self) -> None:
        """Nothing to open."""

    def complete(self, consumer: Consumer, offsets: dict[TP, int], checkpoints: Sequence[PartitionCheckpoint],
                 checkpointer: Checkpointer) -> bool:
        failed = self.flush_outputs()
        if failed:
            raise RewindRequired(f"{failed} output deliveries failed")
        checkpointer.write(checkpoints)
        if offsets:
            try:
                consumer.commit(offsets=_offsets(offsets), asynchronous=False)
            except KafkaException as exc:
                # The checkpoint already holds the position; the group's offset catches up next cycle.
                log.warning("offset commit failed (%s); the checkpoint covers the position", exc)
                return False
        checkpointer.written(checkpoints)
        return True

    def abort(self) -> None:
        """Nothing to abort: outputs already produced stay (at-least-once)."""


class ExactlyOnce:
    """A transactional producer: `transactional.id` is stable per instance so a restart fences its zombie."""

    transactional = True

    def __init__(self, producer: Producer, timeout: float = 30.0) -> None:
        self.producer = producer
        self.timeout = timeout
        self.open = False

    def init(self) -> None:
        """Fence any earlier incarnation with the same transactional.id and abort its open transaction."""
        self.producer.init_transactions(self.timeout)

    def begin(self) -> None:
        if not self.open:
            self.producer.begin_transaction()
            self.open = True

    def complete(self, consumer: Consumer, offsets: dict[TP, int], checkpoints: Sequence[PartitionCheckpoint],
                 checkpointer: Checkpointer) -> bool:
        if not self.open and not offsets:
            return True
        self.begin()
        try:
            checkpointer.write(checkpoints, in_transaction=True)
            if offsets:
                self.producer.send_offsets_to_transaction(_offsets(offsets), consumer.consumer_group_metadata(),
                                                          self.timeout)
            self._commit()
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.fatal():
                raise StreamMonitorError(f"transactional producer failed fatally ({err}); restart the "
                                         "instance (another one with the same instance_id may be running)") from None
            log.error("transaction failed (%s); aborting and replaying from the last checkpoint", err)
            self.abort()
            raise RewindRequired(str(err)) from None
        checkpointer.written(checkpoints)
        return True

    def _commit(self) -> None:
        for _attempt in range(3):
            try:
                self.producer.commit_transaction(self.timeout)
                self.open = False
                return
            except KafkaException as exc:
                if not exc.args[0].retriable():
                    raise
        self.producer.commit_transaction(self.timeout)
        self.open = False

    def abort(self) -> None:
        if self.open:
            try:
                self.producer.abort_transaction(self.timeout)
            finally:
                self.open = False

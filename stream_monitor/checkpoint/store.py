"""Where checkpoint records live: a compacted Kafka topic (default) or a local directory.

Both stores keep only the latest record per key, and both write a record whole or
not at all (Kafka: one message; directory: temp file, fsync, rename, fsync of the
directory). ``write`` returns only once the records are durable (acks=all and a
confirmed delivery, or a completed fsync), or raises :class:`CheckpointError`;
the source commits input offsets only after it returned.

The Kafka store writes the checkpoint of input partition ``p`` to checkpoint
partition ``p % n`` and, on assign, reads only those partitions, newest records
first (an exponentially growing tail): with compaction the topic holds about one
record per key, without it (a broker that does not compact, such as the embedded
one) a restore still reads only the recent tail, not the whole history.
"""
from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream_monitor.broker import partition_count
from stream_monitor.checkpoint.records import CheckpointError, PartitionCheckpoint, checkpoint_key

log = logging.getLogger(__name__)


class CheckpointStore(Protocol):
    def write(self, checkpoints: Sequence[PartitionCheckpoint], *, in_transaction: bool = False) -> int:
        """Make the records durable (or, in a transaction, part of it); return the bytes written."""
        ...

    def read(self, group_id: str, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], PartitionCheckpoint]:
        """The latest checkpoint of each partition that has one."""
        ...

    def delete(self, group_id: str, partitions: Sequence[tuple[str, int]]) -> None:
        """Forget the checkpoints (operations: start those partitions empty)."""
        ...

    def close(self) -> None: ...


# -- directory --------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class DirectoryCheckpointStore:
    """One file per input partition under ``<dir>/<group>/<topic>/<partition>.ckpt``.

    Only for a single instance, or instances sharing one POSIX file system: a
    partition moving between hosts must find its file.
    """

    def __init__(self, directory: str | Path) -> None:
        self.root = Path(directory)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, group_id: str, topic: str, partition: int) -> Path:
        return self.root / _UNSAFE.sub("_", group_id) / _UNSAFE.sub("_", topic) / f"{partition}.ckpt"

    def write(self, checkpoints: Sequence[PartitionCheckpoint], *, in_transaction: bool = False) -> int:
        total = 0
        for cp in checkpoints:
            path = self._path(cp.group_id, cp.topic, cp.partition)
            path.parent.mkdir(parents=True, exist_ok=True)
            data = cp.encode()
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except OSError as exc:
                Path(tmp).unlink(missing_ok=True)
                raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror}") from None
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself must survive a power cut
            finally:
                os.close(dir_fd)
            total += len(data)
        return total

    def read(self, group_id: str, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], PartitionCheckpoint]:
        found: dict[tuple[str, int], PartitionCheckpoint] = {}
        for topic, partition in partitions:
            path = self._path(group_id, topic, partition)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
            found[(topic, partition)] = PartitionCheckpoint.decode(data, str(path))
        return found

    def delete(self, group_id: str, partitions: Sequence[tuple[str, int]]) -> None:
        for topic, partition in partitions:
            self._path(group_id, topic, partition).unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing held open."""


# -- Kafka ------------------------------------------------------------------------------------------

class KafkaCheckpointStore:
    """Checkpoints in a compacted topic, written with the service's producer (transactional in exactly-once)."""

    def __init__(self, client_conf: dict[str, Any], topic: str, producer: Producer, *, group_id: str,
                 read_timeout: float = 30.0, max_record_bytes: int = 16 * 1024 * 1024) -> None:
        self.client_conf = dict(client_conf)
        self.topic = topic
        self.producer = producer
        self.group_id = group_id
        self.read_timeout = read_timeout
        self.max_record_bytes = max_record_bytes
        self.partitions = 0
        self._reader: Consumer | None = None

    def ensure_topic(self, partitions: int, create: bool = True) -> int:
        """Create the topic (compacted) if asked and missing; learn its partition count."""
        admin = AdminClient(self.client_conf)
        # Metadata of all topics, not of this one: asking for one topic by name lets some brokers auto-create it,
        # uncompacted and with their default partition count.
        meta = admin.list_topics(timeout=10).topics.get(self.topic)
        if (meta is None or meta.error is not None) and create:
            config = {"cleanup.policy": "compact", "max.message.bytes": str(self.max_record_bytes),
                      "min.compaction.lag.ms": "0"}
            futures = admin.create_topics([NewTopic(self.topic, num_partitions=partitions, replication_factor=-1,
                                                    config=config)], request_timeout=15)
            exc = futures[self.topic].exception(timeout=20)
            err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
            if exc is not None and not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise CheckpointError(f"cannot create checkpoint topic {self.topic!r}: {err}")
            log.info("created checkpoint topic %s (%d partitions, compacted)", self.topic, partitions)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            count = partition_count(admin, self.topic, 5)
            if count:
                self.partitions = count
                return count
            time.sleep(0.1)  # paces metadata polls until the new topic is visible, bounded by the deadline
        raise CheckpointError(f"checkpoint topic {self.topic!r} does not exist (checkpoint.create_topic is off, "
                              "or it was not visible within 20 s)")

    def _slot(self, partition: int) -> int:
        if not self.partitions:
            raise CheckpointError("KafkaCheckpointStore.ensure_topic() was not called")
        return partition % self.partitions

    def write(self, checkpoints: Sequence[PartitionCheckpoint], *, in_transaction: bool = False) -> int:
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(str(err))

        total = 0
        for cp in checkpoints:
            data = cp.encode()
            if len(data) > self.max_record_bytes:
                raise CheckpointError(f"checkpoint of {cp.topic}[{cp.partition}] is {len(data)} bytes, over "
                                      f"checkpoint.max_record_bytes={self.max_record_bytes}")
            self._produce(cp.key.encode(), data, self._slot(cp.partition), on_delivery)
            total += len(data)
        if in_transaction:
            return total  # durable when (and only if) the transaction commits
        remaining = self.producer.flush(30)
        if remaining or errors:
            raise CheckpointError(f"checkpoint write not confirmed: {len(errors)} failed, {remaining} pending; "
                                  f"first error: {errors[0] if errors else 'timeout'}")
        return total

    def _produce(self, key: bytes, value: bytes | None, partition: int, on_delivery: Any) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.producer.produce(self.topic, key=key, value=value, partition=partition, on_delivery=on_delivery)
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise CheckpointError("producer queue stayed full for 30 s while writing a checkpoint") from None
                self.producer.poll(0.05)

    def delete(self, group_id: str, partitions: Sequence[tuple[str, int]]) -> None:
        for topic, partition in partitions:
            self._produce(checkpoint_key(group_id, topic, partition).encode(), None, self._slot(partition), None)
        if self.producer.flush(30):
            raise CheckpointError("checkpoint tombstones not confirmed within 30 s")

    # -- read -----------------------------------------------------------------------------------

    def _consumer(self) -> Consumer:
        if self._reader is None:
            conf = dict(self.client_conf)
            conf.update({"group.id": f"{self.group_id}.checkpoint-reader", "enable.auto.commit": False,
                         "enable.auto.offset.store": False, "isolation.level": "read_committed",
                         "enable.partition.eof": True, "fetch.wait.max.ms": 50,
                         "fetch.max.bytes": max(self.max_record_bytes * 2, 52_428_800),
                         "receive.message.max.bytes": max(self.max_record_bytes * 2, 52_428_800) + 1024})
            self._reader = Consumer(conf)
        return self._reader

    def read(self, group_id: str, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], PartitionCheckpoint]:
        deadline = time.monotonic() + self.read_timeout
        wanted: dict[int, dict[bytes, tuple[str, int]]] = {}
        for topic, partition in partitions:
            wanted.setdefault(self._slot(partition), {})[checkpoint_key(group_id, topic, partition).encode()] = (
                topic, partition)
        found: dict[tuple[str, int], PartitionCheckpoint] = {}
        for slot, values in self._latest({s: set(k) for s, k in wanted.items()}, deadline).items():
            for key, raw in values.items():
                if raw is not None:
                    found[wanted[slot][key]] = PartitionCheckpoint.decode(raw, f"{self.topic}[{slot}] {key.decode()}")
        return found

    def _latest(self, keys: dict[int, set[bytes]], deadline: float) -> dict[int, dict[bytes, bytes | None]]:
        """Newest value per key (None = tombstone) in each slot, reading growing tails backwards, all slots at once."""
        consumer = self._consumer()
        bounds: dict[int, tuple[int, int]] = {}  # slot -> (low, end of the next tail to read)
        for slot in keys:
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, slot),
                                                           timeout=max(0.1, deadline - time.monotonic()), cached=False)
            except KafkaException as exc:
                raise CheckpointError(f"cannot read checkpoint topic {self.topic}[{slot}]: {exc}") from None
            bounds[slot] = (low, high)
        latest: dict[int, dict[bytes, bytes | None]] = {slot: {} for slot in keys}
        span = 16
        while True:
            ranges = {slot: (max(low, end - span), end) for slot, (low, end) in bounds.items()
                      if end > low and not keys[slot] <= latest[slot].keys()}
            if not ranges:
                return latest
            segment: dict[int, dict[bytes, bytes | None]] = {slot: {} for slot in ranges}
            for msg in self._ranges(consumer, ranges, deadline):
                slot, k = int(msg.partition() or 0), msg.key()
                if k in keys[slot] and k not in latest[slot]:
                    segment[slot][k] = msg.value()  # later offsets overwrite earlier ones within the segment
            for slot, (start, _end) in ranges.items():
                latest[slot].update(segment[slot])
                bounds[slot] = (bounds[slot][0], start)
            span *= 4

    def _ranges(self, consumer: Consumer, ranges: dict[int, tuple[int, int]], deadline: float) -> Iterable[Message]:
        """Messages of [start, end) of every slot in `ranges` (read_committed: aborted records never show)."""
        consumer.assign([TopicPartition(self.topic, slot, start) for slot, (start, _) in ranges.items()])
        open_slots = set(ranges)
        try:
            while open_slots:
                if time.monotonic() > deadline:
                    raise CheckpointError(f"reading checkpoints from {self.topic} took longer than "
                                          f"checkpoint.read_timeout_seconds={self.read_timeout}")
                for msg in consumer.consume(500, 0.1):
                    slot = int(msg.partition() or 0)
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            raise CheckpointError(f"reading checkpoints from {self.topic}[{slot}]: {err}")
                        open_slots.discard(slot)
                        continue
                    if slot not in open_slots or (msg.offset() or 0) >= ranges[slot][1]:
                        open_slots.discard(slot)
                        continue
                    yield msg
                    if (msg.offset() or 0) >= ranges[slot][1] - 1:
                        open_slots.discard(slot)
                if open_slots:
                    positions = consumer.position([TopicPartition(self.topic, s) for s in open_slots])
                    open_slots -= {tp.partition for tp in positions if tp.offset >= ranges[tp.partition][1]}
        finally:
            consumer.unassign()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

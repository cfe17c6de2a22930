"""Checkpoint stores: latest record per partition wins, writes are whole, transactions hide aborted checkpoints."""
from __future__ import annotations

import zlib

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from stream_monitor.checkpoint import (
    CheckpointError,
    DirectoryCheckpointStore,
    KafkaCheckpointStore,
    PartitionCheckpoint,
)
from stream_monitor.checkpoint.records import MAGIC
from stream_monitor.testing import unique_name


def _cp(group: str, topic: str, partition: int, offset: int, payload: str = "x") -> PartitionCheckpoint:
    return PartitionCheckpoint(group, topic, partition, offset, {"format": "test", "models": {}, "p": payload})


def test_records_round_trip_and_refuse_what_they_cannot_read() -> None:
    cp = _cp("g", "t", 3, 42, payload="é" * 10)
    back = PartitionCheckpoint.decode(cp.encode())
    assert (back.key, back.offset, back.state) == ("g/t/3", 42, cp.state)
    with pytest.raises(CheckpointError, match="not a stream-monitor"):
        PartitionCheckpoint.decode(b"garbage")
    with pytest.raises(CheckpointError, match="newer"):
        PartitionCheckpoint.decode(MAGIC + bytes([99]) + zlib.compress(b"{}"))
    with pytest.raises(CheckpointError, match="corrupt"):
        PartitionCheckpoint.decode(cp.encode()[:-5])


def test_directory_store_replaces_files_atomically(tmp_path) -> None:
    store = DirectoryCheckpointStore(tmp_path)
    store.write([_cp("g", "t/../x", 0, 10), _cp("g", "t", 1, 5)])
    store.write([_cp("g", "t/../x", 0, 20)])
    found = store.read("g", [("t/../x", 0), ("t", 1), ("t", 2)])
    assert {k: v.offset for k, v in found.items()} == {("t/../x", 0): 20, ("t", 1): 5}
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")], "no temporary files left behind"
    assert all(tmp_path in p.parents for p in tmp_path.rglob("*.ckpt")), "names cannot escape the directory"
    store.delete("g", [("t", 1)])
    assert set(store.read("g", [("t", 1)])) == set()


@pytest.fixture
def kafka_store(kafka_bootstrap):  # type: ignore[no-untyped-def]
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True,
                         "message.max.bytes": 20_000_000})
    store = KafkaCheckpointStore({"bootstrap.servers": kafka_bootstrap}, unique_name("ckpt"), producer,
                                 group_id="g", read_timeout=20, max_record_bytes=2_000_000)
    assert store.ensure_topic(3) == 3
    yield store
    store.close()


def test_kafka_store_creates_a_compacted_topic_and_reads_the_latest_record_per_partition(
        kafka_bootstrap, kafka_store) -> None:  # type: ignore[no-untyped-def]
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, kafka_store.topic)
    try:
        cfg = admin.describe_configs([res])[res].result(10)
        assert cfg["cleanup.policy"].value == "compact"
    except Exception as exc:  # noqa: BLE001 - the embedded broker may not describe topic configs
        pytest.skip(f"broker does not describe topic configs: {exc}")
    finally:
        assert kafka_store.partitions == 3


def test_kafka_store_finds_old_and_new_records_among_many(kafka_store) -> None:  # type: ignore[no-untyped-def]
    # Partition 0 is written 200 times, partition 3 (same checkpoint partition) once at the start, another group
    # interleaves: the backwards tail search must find both the newest and the long-buried record.
    kafka_store.write([_cp("g", "in", 3, 7)])
    for i in range(200):
        kafka_store.write([_cp("g", "in", 0, i), _cp("other-group", "in", 0, 1000 + i)])
    found = kafka_store.read("g", [("in", 0), ("in", 3), ("in", 1), ("in", 6)])
    assert {k: v.offset for k, v in found.items()} == {("in", 0): 199, ("in", 3): 7}
    kafka_store.delete("g", [("in", 0)])
    assert ("in", 0) not in kafka_store.read("g", [("in", 0)]), "a tombstone hides the partition's checkpoint"


def test_kafka_store_refuses_a_record_over_the_limit(kafka_store) -> None:  # type: ignore[no-untyped-def]
    import os

    big = PartitionCheckpoint("g", "in", 1, 1, {"blob": os.urandom(2_000_000).hex()})
    with pytest.raises(CheckpointError, match="max_record_bytes"):
        kafka_store.write([big])


def test_kafka_store_inside_a_transaction_only_committed_checkpoints_count(kafka_bootstrap) -> None:
    topic = unique_name("ckpt")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": unique_name("tx")})
    producer.init_transactions(20)
    store = KafkaCheckpointStore({"bootstrap.servers": kafka_bootstrap}, topic, producer, group_id="g")
    store.ensure_topic(1)
    try:
        producer.begin_transaction()
        store.write([_cp("g", "in", 0, 10)], in_transaction=True)
        producer.commit_transaction(20)
        producer.begin_transaction()
        store.write([_cp("g", "in", 0, 20)], in_transaction=True)
        producer.abort_transaction(20)
        assert store.read("g", [("in", 0)])[("in", 0)].offset == 10, "the aborted checkpoint is invisible"
    finally:
        store.close()

"""Integration tests for the broker helpers, against the session's real Kafka-compatible broker."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from stream_monitor.broker import BrokerError, EmbeddedBroker, create_topics, wait_for_broker
from stream_monitor.testing import consume_all, produce_all, unique_name


def test_topic_with_four_partitions_is_in_metadata(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("four", partitions=4)

    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10)

    assert topic in metadata.topics
    assert metadata.topics[topic].error is None
    assert sorted(metadata.topics[topic].partitions) == [0, 1, 2, 3]


def test_create_topics_is_idempotent_but_rejects_a_partition_mismatch(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("idem", partitions=2)

    create_topics(kafka_bootstrap, {topic: 2})  # already exists: success
    with pytest.raises(BrokerError, match="already exists .* 2 partitions, 3 requested"):
        create_topics(kafka_bootstrap, {topic: 3})
    with pytest.raises(BrokerError, match="illegal topic name"):
        create_topics(kafka_bootstrap, ["not a legal name"])


def test_produce_all_then_consume_all_round_trips_exactly(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("roundtrip", partitions=3)
    values = [f"message-{i}".encode() for i in range(1000)]

    assert (
        produce_all(kafka_bootstrap, topic, [(str(i % 7).encode(), v) for i, v in enumerate(values)]) == 1000
    )
    messages = consume_all(kafka_bootstrap, topic, expected=1000, timeout=30)

    assert len(messages) == 1000
    assert {m.value() for m in messages} == set(values)
    # Read to the end without a count: same data again (nothing was committed).
    assert len(consume_all(kafka_bootstrap, topic, timeout=30)) == 1000


def test_two_consumers_in_one_group_split_four_partitions(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("group", partitions=4)
    conf = {
        "bootstrap.servers": kafka_bootstrap,
        "group.id": unique_name("group"),  # fresh: dead members of an old group can block joins
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "max.poll.interval.ms": 10000,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    first, second = Consumer(conf), Consumer(conf)
    try:
        first.subscribe([topic])
        second.subscribe([topic])
        deadline = time.monotonic() + 45
        mine: set[int] = set()
        theirs: set[int] = set()
        while time.monotonic() < deadline:
            first.poll(0.1)
            second.poll(0.1)
            mine = {tp.partition for tp in first.assignment()}
            theirs = {tp.partition for tp in second.assignment()}
            if mine and theirs and mine | theirs == {0, 1, 2, 3} and not mine & theirs:
                break
        assert mine and theirs, f"both members need partitions: {mine=} {theirs=}"
        assert mine | theirs == {0, 1, 2, 3}
        assert not mine & theirs
    finally:
        first.close()
        second.close()


def test_embedded_broker_stop_ends_the_process() -> None:
    broker = EmbeddedBroker()
    with broker:
        proc = broker.process
        assert proc is not None and broker.is_running()
        wait_for_broker(broker.bootstrap_servers, timeout=10)
        pid = proc.pid

    assert not broker.is_running()
    assert proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: no such process any more
    broker.stop()  # idempotent


def test_embedded_broker_start_failure_reports_the_log_tail() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = EmbeddedBroker(port=port, startup_timeout=10)
        with pytest.raises(BrokerError, match="(?s)broker log.*Address in use"):
            broker.start()
    assert not broker.is_running()


def test_wait_for_broker_gives_up_at_its_deadline() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        started = time.monotonic()
        with pytest.raises(BrokerError, match="did not answer"):
            wait_for_broker(f"127.0.0.1:{port}", timeout=1.0)
    assert time.monotonic() - started < 5

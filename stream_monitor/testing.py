"""Helpers for tests that need a real Kafka protocol endpoint.

Shipped with the package (not only in ``tests/``) so that teams embedding
stream-monitor can write their own integration tests the same way we do.

Why the choice order in :func:`kafka_bootstrap_from_env_or_start`: an explicitly
given cluster always wins (CI with a service container, a developer's own Kafka);
then Apache Kafka itself via testcontainers where a Docker engine answers, because
that is the reference implementation; and only then the embedded Tansu broker,
which needs nothing but the ``[embedded]`` extra.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from stream_monitor.broker import BrokerError, EmbeddedBroker

__all__ = [
    "consume_all",
    "docker_engine_answers",
    "kafka_bootstrap_from_env_or_start",
    "produce_all",
    "unique_name",
]

log = logging.getLogger(__name__)
_rdkafka_log = logging.getLogger(__name__ + ".librdkafka")

ENV_BOOTSTRAP = "KAFKA_BOOTSTRAP_SERVERS"

Headers = Mapping[str, bytes | str | None] | Sequence[tuple[str, bytes | str | None]]


def _noop() -> None:
    """Stop callable for a cluster we did not start."""


def docker_engine_answers(timeout: float = 2.0) -> bool:
    """True if a Docker engine answers a ping within ``timeout`` seconds.

    Only a client may be installed (no engine, no socket); this must then fail fast,
    so every error, including a missing ``docker`` package, means "no".
    """
    try:
        import docker
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=max(1, round(timeout)))
    except Exception as exc:  # DockerException when no socket / bad DOCKER_HOST
        log.debug("no Docker engine: %s", exc)
        return False
    try:
        return bool(client.ping())
    except Exception as exc:
        log.debug("Docker engine did not answer: %s", exc)
        return False
    finally:
        client.close()


def _start_testcontainers_kafka() -> tuple[str, Callable[[], None]]:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # older testcontainers layout
        from testcontainers.kafka import KafkaContainer
    container = KafkaContainer()
    container.start()
    bootstrap = str(container.get_bootstrap_server())
    return bootstrap, container.stop


def kafka_bootstrap_from_env_or_start() -> tuple[str, Callable[[], None]]:
    """Return ``(bootstrap_servers, stop)`` for a Kafka-compatible cluster usable by tests.

    Order: ``$KAFKA_BOOTSTRAP_SERVERS`` (``stop`` is a no-op), Apache Kafka in a
    testcontainer if a Docker engine answers, else :class:`EmbeddedBroker`. If the
    container fails to start (no image, no network), we fall back to the embedded
    broker with a warning rather than failing the whole session.
    """
    from_env = os.environ.get(ENV_BOOTSTRAP, "").strip()
    if from_env:
        log.info("Kafka for tests: %s=%s", ENV_BOOTSTRAP, from_env)
        return from_env, _noop

    if docker_engine_answers():
        try:
            bootstrap, stop = _start_testcontainers_kafka()
        except Exception as exc:
            log.warning("Docker answers but the Kafka testcontainer did not start (%s); using embedded", exc)
        else:
            log.info("Kafka for tests: testcontainers Apache Kafka at %s", bootstrap)
            return bootstrap, stop

    broker = EmbeddedBroker()
    try:
        broker.start()
    except BrokerError as exc:
        raise BrokerError(
            f"no Kafka for tests: set {ENV_BOOTSTRAP}, run a Docker engine, or install "
            f"'stream-monitor[embedded]'. Embedded broker said: {exc}"
        ) from exc
    log.info(
        "Kafka for tests: embedded broker at %s (pid %s)",
        broker.bootstrap_servers,
        broker.process and broker.process.pid,
    )
    return broker.bootstrap_servers, broker.stop


def unique_name(prefix: str) -> str:
    """``prefix`` plus a short random suffix: per-test topics and group ids never collide.

    Fresh group ids matter with the embedded broker: a group whose members died
    without leaving can block new joins until their session times out.
    """
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def consume_all(
    bootstrap_servers: str,
    topic: str,
    *,
    expected: int | None = None,
    timeout: float = 30.0,
    predicate: Callable[[list[Message]], bool] | None = None,
) -> list[Message]:
    """Read ``topic`` from the beginning and return the (non-error) messages read.

    Stops as soon as ``expected`` messages were read or ``predicate(messages)`` is
    true; if neither is given, stops once every partition reached its end. Never
    raises on timeout: it returns what was read by the deadline, so the caller's
    assertion shows what was missing.

    Partitions are assigned directly (no group rebalance, which saves seconds) under
    a fresh group id with auto-commit off, so nothing is committed and repeated calls
    see the same data.
    """
    deadline = time.monotonic() + timeout
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": unique_name("consume-all"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
            "logger": _rdkafka_log,
        }
    )
    messages: list[Message] = []
    try:
        partitions = _wait_for_partitions(consumer, topic, deadline)
        if not partitions:
            log.warning("consume_all: topic %r not visible on %s by the deadline", topic, bootstrap_servers)
            return messages
        consumer.assign([TopicPartition(topic, p, -2) for p in partitions])  # -2 = OFFSET_BEGINNING
        at_eof: set[int] = set()
        while True:
            if expected is not None and len(messages) >= expected:
                return messages
            if predicate is not None and predicate(messages):
                return messages
            if expected is None and predicate is None and at_eof >= set(partitions):
                return messages
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return messages
            for msg in consumer.consume(num_messages=1000, timeout=min(0.2, remaining)):
                err = msg.error()
                if err is None:
                    messages.append(msg)
                    at_eof.discard(msg.partition())
                elif err.code() == KafkaError._PARTITION_EOF and (p := msg.partition()) is not None:
                    at_eof.add(p)
                else:
                    log.debug("consume_all: %s", err)
    finally:
        consumer.close()


def _wait_for_partitions(consumer: Consumer, topic: str, deadline: float) -> list[int]:
    """Partition ids of ``topic`` once metadata shows it (empty list if it never does)."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return []
        try:
            tm = consumer.list_topics(topic, timeout=min(1.0, remaining)).topics.get(topic)
        except KafkaException as exc:
            log.debug("consume_all: metadata for %r failed: %s", topic, exc)
        else:
            if tm is not None and tm.error is None and tm.partitions:
                return sorted(tm.partitions)
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def produce_all(
    bootstrap_servers: str,
    topic: str,
    values: Iterable[bytes | tuple[bytes | None, bytes]],
    *,
    headers: Headers | None = None,
    timeout: float = 30.0,
) -> int:
    """Produce every value (``bytes`` or ``(key, value)``), flush, and return the count.

    Raises :class:`BrokerError` if any delivery failed or the flush did not finish
    within ``timeout``: a test that silently lost its input would assert on nothing.
    ``headers`` are attached to every message.
    """
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "linger.ms": 5,
            "logger": _rdkafka_log,
        }
    )
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(f"partition {msg.partition()}: {err}")

    extra: dict[str, Any] = {}
    if headers is not None:
        extra["headers"] = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    count = 0
    deadline = time.monotonic() + timeout
    for item in values:
        key, value = item if isinstance(item, tuple) else (None, item)
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery, **extra)
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, bounded by the deadline.
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"produce to {topic!r}: local queue stayed full for {timeout:.1f}s"
                    ) from None
                producer.poll(0.05)
        count += 1
        if count % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(max(0.1, deadline - time.monotonic()))
    if remaining:
        raise BrokerError(
            f"produce to {topic!r}: {remaining} of {count} messages not delivered within {timeout:.1f}s"
        )
    if failures:
        raise BrokerError(
            f"produce to {topic!r}: {len(failures)} of {count} deliveries failed; first: {failures[0]}"
        )
    return count

"""Shared pytest fixtures: one Kafka-compatible cluster per session, fresh topics per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from stream_monitor.broker import create_topics
from stream_monitor.testing import kafka_bootstrap_from_env_or_start, unique_name


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``bootstrap.servers`` of $KAFKA_BOOTSTRAP_SERVERS, a Kafka testcontainer, or the embedded broker."""
    bootstrap, stop = kafka_bootstrap_from_env_or_start()
    try:
        yield bootstrap
    finally:
        stop()


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> Callable[..., str]:
    """``make(prefix="t", partitions=1) -> name``: create a uniquely named topic for this test.

    Unique names keep tests independent of each other and of earlier runs against a
    long-lived cluster.
    """

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = unique_name(prefix)
        create_topics(kafka_bootstrap, {name: partitions})
        return name

    return make

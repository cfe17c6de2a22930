"""Builders shared by the tests: a drifted stream with known malformed records, and a matching config."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from stream_monitor.simulate import MALFORMATIONS, TrafficSimulator, demo_model_config, malformed

START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW_SECONDS = 10
RATE = 100
DRIFT_AFTER = 60
DURATION = 120
DRIFTED = {"income", "credit_score", "channel"}


class FakeClock:
    """An injectable clock (``Engine(clock=...)``, ``MonitorService(clock=...)``) that moves only when told."""

    def __init__(self, now: datetime = datetime(2026, 3, 2, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Stream:
    messages: list[tuple[bytes, bytes]]
    malformed: dict[int, str]  # index in messages -> malformation
    windows: int  # windows the watermark closes in a run over all messages


def drifted_stream(seed: int = 11) -> Stream:
    """12 windows of 10 s at 100 events/s, drift from 60 s on, one of each malformation, then 5 tick events.

    The tick events sit in a later window so that the watermark closes all 12 windows
    in a Kafka run exactly as a file replay does at its end.
    """
    sim = TrafficSimulator(seed=seed, drift_at=START + timedelta(seconds=DRIFT_AFTER), drift_features=tuple(DRIFTED))
    messages = [(k, v) for k, v, _ in sim.messages(START, DURATION * RATE, RATE)]
    bad: dict[int, str] = {}
    for i, kind in enumerate(MALFORMATIONS):
        pos = 1500 + i * 1700
        event = sim.event(START + timedelta(seconds=pos / RATE))
        messages.insert(pos, (b"credit-risk", malformed(event, kind)))
        bad[pos] = kind
    tick_start = START + timedelta(seconds=DURATION + WINDOW_SECONDS + 1)
    messages += [(k, v) for k, v, _ in sim.messages(tick_start, 5, RATE)]
    return Stream(messages=messages, malformed=bad, windows=DURATION // WINDOW_SECONDS)


def monitor_config(**overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "service": {"metrics_host": "127.0.0.1", "metrics_port": 0, "max_event_bytes": 65_536,
                    "poll_timeout_seconds": 0.2, "commit_interval_seconds": 0.2, "lag_refresh_seconds": 0.5},
        "models": [demo_model_config(window_seconds=WINDOW_SECONDS, reference_windows=2)],
    }
    cfg.update(overrides)
    return cfg


def write_jsonl(path: Any, messages: list[tuple[bytes, bytes]]) -> None:
    with open(path, "wb") as fh:
        for _k, v in messages:
            fh.write(v + b"\n")


def loads(b: bytes) -> Any:
    return orjson.loads(b)


# -- shared by the tests that run the service on a real broker ---------------------------------


def scrape(port: int) -> str:
    """The service's Prometheus exposition text, read over HTTP like Prometheus does."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of `name` whose labels include `labels`."""
    import re

    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return None


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """Sum of the group's committed offsets over the topic's partitions (0 where none)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        offs = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(0, tp.offset) for tp in offs)
    finally:
        c.close()

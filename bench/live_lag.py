"""Section 3b: lag at a steady live rate through the embedded broker.

Section 3 measures how fast a backlog drains; a sidecar's user also asks how far
behind it runs while the traffic arrives. Here a producer in its own process (as
the inference service would be) sends events at a fixed rate, a fraction of the
end-to-end capacity measured in section 3 of the same run, while the service
consumes with its default settings (batches of ``service.batch_size`` records or
``service.poll_timeout_seconds``, whichever comes first). Each event's lag is the
time from its ``produce`` call to the moment the service's processed count passed
it (one partition: events are processed in order). The count is sampled every
``_SAMPLE_S``, so lags are known to within that step.
"""
from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from bench import stream
from bench.broker_e2e import handled, service_config
from stream_monitor.broker import EmbeddedBroker, create_topics
from stream_monitor.config import ServiceConfig
from stream_monitor.service import MonitorService
from stream_monitor.testing import unique_name

_SAMPLE_S = 0.005
_FRACTIONS = (0.25, 0.5, 0.75)
_WARMUP = 1000


def _producer(bootstrap: str, topic: str, phases: list[tuple[float, int]], ready: Any, commands: Any,
              out: Any) -> None:
    """Child process: produce :data:`_WARMUP` events and set `ready`; then, for each phase index read from
    `commands`, produce that phase's `n` events paced at its rate and send back each one's produce time
    (monotonic: the clock is system-wide)."""
    total = _WARMUP + sum(n for _, n in phases)
    messages = iter(stream.json_messages(stream.block(0, total, total)))
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    key = stream.MODEL_ID.encode()
    for _ in range(_WARMUP):
        producer.produce(topic, value=next(messages), key=key)
    producer.flush(60)
    ready.set()
    for _ in phases:
        rate, n = phases[commands.get(timeout=600)]
        sent = np.empty(n)
        start_at = time.monotonic()
        for i in range(n):
            due = start_at + i / rate
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)  # pacing the load generator, not synchronising a test
                now = time.monotonic()
            producer.produce(topic, value=next(messages), key=key)
            sent[i] = now
            producer.poll(0)
        producer.flush(60)
        out.put(sent.tobytes())


def run(capacity: float, window_seconds: float, seconds: float = 20.0,
        fractions: tuple[float, ...] = _FRACTIONS) -> dict[str, Any]:
    """Lag at each fraction of `capacity` (section 3's end-to-end events/s, measured in the same run).

    One broker, topic and service for all rates: the service first processes :data:`_WARMUP`
    events (its consumer has joined the group, which takes the embedded broker ~20 s here,
    and fetched), then each rate runs for `seconds` once the previous one has drained.
    """
    phases = [(capacity * f, max(int(capacity * f * seconds), 1)) for f in fractions]
    ctx = mp.get_context("spawn")  # a fresh interpreter: no librdkafka state forked from this process
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = unique_name("lag")
        create_topics(bootstrap, {topic: 1, topic + ".alerts": 1, topic + ".dlq": 1})
        cfg = service_config(bootstrap, topic, window_seconds, None)
        cfg.service.poll_timeout_seconds = ServiceConfig().poll_timeout_seconds  # the default, as users run it
        service = MonitorService(cfg, registry=CollectorRegistry())
        totals = service.pipeline.totals
        stop = threading.Event()
        consumer = threading.Thread(target=service.run, args=(stop,), daemon=True)
        consumer.start()
        out, ready, commands = ctx.Queue(), ctx.Event(), ctx.Queue()
        child = ctx.Process(target=_producer, args=(bootstrap, topic, phases, ready, commands, out), daemon=True)
        child.start()

        def processed() -> int:
            if child.exitcode not in (None, 0):
                raise RuntimeError(f"the producer process failed (exit code {child.exitcode})")
            return handled(totals)

        try:
            deadline = time.monotonic() + 180
            while (not ready.is_set() or processed() < _WARMUP) and time.monotonic() < deadline:
                time.sleep(_SAMPLE_S)
            if processed() < _WARMUP:
                raise RuntimeError("the service did not process the warm-up events within 180 s")
            rates = []
            for k, (rate, n) in enumerate(phases):
                base = processed()
                commands.put(k)
                times, counts = _follow(lambda base=base: processed() - base, n, seconds * 4 + 60)
                sent = np.frombuffer(out.get(timeout=60), dtype=np.float64)
                rates.append(_lags(rate, n, sent, times, counts) | {"fraction": fractions[k]})
            child.join(30)
        finally:
            stop.set()
            consumer.join(30)
            service.producer.close()  # before the broker goes, or librdkafka logs its reconnect attempts
    return {"capacity_events_per_s": capacity, "seconds": seconds, "sample_ms": _SAMPLE_S * 1000,
            "batch_size": cfg.service.batch_size, "poll_timeout_seconds": cfg.service.poll_timeout_seconds,
            "rates": rates}


def _follow(done: Callable[[], int], n: int, timeout: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample (time, events processed) every :data:`_SAMPLE_S` until `n` are."""
    times: list[float] = []
    counts: list[int] = []
    deadline = time.monotonic() + timeout
    count = 0
    while count < n and time.monotonic() < deadline:
        count = done()
        times.append(time.monotonic())
        counts.append(count)
        time.sleep(_SAMPLE_S)
    if count < n:
        raise RuntimeError(f"the service processed {count} of {n} events")
    return np.asarray(times), np.asarray(counts)


def _lags(rate: float, n: int, sent: np.ndarray, t: np.ndarray, c: np.ndarray) -> dict[str, Any]:
    """Lag percentiles (ms) of one phase: each event from its produce call to the first sample past it."""
    seen = t[np.searchsorted(c, np.arange(n), side="right")]
    lag_ms = (seen - sent) * 1000
    backlog = np.searchsorted(sent, t, side="right") - c  # produced but not yet processed, at each sample
    return {"rate": rate, "events": n, "produced_per_s": n / (sent[-1] - sent[0]) if n > 1 else 0.0,
            "lag_ms": {q: float(np.percentile(lag_ms, p)) for q, p in (("p50", 50), ("p95", 95), ("p99", 99))}
            | {"max": float(lag_ms.max())},
            "max_backlog_events": max(0, int(backlog.max()))}

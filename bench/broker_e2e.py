"""Section 3: end to end through the embedded broker, against the same events in-process, run by run.

Each run starts a fresh embedded broker, produces the N events to a fresh topic and
*then* starts the service (so the producer does not compete for the two cores while
consumption is measured), and times from the first processed event to the last. The
in-process baseline is the same ``Pipeline`` on the same messages in the service's
batch size, with sinks that keep nothing; it runs right after each broker run, so each
ratio compares runs made under the same machine load. Where the time goes comes from
CPU counters read over the measured interval: the service's thread, the rest of this
process (librdkafka's threads), and the broker process, plus the pipeline's own wall
time (its batch histogram).
"""
from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from bench import stream
from bench.inprocess import pipeline as inprocess_pipeline
from stream_monitor.broker import EmbeddedBroker, create_topics
from stream_monitor.config import MonitorConfig
from stream_monitor.service import MonitorService
from stream_monitor.sinks.base import RawRecord
from stream_monitor.testing import unique_name

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(stat: Path) -> float:
    """utime + stime of a /proc stat file, in seconds (0 when it is gone)."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _runqueue_s(schedstat: Path) -> float:
    """Time spent runnable but waiting for a CPU (second field of /proc/.../schedstat), in seconds."""
    try:
        return int(schedstat.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _produce(bootstrap: str, topic: str, messages: list[bytes]) -> float:
    """Produce every message and wait for delivery; returns the produce rate (events/s)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10000,
                         "queue.buffering.max.messages": 1_000_000})
    t = time.perf_counter()
    for m in messages:
        while True:
            try:
                producer.produce(topic, value=m, key=stream.MODEL_ID.encode())
                break
            except BufferError:
                producer.poll(0.01)
    if producer.flush(120) != 0:
        raise RuntimeError("the benchmark's input was not delivered")
    return len(messages) / (time.perf_counter() - t)


def service_config(bootstrap: str, topic: str, window_seconds: float, settings: dict[str, Any] | None,
            batch_size: int | None = None) -> MonitorConfig:
    kafka: dict[str, Any] = {"bootstrap_servers": bootstrap, "group_id": unique_name("g")}
    if settings:
        kafka["settings"] = settings
    cfg = stream.config(window_seconds, kafka=kafka, topics={"predictions": topic, "alerts": topic + ".alerts",
                                                             "dead_letter": topic + ".dlq"})
    cfg.service.poll_timeout_seconds = 0.05
    if batch_size is not None:
        cfg.service.batch_size = batch_size
    return cfg


def broker_once(messages: list[bytes], window_seconds: float, settings: dict[str, Any] | None = None,
                batch_size: int | None = None) -> dict[str, Any]:
    """One run: fresh broker and topic, produce everything, then time the service consuming it."""
    n = len(messages)
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = unique_name("bench")
        create_topics(bootstrap, {topic: 1, topic + ".alerts": 1, topic + ".dlq": 1})
        produce_rate = _produce(bootstrap, topic, messages)
        cfg = service_config(bootstrap, topic, window_seconds, settings, batch_size)
        service = MonitorService(cfg, registry=CollectorRegistry())
        totals = service.pipeline.totals
        batch_sum = service.metrics.batch_seconds
        broker_stat = Path(f"/proc/{broker.process.pid}/stat") if broker.process else Path("/nonexistent")
        stop = threading.Event()
        consumer = threading.Thread(target=service.run, args=(stop,), daemon=True)
        gc.collect()
        consumer.start()
        thread_stat = Path(f"/proc/self/task/{consumer.native_id}/stat")
        thread_sched = Path(f"/proc/self/task/{consumer.native_id}/schedstat")
        first: tuple[float, int, float, float, float, float, float] | None = None
        done = 0
        deadline = time.monotonic() + 600
        while done < n and time.monotonic() < deadline:
            done = handled(totals)
            if first is None and done:
                first = (time.perf_counter(), done, time.process_time(), _cpu_s(thread_stat), _cpu_s(broker_stat),
                         _sum(batch_sum), _runqueue_s(thread_sched))
            time.sleep(0.01)  # (measurement error <= 10 ms of seconds; a tighter poll takes the GIL more)
        end = (time.perf_counter(), done, time.process_time(), _cpu_s(thread_stat), _cpu_s(broker_stat),
               _sum(batch_sum), _runqueue_s(thread_sched))
        stop.set()
        consumer.join(30)
        service.producer.close()  # before the broker goes, or librdkafka logs its reconnect attempts
    if first is None or done < n:
        raise RuntimeError(f"the service processed {done} of {n} events")
    wall = end[0] - first[0]
    events = end[1] - first[1]
    per_event_us = {  # CPU (or wall, for the pipeline) per event over the measured interval
        "service_thread_cpu": (end[3] - first[3]) / events * 1e6,
        "process_cpu": (end[2] - first[2]) / events * 1e6,
        "broker_cpu": (end[4] - first[4]) / events * 1e6,
        "pipeline_wall": (end[5] - first[5]) / events * 1e6,
        "service_thread_waiting_for_cpu": (end[6] - first[6]) / events * 1e6,
        "wall": wall / events * 1e6,
    }
    return {"events_per_s": events / wall, "produce_events_per_s": produce_rate, "us_per_event": per_event_us,
            "batch_size": cfg.service.batch_size}


def handled(totals: Any) -> int:
    """Events the service has taken so far: counted into a window, or late (its window had closed)."""
    return sum(totals.processed.values()) + sum(totals.late.values())


def _sum(histogram: Any) -> float:
    return float(histogram._sum.get())


def inprocess_once(messages: list[bytes], window_seconds: float, batch_size: int) -> tuple[float, float]:
    """The same events through the same Pipeline without a broker, in the service's batch size.

    Timed like the broker run: from the end of the first batch to the end of the last (the
    service's timing starts at its first processed batch, and it closes no window at the end).
    Returns events/s and the microseconds per event spent waiting for a CPU.
    """
    recs = [RawRecord(value=m, key=None, topic="bench", partition=0, offset=i) for i, m in enumerate(messages)]
    batches = [recs[i:i + batch_size] for i in range(0, len(recs), batch_size)]
    p = inprocess_pipeline(window_seconds)
    gc.collect()
    p.handle(batches[0])
    sched = Path("/proc/thread-self/schedstat")
    t, q = time.perf_counter(), _runqueue_s(sched)
    for b in batches[1:]:
        p.handle(b)
    n = len(messages) - len(batches[0])
    return n / (time.perf_counter() - t), (_runqueue_s(sched) - q) / n * 1e6


def run(n_events: int, window_seconds: float, in_process: dict[str, Any] | None = None, runs: int = 3,
        settings: dict[str, Any] | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """``runs`` pairs (broker run, in-process run) on the same events; ratios per pair, median and range.

    ``in_process`` (section 1's result) is accepted for the report's cross-check only: the
    ratio uses the baseline measured here.
    """
    messages = stream.json_messages(stream.block(0, n_events, n_events))
    broker_runs: list[dict[str, Any]] = []
    base: list[float] = []
    base_waits: list[float] = []
    for _ in range(runs):
        broker_runs.append(broker_once(messages, window_seconds, settings, batch_size))
        rate, wait = inprocess_once(messages, window_seconds, broker_runs[-1]["batch_size"])
        base.append(rate)
        base_waits.append(wait)
    rates = [r["events_per_s"] for r in broker_runs]
    ratios = [r / b for r, b in zip(rates, base, strict=True)]
    med = statistics.median(rates)
    res: dict[str, Any] = {
        "events": n_events, "runs": runs, "processed": n_events,
        "events_per_s": med, "min": min(rates), "max": max(rates),
        "spread": (max(rates) - min(rates)) / med if med else 0.0,
        "in_process_events_per_s": statistics.median(base), "in_process_range": [min(base), max(base)],
        "in_process_waiting_for_cpu_us_per_event": statistics.median(base_waits),
        "vs_in_process_json": statistics.median(ratios), "vs_in_process_range": [min(ratios), max(ratios)],
        "produce_events_per_s": statistics.median(r["produce_events_per_s"] for r in broker_runs),
        "us_per_event": {k: statistics.median(r["us_per_event"][k] for r in broker_runs)
                         for k in broker_runs[0]["us_per_event"]},
        "batch_size": broker_runs[0]["batch_size"],
    }
    if in_process:
        res["section1_engine_json_events_per_s"] = in_process["engine_json"]["events_per_s"]
    return res

"""The hostile-input soak: malformed, non-finite, 2 MB, wrong-type and unknown-model records among valid traffic.

Shared by ``test_hostile_soak.py`` (reduced) and ``python -m bench.faults --soak`` (full).
Measures what the brief asks for: every bad record in the dead-letter topic with its
reason and position, consumer lag back to zero, series per metric, and the service's
resident memory over time (VmRSS from /proc).
"""
from __future__ import annotations

import random
import re
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from faults.harness import START, Scenario, ServiceProcess, make_topics, service_config, wait_until

from stream_monitor.simulate import TrafficSimulator
from stream_monitor.testing import consume_all, unique_name

CANARY = "CANARY-7f3a"  # planted in bad payloads' values: must never appear in a log line
BIG_BYTES = 2 * 1024 * 1024
SERIES_CAP = 1000  # per metric: the bound the soak asserts


@dataclass
class SoakReport:
    produced: int
    bad: Counter[str]
    dead_letters: Counter[str]
    headers_ok: bool
    rejected_metric: dict[str, float]
    lag_zero_after: float
    series_per_metric: dict[str, int]
    rss_kb: list[tuple[float, int]] = field(default_factory=list)
    log_has_canary: bool = False
    unknown_ids_in_metrics: int = 0
    seconds: float = 0.0
    produce_seconds: float = 0.0

    def rss_at(self) -> dict[str, float]:
        """RSS (MB) at the start and at 25/50/75/100% of the produce phase (the nearest sample)."""
        out: dict[str, float] = {}
        for q in (0, 25, 50, 75, 100):
            t = self.produce_seconds * q / 100
            out[f"{q}%"] = round(min(self.rss_kb, key=lambda s: abs(s[0] - t))[1] / 1024, 1)
        return out

    def rss_summary(self) -> dict[str, float]:
        values = [kb for _, kb in self.rss_kb]
        settled = values[len(values) // 4:] or values
        return {"start_mb": values[0] / 1024, "settled_min_mb": min(settled) / 1024,
                "settled_max_mb": max(settled) / 1024, "end_mb": values[-1] / 1024, "samples": len(values)}


def hostile_messages(valid: int, unknown_models: int, big: int, seed: int = 5) -> tuple[list[bytes], Counter[str]]:
    """Valid events of model-0 with 1% bad JSON, 0.5% NaN/inf, 0.5% wrong types, `big` 2 MB records, and one
    record for each of `unknown_models` distinct unknown model ids, shuffled in."""
    rng = random.Random(seed)
    sim = TrafficSimulator(model_id="model-0", seed=seed)
    out: list[bytes] = []
    bad: Counter[str] = Counter()
    for i, (_k, v, _b) in enumerate(sim.messages(START, valid, 100.0)):
        out.append(v)
        ev = orjson.loads(v)
        r = rng.random()
        if r < 0.01:
            out.append(v[: len(v) // 2] + f'"{CANARY}'.encode())
            bad["bad_json"] += 1
        elif r < 0.015:
            out.append(v.replace(b'"age":', b'"age":' + rng.choice([b"NaN", b"Infinity", b"-Infinity"]) + b',"_x":', 1))
            bad["non_finite"] += 1
        elif r < 0.02:
            ev["features"]["income"] = f"{CANARY}-{i}"
            out.append(orjson.dumps(ev))
            bad["wrong_type"] += 1
    for i in range(big):
        ev = orjson.loads(out[i * 7])
        ev["features"]["padding"] = CANARY * (BIG_BYTES // len(CANARY))
        out.insert(rng.randrange(len(out)), orjson.dumps(ev))
        bad["oversized"] += 1
    for i in range(unknown_models):
        ev = sim.event(START + timedelta(seconds=i / 100))
        ev["model_id"] = f"unknown-{i:05d}"
        out.insert(rng.randrange(len(out)), orjson.dumps(ev))
        bad["unknown_model"] += 1
    return out, bad


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
            return str(resp.read().decode())
    except OSError:
        return ""


def _samples(text: str) -> list[tuple[str, str, float]]:
    out = []
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
        if m:
            out.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return out


def run_soak(bootstrap: str, make_topic: Callable[..., str], workdir: Path, *, valid: int, unknown_models: int,
             big: int, produce_seconds: float) -> SoakReport:
    started = time.monotonic()
    scenario = Scenario(models=1, partitions=2)
    refs = scenario.references(workdir)
    topics = make_topics(make_topic, 2)
    port = _free_port()
    cfg = service_config(bootstrap, topics, [scenario.model_config("model-0", refs["model-0"])],
                         group=unique_name("soak"), metrics_port=port, max_queued_kbytes=8192)
    messages, bad = hostile_messages(valid, unknown_models, big)
    proc = ServiceProcess(cfg, workdir, "soak").start()
    report = SoakReport(produced=len(messages), bad=bad, dead_letters=Counter(), headers_ok=False,
                        rejected_metric={}, lag_zero_after=-1.0, series_per_metric={})
    try:
        wait_until(lambda: "assigned" in proc.log_tail(100_000), 60, "the soak instance joining")
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": 3 * BIG_BYTES})
        t0 = time.monotonic()
        step = max(1, len(messages) // max(1, int(produce_seconds * 4)))
        for i in range(0, len(messages), step):
            for v in messages[i:i + step]:
                while True:
                    try:
                        # model-0 is keyed to partition 0; the hostile records land on both partitions
                        part = 0 if b'"model_id":"model-0"' in v[:200] else hash(v) % 2
                        producer.produce(topics.predictions, value=v, partition=part)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)
            if (kb := proc.rss_kb()) is not None:
                report.rss_kb.append((time.monotonic() - t0, kb))
            delay = t0 + (i + step) / len(messages) * produce_seconds - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing of the load generator
        assert producer.flush(60) == 0, "input not delivered"
        done_at = time.monotonic()
        report.produce_seconds = done_at - t0

        def lag_zero() -> bool:
            kb = proc.rss_kb()
            if kb is not None:
                report.rss_kb.append((time.monotonic() - t0, kb))
            lags = [v for n, _, v in _samples(_scrape(port)) if n == "stream_monitor_consumer_lag"]
            rejected = sum(v for n, _, v in _samples(_scrape(port)) if n == "stream_monitor_events_rejected_total")
            return len(lags) == 2 and all(v == 0 for v in lags) and rejected >= sum(bad.values())

        wait_until(lag_zero, 180, f"consumer lag back to 0:\n{proc.log_tail()}", interval=0.5)
        report.lag_zero_after = time.monotonic() - done_at
        text = _scrape(port)
    finally:
        rc = proc.stop()
    assert rc == 0, proc.log_tail()
    samples = _samples(text)
    report.rejected_metric = {re.search(r'reason="([^"]+)"', labels).group(1): v  # type: ignore[union-attr]
                              for n, labels, v in samples if n == "stream_monitor_events_rejected_total"}
    report.series_per_metric = dict(Counter(n for n, _, _ in samples))
    report.unknown_ids_in_metrics = sum(1 for _, labels, _ in samples if "unknown-" in labels)
    dead = consume_all(bootstrap, topics.dead_letter, expected=sum(bad.values()), timeout=120)
    report.dead_letters = Counter(dict(m.headers() or [])["sm.reason"].decode() for m in dead)
    required = {"sm.reason", "sm.error", "sm.source.topic", "sm.source.partition", "sm.source.offset"}
    report.headers_ok = all(required <= {k for k, _ in (m.headers() or [])} for m in dead)
    report.log_has_canary = CANARY in proc.log_path.read_text(errors="replace")
    report.seconds = time.monotonic() - started
    return report


def summary(report: SoakReport) -> dict[str, Any]:
    return {"produced": report.produced, "bad": dict(report.bad), "dead_letters": dict(report.dead_letters),
            "lag_zero_after_s": round(report.lag_zero_after, 1), "rss": report.rss_summary(),
            "rss_at_mb": report.rss_at(),
            "max_series_per_metric": max(report.series_per_metric.values()),
            "series_per_metric": report.series_per_metric, "seconds": round(report.seconds)}

"""Drive `stream-monitor run` as a real process against a real broker, kill it, and collect what it published.

Shared by the fault tests (reduced counts) and ``python -m bench.faults`` (full
counts). A scenario is several models, each keyed to one partition, each with its
own file reference (so binned statistics are exact and comparable with the oracle)
and a drift in the second half of its stream.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Producer
from helpers import committed_total

from stream_monitor.config import MonitorConfig, config_from_dict
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.engine import Engine
from stream_monitor.simulate import TrafficSimulator, demo_model_config
from stream_monitor.testing import consume_all, unique_name

START = datetime(2026, 2, 1, tzinfo=UTC)
PSI_ONLY = [{"id": "psi", "metric": "psi", "comparison": ">=", "thresholds": {"warning": 0.1, "critical": 0.25},
             "min_samples": 100}]


@dataclass
class Scenario:
    models: int = 4
    partitions: int = 4
    events_per_model: int = 5000
    rate: float = 100.0  # events per second of event time, per model
    window_seconds: float = 2.0
    seed: int = 3

    def model_ids(self) -> list[str]:
        return [f"model-{i}" for i in range(self.models)]

    def partition_of(self, i: int) -> int:
        return i % self.partitions

    def messages(self) -> list[list[bytes]]:
        """Per partition, its records in order (models interleaved in event time)."""
        streams = []
        for i, mid in enumerate(self.model_ids()):
            half = START + timedelta(seconds=self.events_per_model / self.rate / 2)
            sim = TrafficSimulator(model_id=mid, seed=self.seed * 100 + i, drift_at=half)
            streams.append([(i, ts_i, v) for ts_i, (_k, v, _b) in
                            enumerate(sim.messages(START, self.events_per_model, self.rate))])
        parts: list[list[bytes]] = [[] for _ in range(self.partitions)]
        for i, _ts, v in sorted((x for s in streams for x in s), key=lambda t: (t[1], t[0])):
            parts[self.partition_of(i)].append(v)
        return parts

    def references(self, directory: Path) -> dict[str, Path]:
        """One file reference per model, from drift-free traffic of the day before."""
        cfg = config_from_dict({"models": [self.model_config(m, None) for m in self.model_ids()]})
        return file_references(cfg, self.model_ids(), directory, seed=self.seed, rate=self.rate, events=3000)

    def model_config(self, model_id: str, reference: Path | None) -> dict[str, Any]:
        model = demo_model_config(model_id=model_id, window_seconds=self.window_seconds, reference_windows=1)
        model["rules"] = PSI_ONLY
        if reference is not None:
            model["reference"] = {"path": str(reference)}
        return model


def file_references(config: MonitorConfig, model_ids: Sequence[str], directory: Path, *, seed: int,
                    rate: float, events: int) -> dict[str, Path]:
    """A reference file per model, from `events` drift-free simulated events of the day before START."""
    engine = Engine(config)
    out: dict[str, Path] = {}
    for i, mid in enumerate(model_ids):
        sim = TrafficSimulator(model_id=mid, seed=seed * 1000 + i)
        stream = (PredictionEvent.model_validate_json(v)
                  for _k, v, _b in sim.messages(START - timedelta(days=1), events, rate))
        path = directory / f"reference-{mid}.json"
        engine.build_reference(mid, stream, source=f"file:{path.name}").save(path)
        out[mid] = path
    return out


@dataclass
class Topics:
    predictions: str
    alerts: str
    dead_letter: str
    windows: str
    checkpoints: str


def make_topics(make: Callable[..., str], partitions: int) -> Topics:
    return Topics(predictions=make("preds", partitions), alerts=make("alerts"), dead_letter=make("dlq"),
                  windows=make("windows"), checkpoints=unique_name("ckpt"))


def service_config(bootstrap: str, topics: Topics, models: list[dict[str, Any]], *, group: str,
                   delivery: str = "at_least_once", instance: str = "i0", cooperative: bool = False,
                   backend: str = "kafka", directory: Path | None = None, **service: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 300,
                                "max.poll.interval.ms": 20000}
    if cooperative:
        settings["partition.assignment.strategy"] = "cooperative-sticky"
    checkpoint: dict[str, Any] = {"backend": backend, "topic": topics.checkpoints}
    if directory is not None:
        checkpoint["directory"] = str(directory)
    return {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": group, "settings": settings},
        "topics": {"predictions": topics.predictions, "alerts": topics.alerts, "dead_letter": topics.dead_letter,
                   "windows": topics.windows},
        "service": {"metrics_host": "127.0.0.1", "metrics_port": 0, "poll_timeout_seconds": 0.2,
                    "commit_interval_seconds": 0.3, "batch_size": 500, "lag_refresh_seconds": 0.5,
                    "delivery": delivery, "instance_id": instance, **service},
        "checkpoint": checkpoint,
        "models": models,
    }


class ServiceProcess:
    """One `stream-monitor run` child process; stderr goes to a log file for post-mortems."""

    def __init__(self, config: dict[str, Any], workdir: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.cfg_path = workdir / f"{name}.yaml"
        self.cfg_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream_monitor.cli", "--log-level", "INFO", "run",
                                      "-c", str(self.cfg_path)], stdout=subprocess.DEVNULL, stderr=log,
                                     env=self.env)
        log.close()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, wait for the clean exit (final checkpoint and commit); SIGKILL if it does not come."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)

    def wait_exit(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return int(self.proc.wait(timeout))
        except subprocess.TimeoutExpired:
            return None

    def rss_kb(self) -> int | None:
        """VmRSS of the child (Linux /proc)."""
        if self.proc is None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


class GradualProducer(threading.Thread):
    """Produces every partition's records at an even pace over `seconds`, so kills land mid-stream."""

    def __init__(self, bootstrap: str, topic: str, partitions: Sequence[Sequence[bytes]], seconds: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.partitions, self.seconds = bootstrap, topic, partitions, seconds
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "enable.idempotence": True})
            total = sum(len(p) for p in self.partitions)
            steps = max(1, int(self.seconds * 10))
            cursors = [0] * len(self.partitions)
            started = time.monotonic()
            for step in range(1, steps + 1):
                for p, values in enumerate(self.partitions):
                    until = len(values) * step // steps
                    for v in values[cursors[p]:until]:
                        while True:
                            try:
                                producer.produce(self.topic, value=v, partition=p, key=None)
                                break
                            except BufferError:
                                producer.poll(0.05)
                    self.sent += until - cursors[p]
                    cursors[p] = until
                producer.poll(0)
                delay = started + step * self.seconds / steps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing of the load generator, not synchronisation
            if producer.flush(60) or self.sent != total:
                raise RuntimeError(f"produced {self.sent} of {total}")
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self.error = exc



def read_windows(bootstrap: str, topic: str, want: set[str] | None = None, timeout: float = 30
                 ) -> list[tuple[str, dict[str, Any]]]:
    def enough(msgs: list[Any]) -> bool:
        return want is not None and want <= {m.key().decode() for m in msgs}

    msgs = consume_all(bootstrap, topic, timeout=timeout, predicate=enough if want is not None else None)
    return [(m.key().decode(), orjson.loads(m.value())) for m in msgs]


def read_json(bootstrap: str, topic: str, timeout: float = 20) -> list[dict[str, Any]]:
    return [orjson.loads(m.value()) for m in consume_all(bootstrap, topic, timeout=timeout)]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)  # polling interval under a deadline
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class KillReport:
    kills: int
    restores: int
    events: int
    seconds: float
    windows: dict[str, Any]
    alerts: dict[str, Any]
    logs: list[Path]


def kill_run(bootstrap: str, make_topic: Callable[..., str], workdir: Path, scenario: Scenario, *, kills: int,
             seed: int, produce_seconds: float, kill_after: tuple[float, float] = (0.0, 3.0),
             delivery: str = "at_least_once", backend: str = "kafka", timeout: float = 240) -> KillReport:
    """Stream the scenario while one instance is SIGKILLed `kills` times at seeded random moments."""
    import random

    from faults.oracle import compare_alerts, compare_windows, run_oracle

    started = time.monotonic()
    rng = random.Random(seed)
    refs = scenario.references(workdir)
    models = [scenario.model_config(m, refs[m]) for m in scenario.model_ids()]
    topics = make_topics(make_topic, scenario.partitions)
    group = unique_name("kill")
    cfg = service_config(bootstrap, topics, models, group=group, delivery=delivery, backend=backend)
    parts = scenario.messages()
    total = sum(len(p) for p in parts)
    oracle_windows, oracle_alerts = run_oracle(config_from_dict(cfg), parts)

    producer = GradualProducer(bootstrap, topics.predictions, parts, produce_seconds)
    producer.start()
    logs: list[Path] = []
    for k in range(kills):
        proc = ServiceProcess(cfg, workdir, f"run-{k}").start()
        logs.append(proc.log_path)
        wait_until(lambda p=proc: "assigned" in p.log_tail(100_000), 60, f"run-{k} joining the group")  # type: ignore[misc]
        time.sleep(rng.uniform(*kill_after))  # the fault schedule: a seeded random moment, not a wait for state
        proc.kill()
    final = ServiceProcess(cfg, workdir, "final").start()
    logs.append(final.log_path)
    try:
        producer.join(timeout)
        assert producer.error is None, producer.error
        wait_until(lambda: committed_total(bootstrap, group, topics.predictions, scenario.partitions) >= total,
                   timeout, f"all {total} offsets committed; log:\n{final.log_tail()}")
        published = read_windows(bootstrap, topics.windows, set(oracle_windows), timeout=60)
    finally:
        rc = final.stop()
    assert rc == 0, final.log_tail()
    alerts = read_json(bootstrap, topics.alerts)
    restores = sum(p.read_text(errors="replace").count("from checkpoint at offset") for p in logs)
    return KillReport(kills=kills, restores=restores, events=total, seconds=time.monotonic() - started,
                      windows=compare_windows(published, oracle_windows), alerts=compare_alerts(alerts, oracle_alerts),
                      logs=logs)

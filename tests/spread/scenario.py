"""A hot model spread round-robin over the input partitions, a cold one keyed to partition 0, and their oracle.

The oracle is the ordinary single-owner run over the same events (every event of a
model through one engine, in order): a spread run must publish the same windows and
the same alert ids. Timestamps only increase, so no event is late in either run.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from faults.harness import file_references
from faults.oracle import ListAlertSink
from prometheus_client import CollectorRegistry

from stream_monitor.config import MonitorConfig, config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.engine_types import WindowReport
from stream_monitor.simulate import DEFAULT_DRIFT_FEATURES, TrafficSimulator, demo_model_config
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sinks.files import CountingDeadLetterSink
from stream_monitor.sinks.kafka import window_id_for, window_record
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.pipeline import Pipeline
from stream_monitor.spread import ListPartialSink, PartialRecord, SpreadRuntime

START = datetime(2026, 3, 1, tzinfo=UTC)
HOT, COLD = "hot-model", "cold-model"
DRIFTED = set(DEFAULT_DRIFT_FEATURES)
PSI = [{"id": "psi", "metric": "psi", "comparison": ">=", "thresholds": {"warning": 0.1, "critical": 0.25},
        "min_samples": 100}]


@dataclass
class HotScenario:
    events: int = 6000
    rate: float = 200.0  # hot events per second of event time; the cold model gets a quarter
    window_seconds: float = 2.0
    partitions: int = 3
    seed: int = 7

    def _stream(self, model_id: str, n: int, rate: float, seed: int) -> list[tuple[int, bytes]]:
        half = START + timedelta(seconds=n / rate / 2)
        sim = TrafficSimulator(model_id=model_id, seed=seed, drift_at=half)
        return [(int((START + timedelta(seconds=i / rate)).timestamp() * 1000), v)
                for i, (_k, v, _b) in enumerate(sim.messages(START, n, rate))]

    def hot(self) -> list[bytes]:
        return [v for _t, v in self._stream(HOT, self.events, self.rate, self.seed)]

    def cold(self) -> list[bytes]:
        return [v for _t, v in self._stream(COLD, self.events // 4, self.rate / 4, self.seed + 1)]

    def spread_partitions(self) -> list[list[bytes]]:
        """The hot model round-robin over every partition; the cold one keyed to partition 0, in event time."""
        parts: list[list[tuple[int, int, bytes]]] = [[] for _ in range(self.partitions)]
        for i, (t, v) in enumerate(self._stream(HOT, self.events, self.rate, self.seed)):
            parts[i % self.partitions].append((t, 0, v))
        parts[0].extend((t, 1, v) for t, v in self._stream(COLD, self.events // 4, self.rate / 4, self.seed + 1))
        return [[v for _t, _m, v in sorted(p, key=lambda x: (x[0], x[1]))] for p in parts]

    def oracle_partitions(self) -> list[list[bytes]]:
        """Each model whole, in order, on its own partition: the single-owner run."""
        return [self.hot(), self.cold()]

    def references(self, directory: Path) -> dict[str, Path]:
        cfg = config_from_dict({"models": [self.model_config(m, None) for m in (HOT, COLD)]})
        return file_references(cfg, (HOT, COLD), directory, seed=self.seed, rate=self.rate, events=4000)

    def model_config(self, model_id: str, reference: Path | None) -> dict[str, Any]:
        model = demo_model_config(model_id=model_id, window_seconds=self.window_seconds, reference_windows=1)
        model["rules"] = PSI
        if reference is not None:
            model["reference"] = {"path": str(reference)}
        if model_id == HOT and reference is not None:
            model["spread"] = {"enabled": True}
        return model

    def models(self, refs: dict[str, Path]) -> list[dict[str, Any]]:
        return [self.model_config(HOT, refs[HOT]), self.model_config(COLD, refs[COLD])]


@dataclass
class InProcess:
    """A spread run without a broker: one engine with its runtime, partials handed over in memory."""

    engine: Engine
    runtime: SpreadRuntime
    sink: ListPartialSink
    pipeline: Pipeline
    alerts: ListAlertSink

    @classmethod
    def build(cls, config: MonitorConfig, partitions: int) -> InProcess:
        engine = Engine(config)
        sink = ListPartialSink()
        runtime = SpreadRuntime(engine, sink, CollectorRegistry())
        runtime.source_partitions = partitions
        alerts = ListAlertSink()
        pipeline = Pipeline(engine, MonitorMetrics(CollectorRegistry()), alerts, CountingDeadLetterSink())
        pipeline.spread = runtime
        return cls(engine, runtime, sink, pipeline, alerts)

    def shard(self, partition: int, values: list[bytes], offset: int) -> list[WindowReport]:
        topic = self.engine.config.topics.predictions
        return self.pipeline.handle([RawRecord(value=v, key=None, topic=topic, partition=partition,
                                               offset=offset + j) for j, v in enumerate(values)]).reports

    def merge(self, records: list[PartialRecord], offset: int = 0) -> list[WindowReport]:
        topic = self.engine.config.topics.partials
        return self.pipeline.handle([RawRecord(value=r.encode(), key=r.model_id.encode(), topic=topic, partition=0,
                                               offset=offset + j) for j, r in enumerate(records)]).reports


def windows_of(reports: list[WindowReport]) -> list[tuple[str, dict[str, Any]]]:
    return [(window_id_for(r), orjson.loads(window_record(r))) for r in reports]

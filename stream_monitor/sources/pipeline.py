"""The shared path of `run` and `replay`: decode and validate, dead-letter the bad, feed the engine, emit.

Nothing here knows about Kafka or files: the source hands over raw records, the
sinks take alerts and dead letters. A bad record never raises out of `handle`.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from stream_monitor.contracts.decode import EventDecoder
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.engine import Engine
from stream_monitor.engine_types import EngineOutput
from stream_monitor.errors import EventRejected
from stream_monitor.sinks.base import AlertSink, DeadLetterSink, RawRecord
from stream_monitor.sinks.metrics import MonitorMetrics

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(
        self, engine: Engine, metrics: MonitorMetrics, alerts: AlertSink, dead_letters: DeadLetterSink
    ) -> None:
        self.engine = engine
        self.decoder = EventDecoder(engine.config, engine.feature_kinds())
        self.metrics = metrics
        self.alerts = alerts
        self.dead_letters = dead_letters
        self.totals = EngineOutput()
        self.rejected = 0

    def handle(self, records: Sequence[RawRecord]) -> EngineOutput:
        started = time.perf_counter()
        valid: list[PredictionEvent] = []
        for record in records:
            self.metrics.consumed.labels(record.topic).inc()
            try:
                valid.append(self.decoder.decode(record.value))
            except EventRejected as err:
                self._reject(record, err)
            except Exception as exc:  # noqa: BLE001 - the process never dies on data
                self._reject(record, EventRejected("schema", f"unexpected {type(exc).__name__} while decoding"))
        with self.metrics.lock:
            out = self.engine.process(valid)
        self._emit(out)
        if valid:
            newest = max(e.timestamp for e in valid)
            lag = (datetime.now(UTC) - newest).total_seconds()
            for model_id in out.processed:
                self.metrics.event_lag.labels(model_id).set(lag)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return out

    def finish(self) -> EngineOutput:
        """Close all open windows (the end of a finite input)."""
        with self.metrics.lock:
            out = self.engine.flush()
        self._emit(out)
        return out

    def flush(self) -> int:
        """Confirm delivery of everything emitted so far; the source commits offsets only after this."""
        return self.alerts.flush() + self.dead_letters.flush()

    def _reject(self, record: RawRecord, err: EventRejected) -> None:
        self.rejected += 1
        self.metrics.rejected.labels(err.reason).inc()
        self.dead_letters.send(record, err)

    def _emit(self, out: EngineOutput) -> None:
        for alert in out.alerts:
            self.alerts.publish(alert)
        self.metrics.record(out)
        self.totals.extend(out)

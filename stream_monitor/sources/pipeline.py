"""The shared path of `run` and `replay`: decode and validate, dead-letter the bad, feed the engine, emit.

Nothing here knows about Kafka or files: the source hands over raw records, the
sinks take alerts and dead letters. A bad record never raises out of `handle`.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from operator import attrgetter

from stream_monitor.contracts.decode import EventDecoder
from stream_monitor.contracts.records import RecordDecoder
from stream_monitor.engine import Engine
from stream_monitor.engine_types import EngineOutput
from stream_monitor.errors import EventRejected
from stream_monitor.labels.decode import LabelDecoder
from stream_monitor.sinks.base import AlertSink, DeadLetterSink, RawRecord
from stream_monitor.sinks.decisions import DecisionSink, NullDecisionSink
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.spread.runtime import SpreadRuntime
from stream_monitor.windows import from_ms

log = logging.getLogger(__name__)
_TOPIC = attrgetter("topic")


class Pipeline:
    def __init__(
        self, engine: Engine, metrics: MonitorMetrics, alerts: AlertSink, dead_letters: DeadLetterSink,
        decisions: DecisionSink | None = None, retain: int | None = None,
    ) -> None:
        self.engine = engine
        #: How many reports, alerts and decisions `totals` keeps (None: all, for finite replays). A
        #: long-running service must bound it: its memory would otherwise grow with every window.
        self.retain = retain
        self.decoder = EventDecoder(engine.config, engine.feature_kinds())
        #: The hot path: whole batches to per-model columns, same decisions as ``decoder`` (docs/performance.md).
        self.records = RecordDecoder.for_engine(engine)
        self.metrics = metrics
        self.alerts = alerts
        self.dead_letters = dead_letters
        #: Retrain / promote / hold / rollback / blocked decisions (topics.decisions, the audit log).
        self.decisions: DecisionSink = decisions if decisions is not None else NullDecisionSink()
        self.totals = EngineOutput()
        #: Closed windows by role and alerts by severity ("resolved" for resolutions), over the whole run:
        #: unlike ``totals``' lists these stay exact when ``retain`` trims them.
        self.windows_closed: Counter[str] = Counter()
        self.alert_counts: Counter[str] = Counter()
        self.rejected = 0
        #: Records of this topic are label events (delayed ground truth), joined by ``Engine.process_labels``.
        self.labels_topic = engine.config.topics.labels
        self.label_decoder = LabelDecoder(engine.config)
        #: Spread models (stream_monitor.spread): set by the service when a model has ``spread.enabled``.
        self.spread: SpreadRuntime | None = None

    def handle(self, records: Sequence[RawRecord]) -> EngineOutput:
        """Records of any topics, in order (replay, the Python API, tests)."""
        if self.spread is not None and records and self.spread.is_partials(records[0].topic):
            return self.handle_partials(records)
        if self.labels_topic is not None and any(r.topic == self.labels_topic for r in records):
            predictions = [r for r in records if r.topic != self.labels_topic]
            out = self.handle(predictions) if predictions else EngineOutput()
            out.extend(self.handle_labels([r for r in records if r.topic == self.labels_topic]))
            return out
        started = self._consumed(records)
        return self._predictions([r.value for r in records], records.__getitem__, started)

    def _consumed(self, records: Sequence[RawRecord]) -> float:
        """Count records per topic in the consumed metric; returns the batch's start time."""
        started = time.perf_counter()
        for topic, count in Counter(map(_TOPIC, records)).items():
            self.metrics.consumed.labels(topic).inc(count)
        return started

    def handle_values(self, topic: str, values: Sequence[bytes | None],
                      record_at: Callable[[int], RawRecord]) -> EngineOutput:
        """One topic's raw values in order, as the Kafka source has them: no Python object per message.

        ``record_at(i)`` builds the full record of value ``i`` (key, position, timestamp); it is called only
        for rejected values, which go to the dead-letter topic with that provenance. Same results as
        :meth:`handle` on the same records.
        """
        started = time.perf_counter()
        self.metrics.consumed.labels(topic).inc(len(values))
        if topic == self.labels_topic:
            return self._labels(values, record_at, started)
        if self.spread is not None and self.spread.is_partials(topic):  # partial sketches of spread models
            return self._partials([record_at(i) for i in range(len(values))], started)
        return self._predictions(values, record_at, started)

    def _arrived(self, stream: str, models: Iterable[str], record_at: Callable[[int], RawRecord]) -> None:
        """The partition the models' events arrived on: in a consumer group, freshness speaks only for streams
        on its own partitions (:meth:`FreshnessTracker.owns`). One partition's records, as the Kafka source
        hands them over."""
        freshness = self.engine.freshness
        if freshness.assigned is None:
            return
        models = set(models)
        if models:
            partition = record_at(0).partition
            for model_id in models:
                freshness.arrived_on(model_id, stream, partition)

    def handle_labels(self, records: Sequence[RawRecord]) -> EngineOutput:
        """Label events: decode (bad ones to the dead-letter topic), join, emit alerts of re-judged windows."""
        started = self._consumed(records)
        return self._labels([r.value for r in records], records.__getitem__, started)

    def _predictions(self, values: Sequence[bytes | None], record_at: Callable[[int], RawRecord],
                     started: float) -> EngineOutput:
        try:
            decoded = self.records.decode(values)
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the stream: go one by one
            log.error("batch decode failed (%s); decoding %d records one by one", type(exc).__name__, len(values))
            decoded = self.records.decode_each(values)
        for i, err in decoded.rejected:
            self._reject(record_at(i), err)
        with self.metrics.lock:
            batches = decoded.batches
            if self.spread is not None and values:  # one partition's records (the Kafka source's contract)
                first = record_at(0)
                batches = self.spread.shard((first.topic, first.partition), batches)
            out = self.engine.process_columns(batches)
            self._arrived("predictions", [b.model_id for b in decoded.batches], record_at)
        self._emit(out)
        if decoded.newest_ms is not None:
            lag = (datetime.now(UTC) - from_ms(decoded.newest_ms)).total_seconds()
            for model_id in out.processed:
                self.metrics.event_lag.labels(model_id).set(lag)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return out

    def _labels(self, values: Sequence[bytes | None], record_at: Callable[[int], RawRecord],
                started: float) -> EngineOutput:
        labels, rejected = self.label_decoder.decode_all(values)
        for i, err in rejected:
            self._reject(record_at(i), err)
        with self.metrics.lock:
            out = self.engine.process_labels(labels)
            self._arrived("labels", [lab.model_id for lab in labels if lab.model_id in self.engine.models], record_at)
        self._emit(out)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return out

    def handle_partials(self, records: Sequence[RawRecord]) -> EngineOutput:
        """Partial window sketches of spread models: merge, and evaluate the windows all sources have passed."""
        started = time.perf_counter()
        self.metrics.consumed.labels(records[0].topic).inc(len(records))
        return self._partials(records, started)

    def _partials(self, records: Sequence[RawRecord], started: float) -> EngineOutput:
        assert self.spread is not None
        with self.metrics.lock:
            out = self.spread.merge(records)
        self._emit(out)
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
        spread = self.spread.flush() if self.spread is not None else 0
        return self.alerts.flush() + self.dead_letters.flush() + self.decisions.flush() + spread

    def tick(self, now: datetime | None = None) -> EngineOutput:
        """Time-driven outputs (schedules, freshness): the Kafka source calls it every poll, replay with the
        newest event time; ``now`` defaults to the engine's clock."""
        with self.metrics.lock:
            out = self.engine.tick(now)
        self._emit(out)
        return out

    def _reject(self, record: RawRecord, err: EventRejected) -> None:
        self.rejected += 1
        self.metrics.rejected.labels(err.reason).inc()
        self.dead_letters.send(record, err)

    def _emit(self, out: EngineOutput) -> None:
        for alert in out.alerts:
            self.alerts.publish(alert)
        for decision in out.decisions:
            self.decisions.publish(decision)
        self.metrics.record(out)
        self.totals.extend(out)
        self.windows_closed.update(r.role for r in out.reports)
        self.alert_counts.update(a.severity if a.status == "firing" else "resolved" for a in out.alerts)
        if self.retain is not None:
            for kept in (self.totals.reports, self.totals.alerts, self.totals.decisions, self.totals.updates):
                del kept[: max(0, len(kept) - self.retain)]

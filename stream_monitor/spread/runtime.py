"""Spread models on one running instance: shards of the input partitions it owns, merges of the partials it owns.

The three callers and what they get:

* :class:`~stream_monitor.sources.pipeline.Pipeline` hands over each input partition's
  decoded batches (:meth:`SpreadRuntime.shard` keeps the spread models' rows, publishes
  the partials they finalise and gives back the rest for the engine) and each
  partials-topic batch (:meth:`SpreadRuntime.merge` returns the evaluated windows,
  alerts and decisions as an ordinary :class:`EngineOutput`);
* the pipeline's ``flush`` confirms the partials with the other outputs, so a
  checkpoint (and the offset commit after it) never covers a partial that was not
  delivered: a crash re-publishes it under the same id;
* :class:`~stream_monitor.checkpoint.coordinator.Checkpointer` stores this state per
  partition beside the models' (``snapshot`` / ``restore`` / ``release``; ``models``
  names the spread models whose merge lives on a partials partition, so their engine
  state moves with that partition).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry, Counter, Gauge

from stream_monitor.broker import partition_count
from stream_monitor.columns import ColumnBatch
from stream_monitor.engine import Engine
from stream_monitor.engine_types import EngineOutput
from stream_monitor.errors import StreamMonitorError
from stream_monitor.performance import hooks as outcome_hooks
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sinks.kafka import DeliveryTracker
from stream_monitor.spread.merger import Merge
from stream_monitor.spread.records import PartialError, PartialRecord, source_key
from stream_monitor.spread.shard import Shard

log = logging.getLogger(__name__)

TP = tuple[str, int]


class SpreadMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.partials = Counter("stream_monitor_spread_partials", "Partial records of spread models by what "
                                "happened to them: published (shard), merged, replaced (a replay of one already "
                                "held), stale (its windows were already evaluated), refused (other configuration "
                                "or reference), watermark (merger)", ["model_id", "result"], registry=registry)
        self.partial_bytes = Gauge("stream_monitor_spread_partial_bytes", "Size of the last pane partial "
                                   "published (compressed)", ["model_id"], registry=registry)
        self.waiting = Gauge("stream_monitor_spread_waiting_sources", "Source partitions the merger of a spread "
                             "model has no watermark from yet (its windows wait for them)", ["model_id"],
                             registry=registry)


class PartialSink:
    """Where shards publish (Kafka in the service; a list in tests and the benchmark)."""

    def publish(self, record: PartialRecord) -> int:
        """Send one record; returns its encoded size."""
        raise NotImplementedError

    def flush(self) -> int:
        """Confirm delivery of everything sent; the number of failed deliveries."""
        raise NotImplementedError


class KafkaPartialSink(PartialSink):
    """Partials to `topics.partials`, keyed by model id: all of one model's land in one partition."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.topic = topic
        self.tracker = DeliveryTracker(producer)

    def publish(self, record: PartialRecord) -> int:
        value = record.encode()
        self.tracker.produce(topic=self.topic, key=record.model_id.encode(), value=value,
                             headers={"sm.kind": record.kind, "sm.id": record.partial_id})
        return len(value)

    def flush(self) -> int:
        return self.tracker.flush()


class ListPartialSink(PartialSink):
    """Keeps what was published (tests, the benchmark, in-process runs without a broker)."""

    def __init__(self) -> None:
        self.records: list[PartialRecord] = []

    def publish(self, record: PartialRecord) -> int:
        self.records.append(record)
        return len(record.encode())

    def take(self) -> list[PartialRecord]:
        """Everything published since the last call."""
        out, self.records = self.records, []
        return out

    def flush(self) -> int:
        return 0


def ensure_partials_topic(client_conf: dict[str, Any], topic: str, partitions: int, max_bytes: int) -> int:
    """Create the partials topic if it is missing; returns its partition count."""
    admin = AdminClient(client_conf)
    meta = admin.list_topics(timeout=10).topics.get(topic)  # all topics: naming one may auto-create it
    if meta is None or meta.error is not None:
        futures = admin.create_topics([NewTopic(topic, num_partitions=max(1, partitions), replication_factor=-1,
                                                config={"max.message.bytes": str(max_bytes)})], request_timeout=15)
        exc = futures[topic].exception(timeout=20)
        err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
        if exc is not None and not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise StreamMonitorError(f"cannot create the partials topic {topic!r} (topics.partials): {err}")
        log.info("created partials topic %s (%d partitions)", topic, max(1, partitions))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        count = partition_count(admin, topic, 5)
        if count:
            return count
        time.sleep(0.1)  # paces metadata polls until the new topic is visible, bounded by the deadline
    raise StreamMonitorError(f"partials topic {topic!r} (topics.partials) is not visible after 20 s")


class SpreadRuntime:
    """Shards and merges of the spread models (``models[].spread.enabled``) on this instance."""

    def __init__(self, engine: Engine, sink: PartialSink, registry: CollectorRegistry,
                 processed: Counter | None = None, late: Counter | None = None) -> None:
        self.engine = engine
        self.sink = sink
        self.metrics = SpreadMetrics(registry)
        self._processed, self._late = processed, late
        self.models = [mid for mid, mm in engine.models.items() if mm.config.spread.enabled]
        self.topic = engine.config.topics.partials
        self.input_topic = engine.config.topics.predictions
        #: Partitions of the input topic (the service reads them from its metadata before the first poll).
        self.source_partitions: int | None = None
        self.shards: dict[TP, dict[str, Shard]] = {}
        self.merges: dict[TP, dict[str, Merge]] = {}
        self._warned: set[str] = set()

    def is_partials(self, topic: str) -> bool:
        return topic == self.topic

    def sources(self, model_id: str) -> list[str]:
        """The source partitions whose watermarks the model's merger waits for."""
        n = self.engine.models[model_id].config.spread.source_partitions or self.source_partitions
        if n is None:
            self._warn_once(f"sources:{model_id}", "spread model %s: the number of source partitions is unknown "
                            "(set models[].spread.source_partitions); its windows wait", model_id)
            return []
        return [source_key(self.input_topic, p) for p in range(n)]

    # -- shard side -------------------------------------------------------------------------

    def shard(self, tp: TP, batches: Sequence[ColumnBatch]) -> list[ColumnBatch]:
        """Take the spread models' rows of one input partition's batch; the other models' batches come back."""
        if not self.models:
            return list(batches)
        rest = [b for b in batches if b.model_id not in self.models]
        mine: dict[str, list[ColumnBatch]] = {}
        for b in batches:
            if b.model_id in self.models and len(b):
                mine.setdefault(b.model_id, []).append(b)
        newest = max((int(b.ts_ms.max()) for b in batches if len(b)), default=None)
        if newest is None:
            return rest
        shards = self.shards.setdefault(tp, {})
        for mid in self.models:
            shard = shards.get(mid)
            if shard is None:
                shard = shards[mid] = Shard(self.engine.models[mid], tp[0], tp[1])
            parts = mine.get(mid)
            out = shard.process(self.engine, ColumnBatch.concat(parts) if parts else None, newest)
            if self._processed is not None and out.processed[mid]:
                self._processed.labels(mid).inc(out.processed[mid])
            if self._late is not None and out.late[mid]:
                self._late.labels(mid).inc(out.late[mid])
            for rec in shard.final():
                size = self.sink.publish(rec)
                self.metrics.partials.labels(mid, "published").inc()
                if rec.kind == "pane":
                    self.metrics.partial_bytes.labels(mid).set(size)
        outcome_hooks.seen(self.engine, [ColumnBatch.concat(p) for p in mine.values()])  # freshness
        return rest

    def flush(self) -> int:
        return self.sink.flush()

    # -- merger side ------------------------------------------------------------------------

    def merge(self, records: Sequence[RawRecord]) -> EngineOutput:
        """Partials-topic records in; windows whose sources have all passed them evaluated (alerts, decisions)."""
        touched: dict[tuple[TP, str], None] = {}
        for r in records:
            tp = (r.topic, r.partition)
            try:
                rec = PartialRecord.decode(r.value, r.position())
            except PartialError as exc:
                log.error("%s; skipped", exc)
                self.metrics.partials.labels("", "refused").inc()
                continue
            merge = self._merge_of(tp, rec.model_id)
            if merge is None:
                continue
            result = merge.add(rec)
            self.metrics.partials.labels(rec.model_id, result).inc()
            if result == "refused":
                self._warn_once(f"refused:{rec.model_id}:{rec.fingerprint}", "spread model %s: partial from %s "
                                "was built under another configuration or reference; refused (restart every "
                                "instance with the same configuration)", rec.model_id, rec.source)
            touched[(tp, rec.model_id)] = None
        out = EngineOutput()
        for tp, mid in touched:
            merge = self.merges[tp][mid]
            sources = self.sources(mid)
            out.extend(merge.evaluate(self.engine, sources))
            self.metrics.waiting.labels(mid).set(sum(1 for s in sources if s not in merge.watermarks))
        return out

    def _merge_of(self, tp: TP, model_id: str) -> Merge | None:
        if model_id not in self.models:
            self._warn_once(f"unknown:{model_id}", "partials topic %s[%d] carries model %s, which is not a spread "
                            "model here; skipped", tp[0], tp[1], model_id)
            return None
        merges = self.merges.setdefault(tp, {})
        merge = merges.get(model_id)
        if merge is None:
            elsewhere = [t for t, m in self.merges.items() if t != tp and model_id in m]
            if elsewhere:
                self._warn_once(f"split:{model_id}", "spread model %s has partials on %s[%d] and %s[%d]; one "
                                "partition must hold them all (key by model id); skipped", model_id, *tp,
                                *elsewhere[0])
                return None
            merge = merges[model_id] = Merge(self.engine.models[model_id])
        return merge

    # -- checkpoint extras (stream_monitor.checkpoint.coordinator.Checkpointer) --------------

    def models_of(self, tp: TP) -> list[str]:
        """Spread models merged on `tp`: their engine state is that partition's."""
        return sorted(self.merges.get(tp, {}))

    def snapshot(self, tp: TP) -> dict[str, Any] | None:
        shards, merges = self.shards.get(tp, {}), self.merges.get(tp, {})
        if not shards and not merges:
            return None
        return {"shards": {mid: s.snapshot() for mid, s in sorted(shards.items())},
                "merges": {mid: m.snapshot() for mid, m in sorted(merges.items())}}

    def restore(self, tp: TP, data: dict[str, Any] | None) -> None:
        self.release([tp])
        if not data:
            return
        for mid, snap in data.get("shards", {}).items():
            if mid not in self.models:
                continue
            shard = Shard(self.engine.models[mid], tp[0], tp[1])
            if shard.restore(snap):
                self.shards.setdefault(tp, {})[mid] = shard
            else:
                log.error("spread model %s: shard state of %s[%d] was built under another configuration; "
                          "not restored", mid, *tp)
        for mid, snap in data.get("merges", {}).items():
            if mid not in self.models:
                continue
            merge = Merge(self.engine.models[mid])
            if merge.restore(snap):
                self.merges.setdefault(tp, {})[mid] = merge
            else:
                log.error("spread model %s: merge state of %s[%d] was built under another configuration; "
                          "not restored", mid, *tp)

    def release(self, tps: Sequence[TP] | set[TP]) -> None:
        for tp in tps:
            self.shards.pop(tp, None)
            self.merges.pop(tp, None)

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

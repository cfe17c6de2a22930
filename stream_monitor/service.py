"""The running service: one engine, the Kafka source, the Kafka sinks and the metrics endpoint, wired together.

Also where the delivery mode is chosen (``service.delivery``): at-least-once uses an
idempotent producer; exactly-once a transactional one whose ``transactional.id`` is
``<group_id>.<instance_id>``, stable across restarts so a restarted instance fences
its predecessor and aborts its open transaction before reading any checkpoint.
"""
from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from stream_monitor.broker import partition_count
from stream_monitor.checkpoint.coordinator import Checkpointer
from stream_monitor.checkpoint.delivery import AtLeastOnce, Delivery, ExactlyOnce
from stream_monitor.checkpoint.store import CheckpointStore, DirectoryCheckpointStore, KafkaCheckpointStore
from stream_monitor.config import MonitorConfig
from stream_monitor.engine import Engine
from stream_monitor.reference import ReferenceProfile
from stream_monitor.report.server import start_server
from stream_monitor.report.status import status_page
from stream_monitor.sinks.base import AlertSink, FanoutAlertSink
from stream_monitor.sinks.decisions import DecisionSink, FanoutDecisionSink, JsonlDecisionSink, KafkaDecisionSink
from stream_monitor.sinks.kafka import KafkaAlertSink, KafkaDeadLetterSink, KafkaWindowSink
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.kafka import KafkaSource
from stream_monitor.sources.pipeline import Pipeline
from stream_monitor.spread import KafkaPartialSink, SpreadRuntime, ensure_partials_topic

log = logging.getLogger(__name__)

#: Recent reports / alerts / decisions the running service keeps in `pipeline.totals` (tests, the Python side).
#: A window report holds every statistic of every feature (~20 kB for 14 features), so this bounds memory:
#: 10,000 let the hostile soak's RSS grow by ~20 MB over its 1,000 windows (docs/guarantees.md). 200 is
#: ``service.history_windows``' default, and the engine's history holds the same report objects.
#: Counts over the whole run are in ``pipeline.windows_closed`` / ``alert_counts`` and the metrics.
RETAINED_RESULTS = 200


#: Hard cap on label sets per metric family at exposition (docs/guarantees.md, promise 6).
SERIES_CAP = 1000
OVERFLOW_LABEL = "other"


class CappedRegistry(CollectorRegistry):
    """A registry whose exposition never shows more than `cap` label sets per metric.

    Labels are bounded upstream (configured models, capped slices, closed reason sets);
    this is the last line of defence. Beyond the cap, counter and histogram samples are
    summed into one series whose labels all read ``other``; gauges, which do not add
    up, are dropped there.
    """

    def __init__(self, cap: int = SERIES_CAP) -> None:
        super().__init__()
        self.cap = cap

    def collect(self) -> Iterator[Metric]:
        for family in super().collect():
            yield self._capped(family)

    def _capped(self, family: Metric) -> Metric:
        def label_set(sample: Sample) -> tuple[tuple[str, str], ...]:
            return tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("le", "quantile")))

        keep: set[tuple[tuple[str, str], ...]] = set()
        for sample in family.samples:
            if len(keep) >= self.cap:
                break
            keep.add(label_set(sample))
        if len({label_set(x) for x in family.samples}) <= self.cap:
            return family
        capped = Metric(family.name, family.documentation, family.type, family.unit)
        overflow: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for sample in family.samples:
            if label_set(sample) in keep:
                capped.samples.append(sample)
            elif family.type in ("counter", "histogram", "summary") and not sample.name.endswith("_created"):
                labels = tuple(sorted((k, v if k in ("le", "quantile") else OVERFLOW_LABEL)
                                      for k, v in sample.labels.items()))
                overflow[(sample.name, labels)] = overflow.get((sample.name, labels), 0.0) + sample.value
        for (name, labels), value in overflow.items():
            same = next((i for i, x in enumerate(capped.samples)
                         if x.name == name and tuple(sorted(x.labels.items())) == labels), None)
            if same is None:
                capped.samples.append(Sample(name, dict(labels), value, None, None, None))
            else:  # a kept series already reads "other" everywhere: fold into it, never emit a duplicate
                capped.samples[same] = capped.samples[same]._replace(value=capped.samples[same].value + value)
        return capped


def instance_id(config: MonitorConfig) -> str:
    return config.service.instance_id or socket.gethostname()


def producer_config(config: MonitorConfig) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "acks": "all", "linger.ms": 20, "log.connection.close": False,
        "enable.idempotence": True,  # no duplicates or reordering from the producer's own retries
        "queue.buffering.max.kbytes": config.service.max_queued_kbytes,  # bounded: produce() waits when full
        "message.max.bytes": max(1_000_000, config.checkpoint.max_record_bytes + 65_536),
    }
    if config.service.delivery == "exactly_once":
        conf["transactional.id"] = f"{config.kafka.group_id}.{instance_id(config)}"
    conf.update(config.kafka.librdkafka())
    return conf


def checkpoint_store(config: MonitorConfig, producer: Producer) -> CheckpointStore | None:
    cp = config.checkpoint
    if cp.backend == "none":
        return None
    if cp.backend == "directory":
        assert cp.directory is not None  # the config validator requires it
        return DirectoryCheckpointStore(cp.directory)
    return KafkaCheckpointStore(config.kafka.librdkafka(), cp.topic, producer, group_id=config.kafka.group_id,
                                read_timeout=cp.read_timeout_seconds, max_record_bytes=cp.max_record_bytes)


class MonitorService:
    """`stream-monitor run`: consume, monitor, publish, export, until `stop` is set."""

    def __init__(
        self,
        config: MonitorConfig,
        *,
        registry: CollectorRegistry | None = None,
        extra_alert_sinks: Sequence[AlertSink] = (),
        references: dict[str, ReferenceProfile] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.registry = registry if registry is not None else CappedRegistry()
        self.metrics = MonitorMetrics(self.registry)
        self.engine = Engine(config, references) if clock is None else Engine(config, references, clock=clock)
        self.metrics.attach(self.engine)
        self.producer = Producer(producer_config(config))
        alerts = FanoutAlertSink(KafkaAlertSink(self.producer, config.topics.alerts), *extra_alert_sinks)
        dead_letters = KafkaDeadLetterSink(self.producer, config.topics.dead_letter)
        decisions: list[DecisionSink] = [KafkaDecisionSink(self.producer, config.topics.decisions)]
        if config.service.audit_log is not None:
            self.audit_log: JsonlDecisionSink | None = JsonlDecisionSink(config.service.audit_log)
            decisions.append(self.audit_log)
        else:
            self.audit_log = None
        self.pipeline = Pipeline(self.engine, self.metrics, alerts, dead_letters, FanoutDecisionSink(*decisions),
                                 retain=RETAINED_RESULTS)
        #: Models spread over several partitions: shards of this instance's partitions, merges of its partials.
        self.spread: SpreadRuntime | None = None
        if any(m.spread.enabled for m in config.models):
            self.spread = SpreadRuntime(self.engine, KafkaPartialSink(self.producer, config.topics.partials),
                                        self.registry, processed=self.metrics.processed, late=self.metrics.late)
            self.pipeline.spread = self.spread
        self.store = checkpoint_store(config, self.producer)
        self.checkpointer = Checkpointer(self.engine, self.store, group_id=config.kafka.group_id,
                                         writer=instance_id(config), lock=self.metrics.lock, registry=self.registry,
                                         extras=self.spread)
        windows = KafkaWindowSink(self.producer, config.topics.windows) if config.topics.windows else None
        self.delivery: Delivery = (ExactlyOnce(self.producer) if config.service.delivery == "exactly_once"
                                   else AtLeastOnce(lambda: self.source.flush_outputs()))
        self.source = KafkaSource(config, self.pipeline, self.metrics, checkpointer=self.checkpointer,
                                  delivery=self.delivery, windows=windows)
        self.metrics_port: int | None = None
        self._http: Any = None

    def prepare(self) -> None:
        """Before the first poll: fence an earlier incarnation (exactly-once), make sure checkpoints can be kept."""
        if isinstance(self.delivery, ExactlyOnce):
            self.delivery.init()
        if isinstance(self.store, KafkaCheckpointStore) or self.spread is not None:
            count = partition_count(AdminClient(self.config.kafka.librdkafka()), self.config.topics.predictions)
            partitions = count or 1
            if isinstance(self.store, KafkaCheckpointStore):
                self.store.ensure_topic(partitions, create=self.config.checkpoint.create_topic)
            if self.spread is not None:  # unknown: the mergers wait (and say so) rather than guess
                self.spread.source_partitions = count
                ensure_partials_topic(self.config.kafka.librdkafka(), self.config.topics.partials,
                                      min(len(self.spread.models), partitions),
                                      self.config.checkpoint.max_record_bytes)

    def serve_metrics(self) -> int:
        """Start /metrics (and the status page at /); returns the bound port (useful with metrics_port: 0)."""
        svc = self.config.service
        tls: dict[str, Any] = {}
        if svc.metrics_tls_certfile is not None:
            tls = {"certfile": str(svc.metrics_tls_certfile), "keyfile": str(svc.metrics_tls_keyfile)}
            if svc.metrics_tls_client_cafile is not None:
                tls.update(client_cafile=str(svc.metrics_tls_client_cafile), client_auth_required=True)
        server, _thread = start_server(svc.metrics_port, svc.metrics_host, self.registry,
                                       lambda: status_page(self.engine, self.metrics.lock), **tls)
        self._http = server
        self.metrics_port = int(server.server_port)
        scheme = "https" if tls else "http"
        log.info("metrics on %s://%s:%d/metrics", scheme, svc.metrics_host, self.metrics_port)
        return self.metrics_port

    def run(self, stop: threading.Event) -> None:
        """Blocks until `stop` is set; then commits what was processed, flushes, and closes."""
        if self._http is None:
            self.serve_metrics()
        try:
            self.prepare()
            self.source.run(stop)
        finally:
            self.pipeline.flush()
            if self.audit_log is not None:
                self.audit_log.close()
            if self.store is not None:
                self.store.close()
            if self._http is not None:
                self._http.shutdown()
                self._http.server_close()
                self._http = None

"""The running service: one engine, the Kafka source, the Kafka sinks and the metrics endpoint, wired together."""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry, start_http_server

from stream_monitor.config import MonitorConfig
from stream_monitor.engine import Engine
from stream_monitor.reference import ReferenceProfile
from stream_monitor.sinks.base import AlertSink, FanoutAlertSink
from stream_monitor.sinks.kafka import KafkaAlertSink, KafkaDeadLetterSink
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.kafka import KafkaSource
from stream_monitor.sources.pipeline import Pipeline

log = logging.getLogger(__name__)


def producer_config(config: MonitorConfig) -> dict[str, Any]:
    conf: dict[str, Any] = {"acks": "all", "linger.ms": 20}
    conf.update(config.kafka.librdkafka())
    return conf


class MonitorService:
    """`stream-monitor run`: consume, monitor, publish, export, until `stop` is set."""

    def __init__(
        self,
        config: MonitorConfig,
        *,
        registry: CollectorRegistry | None = None,
        extra_alert_sinks: Sequence[AlertSink] = (),
        references: dict[str, ReferenceProfile] | None = None,
    ) -> None:
        self.config = config
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = MonitorMetrics(self.registry)
        self.engine = Engine(config, references)
        self.metrics.attach(self.engine)
        self.producer = Producer(producer_config(config))
        alerts = FanoutAlertSink(KafkaAlertSink(self.producer, config.topics.alerts), *extra_alert_sinks)
        dead_letters = KafkaDeadLetterSink(self.producer, config.topics.dead_letter)
        self.pipeline = Pipeline(self.engine, self.metrics, alerts, dead_letters)
        self.source = KafkaSource(config, self.pipeline, self.metrics)
        self.metrics_port: int | None = None
        self._http: Any = None

    def serve_metrics(self) -> int:
        """Start the /metrics endpoint; returns the bound port (useful with metrics_port: 0)."""
        svc = self.config.service
        server, _thread = start_http_server(svc.metrics_port, addr=svc.metrics_host, registry=self.registry)
        self._http = server
        self.metrics_port = int(server.server_port)
        log.info("metrics on http://%s:%d/metrics", svc.metrics_host, self.metrics_port)
        return self.metrics_port

    def run(self, stop: threading.Event) -> None:
        """Blocks until `stop` is set; then commits what was processed, flushes, and closes."""
        if self._http is None:
            self.serve_metrics()
        try:
            self.source.run(stop)
        finally:
            self.pipeline.flush()
            if self._http is not None:
                self._http.shutdown()
                self._http.server_close()
                self._http = None

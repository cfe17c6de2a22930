"""Prometheus metrics: counters updated by the pipeline, drift gauges collected from engine state.

All metrics take a registry (the global one by default), so tests build a fresh
``CollectorRegistry`` and a process can run two monitors side by side. Label
cardinality is bounded: model ids are the configured ones (unknown models are
rejected before they reach a label), features are the declared ones, and reject
reasons are a closed set.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from threading import Lock

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream_monitor.engine import Engine
from stream_monitor.engine_types import EngineOutput
from stream_monitor.sinks.outcome_metrics import LabelCounters

#: Statistics exported as gauges per feature (the rest stay in alert evidence).
EXPORTED_STATS = ("psi", "js_divergence", "ks_statistic", "ks_pvalue", "wasserstein", "mean_shift",
                  "chi2_pvalue", "new_category_rate", "missing_rate")


class DriftCollector(Collector):
    """Latest closed window per model version -> one gauge sample per (feature, statistic)."""

    def __init__(self, engine: Engine, lock: Lock) -> None:
        self.engine = engine
        self.lock = lock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        drift = GaugeMetricFamily(
            "stream_monitor_drift", "Drift statistic of a feature in the latest closed window vs the reference",
            labels=["model_id", "model_version", "feature", "statistic"],
        )
        window_events = GaugeMetricFamily(
            "stream_monitor_window_events", "Events in the latest closed window", labels=["model_id", "model_version"]
        )
        window_end = GaugeMetricFamily(
            "stream_monitor_window_end_timestamp_seconds", "End of the latest closed window (event time)",
            labels=["model_id", "model_version"],
        )
        reference = GaugeMetricFamily(
            "stream_monitor_reference_info", "Reference profile in use (value is always 1)",
            labels=["model_id", "reference_version"],
        )
        with self.lock:
            reports = list(self.engine.latest.values())
            refs = [(mid, mm.reference.profile_id) for mid, mm in self.engine.models.items() if mm.reference]
        for r in reports:
            window_events.add_metric([r.model_id, r.model_version], r.n_events)
            window_end.add_metric([r.model_id, r.model_version], r.window_end.timestamp())
            for name, fr in r.features.items():
                for stat in EXPORTED_STATS:
                    value = fr.stats.get(stat)
                    if value is not None and math.isfinite(value):
                        drift.add_metric([r.model_id, r.model_version, name, stat], value)
        for mid, ref_id in refs:
            reference.add_metric([mid, ref_id], 1.0)
        yield drift
        yield window_events
        yield window_end
        yield reference
        size = GaugeMetricFamily("stream_monitor_window_size_seconds", "Configured window size", labels=["model_id"])
        for mid, mm in self.engine.models.items():
            size.add_metric([mid], mm.config.window.size_seconds)
        yield size


class MonitorMetrics:
    """The service's counters, histograms and gauges, bound to one registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.lock = Lock()
        self.consumed = Counter("stream_monitor_events_consumed", "Messages read from input topics",
                                ["topic"], registry=registry)
        self.processed = Counter("stream_monitor_events_processed", "Valid events added to window state",
                                 ["model_id"], registry=registry)
        self.rejected = Counter("stream_monitor_events_rejected", "Messages sent to the dead-letter topic",
                                ["reason"], registry=registry)
        self.late = Counter("stream_monitor_events_late", "Events whose window had already closed (not counted in it)",
                            ["model_id"], registry=registry)
        self.windows_closed = Counter("stream_monitor_windows_closed", "Windows closed by the watermark",
                                      ["model_id", "role"], registry=registry)
        self.alerts = Counter("stream_monitor_alerts", "Alerts published",
                              ["model_id", "kind", "severity"], registry=registry)
        self.decisions = Counter("stream_monitor_decisions", "Retraining decisions published "
                                 "(retrain, promote, hold, rollback, blocked)", ["model_id", "type"],
                                 registry=registry)
        self.batch_seconds = Histogram(
            "stream_monitor_batch_processing_seconds", "Wall time to decode, validate, update and evaluate one batch",
            registry=registry, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.event_lag = Gauge("stream_monitor_event_time_lag_seconds",
                               "Processing time minus the newest event time seen, per model", ["model_id"],
                               registry=registry)
        self.consumer_lag = Gauge("stream_monitor_consumer_lag", "High watermark minus committed position",
                                  ["topic", "partition"], registry=registry)
        self.up = Gauge("stream_monitor_up", "1 while the monitor's loop is running", registry=registry)
        #: Label join counters; outcome gauges (performance, operations, quality, freshness) via a collector.
        self.labels = LabelCounters(registry)

    def attach(self, engine: Engine) -> None:
        """Export the engine's drift state through a collector (read at scrape time, under the lock).

        Labelled counters start at zero for every configured model and reject reason,
        so rates and "no events processed" alerts have a series before the first event.
        """
        self.registry.register(DriftCollector(engine, self.lock))
        self.labels.attach(engine, self.lock, self.registry)
        from stream_monitor.contracts.decode import REJECT_REASONS

        for model_id in engine.models:
            self.processed.labels(model_id)
            self.late.labels(model_id)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)

    def record(self, out: EngineOutput) -> None:
        for model_id, n in out.processed.items():
            self.processed.labels(model_id).inc(n)
        for model_id, n in out.late.items():
            self.late.labels(model_id).inc(n)
        for report in out.reports:
            self.windows_closed.labels(report.model_id, report.role).inc()
        for alert in out.alerts:
            self.alerts.labels(alert.model_id, alert.kind, alert.severity).inc()
        for decision in out.decisions:
            self.decisions.labels(decision.model_id, decision.type).inc()
        self.labels.record(out)

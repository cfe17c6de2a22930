"""Prometheus metrics of the outcome signals: performance, operations, quality, label join and freshness.

The same pattern as :class:`~stream_monitor.sinks.metrics.DriftCollector`: gauges are
read from engine state at scrape time (under the engine lock), counters are updated
from each :class:`EngineOutput`. Label cardinality stays bounded: model ids and
versions are those of ``Engine.latest`` (capped per model), metric names come from
fixed lists, features are the contracted ones, guardrail actions are capped by
``llm.max_actions`` and streams are ``predictions`` / ``labels``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from threading import Lock
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream_monitor.engine_types import EngineOutput, WindowReport
from stream_monitor.labels.join import REASONS

if TYPE_CHECKING:
    from stream_monitor.engine import Engine

PERFORMANCE_EXPORTED = ("accuracy", "precision", "recall", "f1", "roc_auc", "roc_auc_error_bound", "log_loss",
                        "brier", "ece", "mae", "rmse", "bias", "positive_rate", "label_psi", "label_mean_shift",
                        "label_coverage", "labels", "predictions", "provisional", "newest_label_age_seconds",
                        "label_delay_p50_seconds", "label_delay_p95_seconds", "delta.accuracy", "delta.f1",
                        "delta.roc_auc", "delta.log_loss", "delta.rmse", "delta.mae")
OPERATIONS_EXPORTED = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms", "llm_requests",
                       "tokens_in_mean", "tokens_out_mean", "tokens_in_p95", "tokens_out_p95", "response_length_mean",
                       "cost_per_request_usd", "cost_total_usd", "refusal_rate", "tokens_in_ks", "tokens_out_ks",
                       "guardrail_psi", "change.tokens_in_ks", "change.tokens_out_ks", "change.tokens_out_mean_ratio",
                       "change.refusal_rate_delta")


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


class OutcomeCollector(Collector):
    """Gauges of the latest windows' outcome figures, the join buffer and stream freshness."""

    def __init__(self, engine: Engine, lock: Lock) -> None:
        self.engine = engine
        self.lock = lock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        perf = GaugeMetricFamily("stream_monitor_performance", "Label-joined performance of a window: status "
                                 "'latest' = the newest closed window (provisional until its labels arrive), "
                                 "'settled' = the newest window judged by the performance rules",
                                 labels=["model_id", "model_version", "metric", "status"])
        ops = GaugeMetricFamily("stream_monitor_operations", "Latency, token, cost and refusal figures of the "
                                "latest closed window", labels=["model_id", "model_version", "metric"])
        guard = GaugeMetricFamily("stream_monitor_guardrail_rate", "Share of LLM requests per guardrail action "
                                  "in the latest closed window", labels=["model_id", "model_version", "action"])
        quality = GaugeMetricFamily("stream_monitor_quality_violation_rate", "Contract violations per row of the "
                                    "latest closed window (feature '_all': every contracted feature)",
                                    labels=["model_id", "model_version", "feature"])
        pending = GaugeMetricFamily("stream_monitor_labels_pending", "Predictions waiting for a label",
                                    labels=["model_id"])
        cap = GaugeMetricFamily("stream_monitor_labels_pending_cap", "Configured cap on predictions waiting for "
                                "a label (performance.max_pending_labels)", labels=["model_id"])
        silence = GaugeMetricFamily("stream_monitor_stream_silence_seconds", "Processing time since the last "
                                    "event of the stream arrived", labels=["model_id", "stream"])
        age = GaugeMetricFamily("stream_monitor_newest_event_age_seconds", "Processing time minus the newest "
                                "event time of the stream", labels=["model_id", "stream"])
        lag = GaugeMetricFamily("stream_monitor_arrival_lag_seconds", "At the last arrival: processing time minus "
                                "the newest event time (how late events arrive)", labels=["model_id", "stream"])
        with self.lock:
            reports = list(self.engine.latest.values())
            settled: list[WindowReport] = []
            for (mid, version) in self.engine.latest:
                outcomes = self.engine.models[mid].outcomes if mid in self.engine.models else None
                if outcomes is not None and version in outcomes.last_settled:
                    settled.append(outcomes.last_settled[version])
            joins = [(mid, mm.outcomes.pending, mm.config.performance.max_pending_labels)
                     for mid, mm in self.engine.models.items()
                     if mm.outcomes is not None and mm.config.performance is not None]
            fresh = self.engine.freshness.gauges(self.engine.clock())
        for status, group in (("latest", reports), ("settled", settled)):
            for r in group:
                for name in PERFORMANCE_EXPORTED:
                    value = r.performance.get(name)
                    if _finite(value):
                        perf.add_metric([r.model_id, r.model_version, name, status], value)  # type: ignore[arg-type]
        for r in reports:
            for name in OPERATIONS_EXPORTED:
                value = r.operations.get(name)
                if _finite(value):
                    ops.add_metric([r.model_id, r.model_version, name], value)  # type: ignore[arg-type]
            for key, value in r.operations.items():
                if key.startswith("guardrail_rate."):
                    guard.add_metric([r.model_id, r.model_version, key.split(".", 1)[1]], value)
            for key, value in r.quality.items():
                if key == "violation_rate":
                    quality.add_metric([r.model_id, r.model_version, "_all"], value)
                elif key.startswith("violation_rate."):
                    quality.add_metric([r.model_id, r.model_version, key.split(".", 1)[1]], value)
        for mid, n, limit in joins:
            pending.add_metric([mid], n)
            cap.add_metric([mid], limit)
        for mid, stream, quiet, newest_age, arrival_lag in fresh:
            silence.add_metric([mid, stream], quiet)
            if newest_age is not None:
                age.add_metric([mid, stream], newest_age)
            if arrival_lag is not None:
                lag.add_metric([mid, stream], arrival_lag)
        yield from (perf, ops, guard, quality, pending, cap, silence, age, lag)


class LabelCounters:
    """labels_joined_total, labels_unmatched_total, labels_expired_total{reason}."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.joined = Counter("stream_monitor_labels_joined", "Labels joined to a waiting prediction",
                              ["model_id"], registry=registry)
        self.unmatched = Counter("stream_monitor_labels_unmatched", "Labels with no waiting prediction (unknown "
                                 "event id, already expired or dropped, or already labelled)", ["model_id"],
                                 registry=registry)
        self.expired = Counter("stream_monitor_labels_expired", "Predictions that left the join buffer without a "
                               "label (reason: ttl, capacity)", ["model_id", "reason"], registry=registry)

    def attach(self, engine: Engine, lock: Lock, registry: CollectorRegistry) -> None:
        registry.register(OutcomeCollector(engine, lock))
        for model_id, mm in engine.models.items():
            if mm.config.performance is None:
                continue
            self.joined.labels(model_id)
            self.unmatched.labels(model_id)
            for reason in REASONS:
                self.expired.labels(model_id, reason)

    def record(self, out: EngineOutput) -> None:
        for model_id, n in out.labels_joined.items():
            self.joined.labels(model_id).inc(n)
        for model_id, n in out.labels_unmatched.items():
            self.unmatched.labels(model_id).inc(n)
        for (model_id, reason), n in out.labels_expired.items():
            self.expired.labels(model_id, reason).inc(n)

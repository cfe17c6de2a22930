"""The engine's outputs, kept apart from the engine so that policy, sinks and tests can import them."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.contracts.decisions import DecisionEvent


@dataclass(frozen=True)
class FeatureResult:
    """Drift statistics of one feature in one window against the reference."""

    feature: str
    kind: Literal["numeric", "categorical", "embedding"]
    n: int
    n_reference: int
    stats: dict[str, float]
    binning: Literal["exact", "sketch"]
    #: The window's counts in the reference's bins (numeric: per bin of the reference edges; categorical: per
    #: reference category, then OTHER), so a report can draw reference and current histograms side by side.
    counts: tuple[float, ...] | None = None


@dataclass
class WindowReport:
    """One closed window of one model version: its role, size, and per-feature results."""

    model_id: str
    model_version: str
    window_start: datetime
    window_end: datetime
    n_events: int
    role: Literal["evaluated", "reference", "no_reference"]
    reference_version: str | None
    features: dict[str, FeatureResult] = field(default_factory=dict)
    slices: dict[str, dict[str, FeatureResult]] = field(default_factory=dict)
    detections: dict[str, int] = field(default_factory=dict)
    versions: dict[str, dict[str, int]] = field(default_factory=dict)
    previous_versions: dict[str, list[str]] = field(default_factory=dict)
    #: Label-joined performance of the window (accuracy, ..., label_coverage 0..1, labels,
    #: newest_label_age_seconds, provisional); empty when no labels are joined. Read with .get().
    performance: dict[str, float] = field(default_factory=dict)
    #: Operational figures (latency_p50_ms, latency_p95_ms, latency_p99_ms, cost_per_request_usd, ...).
    operations: dict[str, float] = field(default_factory=dict)
    #: Quality-contract figures: violation_rate and violation_rate.<feature>.
    quality: dict[str, float] = field(default_factory=dict)
    #: LLM prompt / index version changes in this window, each with before/after metrics.
    change_points: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EngineOutput:
    reports: list[WindowReport] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)
    processed: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)
    #: Retrain / promote / hold / rollback / blocked verdicts (stream_monitor.decisions).
    decisions: list[DecisionEvent] = field(default_factory=list)
    #: Closed windows whose performance changed because late labels arrived (same objects as in `reports`).
    updates: list[WindowReport] = field(default_factory=list)
    #: Label join counts per model id; expired per (model id, reason: ttl / capacity).
    labels_joined: Counter[str] = field(default_factory=Counter)
    labels_unmatched: Counter[str] = field(default_factory=Counter)
    labels_expired: Counter[tuple[str, str]] = field(default_factory=Counter)

    def extend(self, other: EngineOutput) -> None:
        self.reports.extend(other.reports)
        self.alerts.extend(other.alerts)
        self.decisions.extend(other.decisions)
        self.processed.update(other.processed)
        self.late.update(other.late)
        self.updates.extend(other.updates)
        self.labels_joined.update(other.labels_joined)
        self.labels_unmatched.update(other.labels_unmatched)
        self.labels_expired.update(other.labels_expired)

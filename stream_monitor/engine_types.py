"""The engine's outputs, kept apart from the engine so that policy, sinks and tests can import them."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from stream_monitor.contracts.alerts import AlertEvent


@dataclass(frozen=True)
class FeatureResult:
    """Drift statistics of one feature in one window against the reference."""

    feature: str
    kind: Literal["numeric", "categorical"]
    n: int
    n_reference: int
    stats: dict[str, float]
    binning: Literal["exact", "sketch"]


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


@dataclass
class EngineOutput:
    reports: list[WindowReport] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)
    processed: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)

    def extend(self, other: EngineOutput) -> None:
        self.reports.extend(other.reports)
        self.alerts.extend(other.alerts)
        self.processed.update(other.processed)
        self.late.update(other.late)

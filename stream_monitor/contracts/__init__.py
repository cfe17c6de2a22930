"""Versioned event contracts: pydantic models are the source of truth, `schemas/` is generated."""
from __future__ import annotations

from stream_monitor.contracts.alerts import AlertEvent, Severity, alert_id_for
from stream_monitor.contracts.events import LabelEvent, LLMInfo, Prediction, PredictionEvent

__all__ = [
    "AlertEvent",
    "LLMInfo",
    "LabelEvent",
    "Prediction",
    "PredictionEvent",
    "Severity",
    "alert_id_for",
]

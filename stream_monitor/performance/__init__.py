"""Outcome signals beyond drift: label-joined performance, latency and LLM figures, quality contracts, freshness."""
from __future__ import annotations

from stream_monitor.performance.accumulators import PerformanceAccumulator, roc_auc_from_histograms
from stream_monitor.performance.freshness import FreshnessTracker
from stream_monitor.performance.operations import OperationsAccumulator
from stream_monitor.performance.quality import QualityAccumulator, resolve_contracts
from stream_monitor.performance.tracker import ModelOutcomes

__all__ = ["FreshnessTracker", "ModelOutcomes", "OperationsAccumulator", "PerformanceAccumulator",
           "QualityAccumulator", "resolve_contracts", "roc_auc_from_histograms"]

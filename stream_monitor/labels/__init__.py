"""Delayed ground truth: a bounded buffer that joins label events to the predictions they belong to."""
from __future__ import annotations

from stream_monitor.labels.join import JoinBuffer, Pending, normalise_label

__all__ = ["JoinBuffer", "Pending", "normalise_label"]

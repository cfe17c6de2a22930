"""stream-monitor: streaming drift detection for production ML models.

Kafka in (prediction and label events), drift statistics on mergeable sketches per
model and event-time window, alerts and decisions out (Kafka topics and Prometheus).
"""
from __future__ import annotations

__version__ = "0.1.0"

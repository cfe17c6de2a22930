"""Where results go: Kafka topics (alerts, dead letters), files (replay), Prometheus metrics."""
from __future__ import annotations

"""stream-monitor: streaming drift detection for production ML models.

Kafka in (prediction and label events), drift statistics on mergeable sketches per
model and event-time window, alerts and decisions out (Kafka topics and Prometheus).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Monitor", "__version__"]

if TYPE_CHECKING:
    from stream_monitor.api import Monitor


def __getattr__(name: str) -> Any:
    """``from stream_monitor import Monitor`` without importing the engine for every submodule's import."""
    if name == "Monitor":
        from stream_monitor.api import Monitor

        return Monitor
    raise AttributeError(f"module 'stream_monitor' has no attribute {name!r}")

"""Turning statistics into decisions: declared rules, FDR control, hysteresis, incidents, diagnosis."""
from __future__ import annotations

from stream_monitor.policy.engine import PolicyEngine

__all__ = ["PolicyEngine"]

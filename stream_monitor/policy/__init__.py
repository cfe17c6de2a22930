"""Turning statistics into decisions: declared rules, severities, actions."""
from __future__ import annotations

from stream_monitor.policy.rules import evaluate_rules

__all__ = ["evaluate_rules"]

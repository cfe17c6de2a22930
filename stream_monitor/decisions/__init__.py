"""The retraining control loop: schedules, triggers, freshness gates, champion/challenger, probation.

Monitoring ends in a decision. This package turns closed windows, alerts, labels and
the clock into :class:`~stream_monitor.contracts.decisions.DecisionEvent`s (retrain,
promote, hold, rollback, blocked) that a pipeline subscribes to. It is pure, like the
engine: state in, decisions out, no I/O. Import :class:`DecisionEngine` from
:mod:`stream_monitor.decisions.engine`; this module stays import-light because
:mod:`stream_monitor.config` imports :mod:`stream_monitor.decisions.config`.
"""
from __future__ import annotations

"""Evaluate a model's declared rules on one closed window and build the alert events.

A rule is ``metric comparison threshold`` with one threshold per severity; the
alert takes the highest severity whose threshold is crossed, and the action the
rule declares for that severity. Features with fewer values than the rule's
``min_samples`` are not judged: "insufficient data" is not "no drift".
"""
from __future__ import annotations

import math
import operator
from collections.abc import Callable
from datetime import datetime

from stream_monitor.config import ModelConfig, RuleConfig
from stream_monitor.contracts.alerts import SEVERITY_ORDER, AlertEvent, alert_id_for
from stream_monitor.engine_types import WindowReport

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


def _crossed(rule: RuleConfig, value: float) -> str | None:
    op = _OPS[rule.comparison]
    hits = [sev for sev, threshold in rule.thresholds.items() if op(value, threshold)]
    return max(hits, key=SEVERITY_ORDER.__getitem__) if hits else None


def evaluate_rules(model: ModelConfig, report: WindowReport, now: datetime) -> list[AlertEvent]:
    if report.reference_version is None:
        return []
    alerts: list[AlertEvent] = []
    for rule in model.rules:
        for name, result in report.features.items():
            if rule.features is not None and name not in rule.features:
                continue
            value = result.stats.get(rule.metric)
            if value is None or not math.isfinite(value) or result.n < rule.min_samples:
                continue
            severity = _crossed(rule, value)
            if severity is None:
                continue
            alerts.append(
                AlertEvent(
                    alert_id=alert_id_for(
                        model_id=report.model_id, model_version=report.model_version, rule_id=rule.id,
                        feature=name, slice_key=None, window_start=report.window_start,
                        window_end=report.window_end, reference_version=report.reference_version,
                    ),
                    model_id=report.model_id,
                    model_version=report.model_version,
                    kind="prediction_drift" if name.startswith("prediction.") else "feature_drift",
                    rule_id=rule.id,
                    metric=rule.metric,
                    comparison=rule.comparison,
                    feature=name,
                    slice=None,
                    window_start=report.window_start,
                    window_end=report.window_end,
                    value=value,
                    threshold=rule.thresholds[severity],  # type: ignore[index]
                    severity=severity,  # type: ignore[arg-type]
                    action=rule.actions.get(severity, "warn"),  # type: ignore[call-overload]
                    owner=rule.owner or model.owner,
                    runbook=rule.runbook,
                    reference_version=report.reference_version,
                    evidence={
                        "n_current": result.n,
                        "n_reference": result.n_reference,
                        "window_events": report.n_events,
                        "binning": result.binning,
                        "statistics": result.stats,
                        "rule": {"metric": rule.metric, "comparison": rule.comparison,
                                 "thresholds": rule.thresholds, "min_samples": rule.min_samples},
                    },
                    created_at=now,
                )
            )
    alerts.sort(key=lambda a: (-SEVERITY_ORDER[a.severity], -abs(a.value), a.feature or ""))
    return alerts

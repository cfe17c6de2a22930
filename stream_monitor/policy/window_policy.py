"""Rules on window-level metrics (performance, latency, cost, quality), with the drift layer's machinery.

Why a sibling of :class:`~stream_monitor.policy.engine.PolicyEngine` and not more
branches inside it: drift findings are per feature and share one incident with a
diagnosis built for covariate shift. Window metrics (accuracy, p99 latency, cost
per request, a feature's contract-violation rate) are judged by the *same* rule
model (:class:`~stream_monitor.config.RuleConfig`: thresholds per severity,
comparison, ``min_samples``, calibration), the same verdicts
(:func:`stream_monitor.policy.rules.thresholds_for` via ``_judge``) and the same
hysteresis (:class:`~stream_monitor.policy.hysteresis.KeyState`), but each alert
kind keeps its own incident per model version: a latency incident must not hide,
or be resolved by, a performance one.

A performance window is judged once, when it settles (label coverage reached, or
its labels can no longer arrive); if later labels make it worse, it is judged again
for escalation only (``escalate_only``), without counting twice in hysteresis.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stream_monitor.config import ModelConfig, RuleConfig
from stream_monitor.config_outcomes import LATENCY_METRICS, QUALITY_METRICS, WINDOW_METRICS, window_metric_kind
from stream_monitor.contracts.alerts import SEVERITY_ORDER, AlertEvent, Diagnosis, Finding, stable_id
from stream_monitor.engine_types import FeatureResult, WindowReport
from stream_monitor.policy.engine import Incident
from stream_monitor.policy.hysteresis import KeyState
from stream_monitor.policy.rules import Verdict, _judge

Key = tuple[str, str, str | None]

#: Where a window metric lives on the report.
SOURCE_PERFORMANCE, SOURCE_OPERATIONS, SOURCE_QUALITY = "performance", "operations", "quality"


def metric_source(metric: str) -> str:
    if metric in QUALITY_METRICS:
        return SOURCE_QUALITY
    kind = WINDOW_METRICS[metric]
    if kind == "performance" and not metric.startswith("change.") and metric not in ("refusal_rate", "guardrail_psi"):
        return SOURCE_PERFORMANCE
    return SOURCE_OPERATIONS


def implied_rules(model: ModelConfig, contracted: bool) -> list[RuleConfig]:
    """Starting points for sections without a declared rule (docs/performance-monitoring.md)."""
    declared = {window_metric_kind(r.metric) for r in model.rules}
    declared_changes = any(r.metric.startswith("change.") for r in model.rules)
    out: list[RuleConfig] = []
    perf = model.performance
    if perf is not None and "performance" not in declared and perf.task == "classification":
        out.append(RuleConfig(id="performance.accuracy_drop", metric="delta.accuracy", comparison="<=",
                              thresholds={"warning": -0.05, "critical": -0.10}, min_samples=100))
    if contracted and "quality" not in declared:
        out.append(RuleConfig(id="quality.violations", metric="violation_rate", comparison=">=",
                              thresholds={"warning": 0.01, "critical": 0.05}, min_samples=50))
    if not declared_changes:
        out.append(RuleConfig(id="llm.change.tokens_out", metric="change.tokens_out_ks", comparison=">=",
                              thresholds={"warning": 0.2, "critical": 0.4}, min_samples=100))
    return out


def window_rules(model: ModelConfig, contracted: bool) -> list[RuleConfig]:
    return [r for r in model.rules if window_metric_kind(r.metric)] + implied_rules(model, contracted)


def _sample_size(report: WindowReport, metric: str, feature: str | None) -> int:
    if metric in QUALITY_METRICS:
        return int(report.quality.get(f"rows.{feature}", 0))
    source = metric_source(metric)
    if source == SOURCE_PERFORMANCE:
        return int(report.performance.get("labels", 0))
    ops = report.operations
    if metric.startswith("change."):
        return int(min(ops.get("change.n_before", 0), ops.get("change.n_after", 0)))
    if metric in LATENCY_METRICS:
        return int(ops.get("latency_count", 0))
    return int(ops.get("llm_requests", 0))


def verdicts(rules: list[RuleConfig], report: WindowReport, source: str) -> list[Verdict]:
    """Every key these rules can judge on this window from ``source`` (breaching or not)."""
    out: list[Verdict] = []
    for rule in rules:
        if metric_source(rule.metric) != source:
            continue
        if rule.metric in QUALITY_METRICS:
            names = sorted(k.split(".", 1)[1] for k in report.quality if k.startswith("violation_rate."))
            keys = [(n, report.quality[f"violation_rate.{n}"]) for n in names
                    if rule.features is None or n in rule.features]
        else:
            values = report.performance if source == SOURCE_PERFORMANCE else report.operations
            keys = [(rule.metric, values[rule.metric])] if rule.metric in values else []
        for feature, value in keys:
            n = _sample_size(report, rule.metric, feature)
            result = FeatureResult(feature=feature, kind="numeric", n=n, n_reference=0, stats={rule.metric: value},
                                   binning="exact")
            v = _judge(rule, feature, None, result)
            if v is not None:
                out.append(v)
    return out


@dataclass
class WindowSeries:
    """Per model version: hysteresis per key, one incident per alert kind."""

    keys: dict[Key, KeyState] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"keys": [[list(k), ks.to_dict()] for k, ks in self.keys.items()],
                "incidents": {kind: inc.__dict__ for kind, inc in self.incidents.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowSeries:
        return cls(keys={(k[0], k[1], k[2]): KeyState.from_dict(v) for k, v in d["keys"]},
                   incidents={kind: Incident(**inc) for kind, inc in d["incidents"].items()})


class WindowPolicy:
    """Judges window metrics of one model and turns them into alerts, one incident per (version, kind)."""

    def __init__(self) -> None:
        self.series: dict[str, WindowSeries] = {}

    def evaluate(self, model: ModelConfig, report: WindowReport, vs: list[Verdict], now: datetime, *,
                 escalate_only: bool = False, published: dict[str, str] | None = None) -> list[AlertEvent]:
        """Alerts for this window's verdicts, grouped by kind.

        ``escalate_only``: a re-judgement of a window already judged; hysteresis is not
        touched and only a severity above ``published[kind]`` (what this window already
        raised) is published. ``published`` is updated in place.
        """
        state = self.series.setdefault(report.model_version, WindowSeries())
        published = published if published is not None else {}
        by_kind: dict[str, list[Finding]] = {}
        judged_kinds: set[str] = set()
        for v in vs:
            rule = v.rule
            kind = WINDOW_METRICS[rule.metric]
            judged_kinds.add(kind)
            breached = v.severity is not None
            ks = state.keys.setdefault(v.key, KeyState())
            if not escalate_only:
                ks.observe(breached, fire_after=rule.fire_after, clear_after=rule.clear_after,
                           cooldown=rule.cooldown_windows)
                ks.last_value = v.value
                if breached:
                    ks.last_severity = v.severity
            firing = breached if escalate_only else ks.firing
            if firing and (v.severity or ks.last_severity):
                sev = v.severity if breached else ks.last_severity
                by_kind.setdefault(kind, []).append(Finding(
                    feature=v.feature, rule_id=rule.id, metric=rule.metric, comparison=rule.comparison,
                    value=v.value, threshold=v.threshold, severity=sev,  # type: ignore[arg-type]
                    action=rule.actions.get(sev, "warn"),  # type: ignore[call-overload]
                    exceedance=v.exceedance, p_value=v.p_value, windows_breached=ks.breach_streak))
        alerts: list[AlertEvent] = []
        for kind in sorted(judged_kinds):
            findings = sorted(by_kind.get(kind, []), key=lambda f: (-SEVERITY_ORDER[f.severity], -f.exceedance,
                                                                   f.feature))
            if escalate_only:
                if findings and SEVERITY_ORDER[findings[0].severity] > SEVERITY_ORDER.get(published.get(kind, ""), -1):
                    alerts.extend(self._firing(model, report, state, kind, findings, now, force=True))
                    published[kind] = findings[0].severity
                continue
            if findings:
                made = self._firing(model, report, state, kind, findings, now)
                if made:
                    published[kind] = findings[0].severity
                alerts.extend(made)
                continue
            inc = state.incidents.get(kind)
            kind_firing = any(ks.firing for key, ks in state.keys.items() if self._kind_of(model, key) == kind)
            if inc is not None and not kind_firing:
                alerts.append(self._resolved(report, state, kind, now))
            elif inc is not None:
                inc.windows_open += 1
        return alerts

    @staticmethod
    def _kind_of(model: ModelConfig, key: Key) -> str | None:
        rule = next((r for r in window_rules(model, True) if r.id == key[0]), None)
        return WINDOW_METRICS.get(rule.metric) if rule is not None else None

    def _firing(self, model: ModelConfig, report: WindowReport, state: WindowSeries, kind: str,
                findings: list[Finding], now: datetime, force: bool = False) -> list[AlertEvent]:
        top = findings[0]
        inc = state.incidents.get(kind)
        if inc is None:
            inc = state.incidents[kind] = Incident(
                incident_id=stable_id(report.model_id, report.model_version, f"{kind}-incident",
                                      report.window_start.isoformat()),
                opened_at_window=report.window_start.isoformat(), top={}, published_severity=top.severity)
        elif not force:
            inc.windows_open += 1
            escalated = SEVERITY_ORDER[top.severity] > SEVERITY_ORDER[inc.published_severity]
            renotify = model.renotify_windows and inc.windows_since_publish + 1 >= model.renotify_windows
            if not escalated and not renotify:
                inc.windows_since_publish += 1
                return []
        inc.published_severity = top.severity
        inc.windows_since_publish = 0
        inc.top = {"feature": top.feature, "metric": top.metric, "comparison": top.comparison,
                   "threshold": top.threshold, "rule_id": top.rule_id}
        rule = next(r for r in window_rules(model, True) if r.id == top.rule_id)
        source = metric_source(rule.metric)
        values = {SOURCE_PERFORMANCE: report.performance, SOURCE_OPERATIONS: report.operations,
                  SOURCE_QUALITY: report.quality}[source]
        evidence: dict[str, Any] = {
            "window_events": report.n_events, "n": _sample_size(report, rule.metric, top.feature),
            "metrics": dict(values),
            "rule": {"metric": rule.metric, "comparison": rule.comparison, "thresholds": rule.thresholds,
                     "min_samples": rule.min_samples, "fire_after": rule.fire_after,
                     "calibrated": rule.calibration is not None},
            "incident_opened_at_window": inc.opened_at_window, "incident_windows_open": inc.windows_open,
        }
        if source == SOURCE_PERFORMANCE:
            evidence["provisional"] = bool(report.performance.get("provisional", 0.0))
            evidence["label_coverage"] = report.performance.get("label_coverage")
        if report.change_points:
            evidence["change_points"] = report.change_points
        diagnosis = None
        if report.change_points and source == SOURCE_OPERATIONS:
            cp = report.change_points[0]
            diagnosis = Diagnosis(cause="upstream_change", summary=(
                f"{cp['field']} changed {', '.join(cp['from'])} -> {', '.join(cp['to'])} in this window; "
                f"{top.metric}={top.value:.3g} compares the requests after it with those before"), evidence=cp)
        return [AlertEvent(
            alert_id=stable_id(report.model_id, report.model_version, kind, report.window_start.isoformat(),
                               report.window_end.isoformat(), "firing", top.severity),
            incident_id=inc.incident_id, status="firing", model_id=report.model_id,
            model_version=report.model_version, kind=kind,  # type: ignore[arg-type]
            rule_id=top.rule_id, metric=top.metric, comparison=top.comparison,
            feature=top.feature if kind == "quality" else None, slice=None,
            window_start=report.window_start, window_end=report.window_end, value=top.value,
            threshold=top.threshold, severity=top.severity, action=top.action, owner=rule.owner or model.owner,
            runbook=rule.runbook, reference_version=report.reference_version or "", evidence=evidence,
            findings=findings, diagnosis=diagnosis, created_at=now,
        )]

    def _resolved(self, report: WindowReport, state: WindowSeries, kind: str, now: datetime) -> AlertEvent:
        inc = state.incidents.pop(kind)
        top = inc.top
        ks = state.keys.get((top["rule_id"], top["feature"], None))
        return AlertEvent(
            alert_id=stable_id(inc.incident_id, "resolved", report.window_start.isoformat()),
            incident_id=inc.incident_id, status="resolved", model_id=report.model_id,
            model_version=report.model_version, kind=kind,  # type: ignore[arg-type]
            rule_id=top["rule_id"], metric=top["metric"], comparison=top["comparison"],
            feature=top["feature"] if kind == "quality" else None, slice=None,
            window_start=report.window_start, window_end=report.window_end,
            value=ks.last_value if ks else 0.0, threshold=top["threshold"], severity="info", action="none",
            reference_version=report.reference_version or "",
            evidence={"incident_opened_at_window": inc.opened_at_window, "windows_open": inc.windows_open},
            created_at=now,
        )

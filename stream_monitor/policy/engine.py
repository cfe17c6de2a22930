"""From window reports to the alerts a person receives: rules, FDR, hysteresis, grouping, lifecycle.

Per model version there is at most one open drift incident. A window whose keys
fire opens it (one alert listing every drifted feature and slice, ranked, with a
diagnosis); later windows re-publish only when the severity escalates, or every
``renotify_windows`` if asked; when no key fires any more a ``resolved`` event closes
it. Every id is derived from model, version, window and reference, so a replay or a
restart publishes the same ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stream_monitor.config import ModelConfig
from stream_monitor.contracts.alerts import SEVERITY_ORDER, AlertEvent, Finding, stable_id
from stream_monitor.engine_types import WindowReport
from stream_monitor.policy.diagnosis import diagnose
from stream_monitor.policy.fdr import benjamini_hochberg
from stream_monitor.policy.hysteresis import KeyState
from stream_monitor.policy.rules import Verdict, verdicts
from stream_monitor.reference import ReferenceProfile

Key = tuple[str, str, str | None]


@dataclass
class Incident:
    incident_id: str
    opened_at_window: str
    top: dict[str, Any]
    published_severity: str
    windows_since_publish: int = 0
    windows_open: int = 1


@dataclass
class SeriesState:
    """Policy state of one model version: per-key hysteresis and the open incident."""

    keys: dict[Key, KeyState] = field(default_factory=dict)
    incident: Incident | None = None


def _decide(model: ModelConfig, report: WindowReport) -> list[tuple[Verdict, bool]]:
    """Every judged key with whether it breaches after multiple-testing control.

    All keys of all FDR-controlled rules of the window (features x slices x rules)
    form one family, tested together by Benjamini-Hochberg at the strictest level
    declared: the false-alarm budget is per window, not per rule.
    """
    vs = [v for rule in model.all_rules() for v in verdicts(rule, report)]
    breached = [v.severity is not None for v in vs]
    levels = [v.rule.fdr for v in vs if v.rule.fdr is not None]
    if levels:
        family = [i for i, v in enumerate(vs) if v.rule.fdr is not None]
        tested = [i for i in family if vs[i].p_value is not None]
        rejected = benjamini_hochberg([vs[i].p_value for i in tested], min(levels))  # type: ignore[misc]
        keep = {i for i, r in zip(tested, rejected, strict=True) if r}
        breached = [b and (i in keep or vs[i].rule.fdr is None) for i, b in enumerate(breached)]
    return list(zip(vs, breached, strict=True))


def _psi_shares(report: WindowReport) -> dict[str, float]:
    psi = {name: r.stats["psi"] for name, r in report.features.items()
           if "psi" in r.stats and not name.startswith("prediction.")}
    total = sum(psi.values())
    return {name: v / total for name, v in psi.items()} if total > 0 else {}


class PolicyEngine:
    def __init__(self) -> None:
        self.series: dict[tuple[str, str], SeriesState] = {}

    def evaluate(self, model: ModelConfig, report: WindowReport, now: datetime,
                 reference: ReferenceProfile | None = None) -> list[AlertEvent]:
        if report.reference_version is None:
            return []
        state = self.series.setdefault((report.model_id, report.model_version), SeriesState())
        findings: list[Finding] = []
        shares = _psi_shares(report)
        for verdict, breached in _decide(model, report):
            rule = verdict.rule
            ks = state.keys.setdefault(verdict.key, KeyState())
            ks.observe(breached, fire_after=rule.fire_after, clear_after=rule.clear_after,
                       cooldown=rule.cooldown_windows)
            ks.last_value = verdict.value
            if breached:
                ks.last_severity = verdict.severity
            if ks.firing and ks.last_severity is not None:
                sev = verdict.severity if breached else ks.last_severity
                findings.append(Finding(
                    feature=verdict.feature, slice=verdict.slice, rule_id=rule.id, metric=rule.metric,
                    comparison=rule.comparison, value=verdict.value, threshold=verdict.threshold,
                    severity=sev,  # type: ignore[arg-type]
                    action=rule.actions.get(sev, "warn"),  # type: ignore[call-overload]
                    exceedance=verdict.exceedance, share=shares.get(verdict.feature) if verdict.slice is None else None,
                    p_value=verdict.p_value, windows_breached=ks.breach_streak,
                ))
        still_firing = any(k.firing for k in state.keys.values())
        # Inputs before the prediction (causes before effects), overall before slices, then by exceedance.
        findings.sort(key=lambda f: (-SEVERITY_ORDER[f.severity], f.feature.startswith("prediction."),
                                     f.slice is not None, -f.exceedance, f.feature))
        if findings:
            return self._firing(model, report, state, findings, now, reference)
        if state.incident is not None and not still_firing:
            return [self._resolved(report, state, now)]
        if state.incident is not None:
            state.incident.windows_open += 1
        return []

    def _firing(self, model: ModelConfig, report: WindowReport, state: SeriesState, findings: list[Finding],
                now: datetime, reference: ReferenceProfile | None) -> list[AlertEvent]:
        top = findings[0]
        severity = top.severity
        inc = state.incident
        if inc is None:
            inc = state.incident = Incident(
                incident_id=stable_id(report.model_id, report.model_version, "drift-incident",
                                      report.reference_version, report.window_start.isoformat()),
                opened_at_window=report.window_start.isoformat(), top={}, published_severity=severity)
        else:
            inc.windows_open += 1
            escalated = SEVERITY_ORDER[severity] > SEVERITY_ORDER[inc.published_severity]
            renotify = model.renotify_windows and inc.windows_since_publish + 1 >= model.renotify_windows
            if not escalated and not renotify:
                inc.windows_since_publish += 1
                return []
        inc.published_severity = severity
        inc.windows_since_publish = 0
        inc.top = {"feature": top.feature, "metric": top.metric, "comparison": top.comparison,
                   "threshold": top.threshold, "rule_id": top.rule_id}
        top_result = (report.slices.get(top.slice, {}) if top.slice else report.features).get(top.feature)
        rule = next(r for r in model.all_rules() if r.id == top.rule_id)
        drifted = list(dict.fromkeys(f.feature for f in findings))
        evidence: dict[str, Any] = {
            "n_current": top_result.n if top_result else None,
            "n_reference": top_result.n_reference if top_result else None,
            "window_events": report.n_events,
            "binning": top_result.binning if top_result else None,
            "statistics": top_result.stats if top_result else {},
            "rule": {"metric": rule.metric, "comparison": rule.comparison, "thresholds": rule.thresholds,
                     "min_samples": rule.min_samples, "fire_after": rule.fire_after,
                     "calibrated": rule.calibration is not None, "fdr": rule.fdr},
            "drifted_features": drifted,
            "slices": sorted({f.slice for f in findings if f.slice}),
            "detections": report.detections,
            "incident_opened_at_window": inc.opened_at_window,
            "incident_windows_open": inc.windows_open,
        }
        kind = "feature_drift" if any(not f.feature.startswith("prediction.") for f in findings) else "prediction_drift"
        return [AlertEvent(
            alert_id=stable_id(report.model_id, report.model_version, "drift", report.window_start.isoformat(),
                               report.window_end.isoformat(), report.reference_version, "firing"),
            incident_id=inc.incident_id, status="firing", model_id=report.model_id,
            model_version=report.model_version, kind=kind,  # type: ignore[arg-type]
            rule_id=top.rule_id, metric=top.metric, comparison=top.comparison, feature=top.feature, slice=top.slice,
            window_start=report.window_start, window_end=report.window_end, value=top.value,
            threshold=top.threshold, severity=severity, action=top.action, owner=rule.owner or model.owner,
            runbook=rule.runbook, reference_version=report.reference_version or "", evidence=evidence,
            findings=findings, diagnosis=diagnose(report, findings, reference), created_at=now,
        )]

    def _resolved(self, report: WindowReport, state: SeriesState, now: datetime) -> AlertEvent:
        inc = state.incident
        assert inc is not None
        state.incident = None
        top = inc.top
        ks = state.keys.get((top["rule_id"], top["feature"], None))
        return AlertEvent(
            alert_id=stable_id(inc.incident_id, "resolved", report.window_start.isoformat()),
            incident_id=inc.incident_id, status="resolved", model_id=report.model_id,
            model_version=report.model_version,
            kind="prediction_drift" if top["feature"].startswith("prediction.") else "feature_drift",
            rule_id=top["rule_id"], metric=top["metric"], comparison=top["comparison"], feature=top["feature"],
            slice=None, window_start=report.window_start, window_end=report.window_end,
            value=ks.last_value if ks else 0.0, threshold=top["threshold"], severity="info", action="none",
            reference_version=report.reference_version or "",
            evidence={"incident_opened_at_window": inc.opened_at_window, "windows_open": inc.windows_open},
            created_at=now,
        )

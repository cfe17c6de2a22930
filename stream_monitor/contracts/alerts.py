"""Output contract: the alert event published when a declared rule is crossed.

Every alert carries the production contract of the course material: a stable id,
the versions involved, the metric and its rule, the owner, and the next action.
"""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Severity = Literal["info", "warning", "critical"]
Action = Literal["none", "warn", "retrain", "rollback", "escalate"]
AlertKind = Literal["feature_drift", "prediction_drift", "performance", "quality", "latency", "cost", "freshness"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


def stable_id(*parts: str | None) -> str:
    """Deterministic id from its parts: the same window, rule and reference always give the same id.

    That is what lets consumers (and a restarted monitor) de-duplicate: replaying the
    same input, or publishing again after a crash, produces the same key.
    """
    return hashlib.sha256("\x1f".join(p or "" for p in parts).encode()).hexdigest()[:32]


def alert_id_for(
    *,
    model_id: str,
    model_version: str,
    rule_id: str,
    feature: str | None,
    slice_key: str | None,
    window_start: datetime,
    window_end: datetime,
    reference_version: str,
) -> str:
    """The id of one rule's verdict on one feature, slice and window."""
    return stable_id(model_id, model_version, rule_id, feature, slice_key, window_start.isoformat(),
                     window_end.isoformat(), reference_version)


class Finding(BaseModel):
    """One rule crossed on one feature (and slice) in the window; an alert lists them ranked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature: str
    slice: str | None = None
    rule_id: str
    metric: str
    comparison: str
    value: float
    threshold: float
    severity: Severity
    action: Action
    exceedance: float = Field(description="How far past the threshold: value/threshold (inverted for '<' rules).")
    share: float | None = Field(default=None, description="The feature's share of the window's total PSI.")
    p_value: float | None = None
    windows_breached: int = Field(default=1, description="Consecutive breaching windows so far.")


class Diagnosis(BaseModel):
    """The most likely cause category, with the evidence that points at it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cause: Literal["data_quality", "upstream_change", "segment_shift", "covariate_shift_with_prediction_impact",
                   "covariate_shift", "prediction_drift_only", "unknown"]
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict)


class AlertEvent(BaseModel):
    """A rule fired on one model, feature (or the prediction) and window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal["1"] = "1"
    alert_id: str = Field(
        description="Deterministic: sha256 of model, version, window, reference and status."
    )
    incident_id: str | None = Field(default=None, description="Shared by the firing and resolved events of one "
                                    "episode: from the window where it opened until the window where it cleared.")
    status: Literal["firing", "resolved"] = "firing"
    model_id: str
    model_version: str
    kind: AlertKind
    rule_id: str
    metric: str
    comparison: str
    feature: str | None
    slice: str | None
    window_start: AwareDatetime
    window_end: AwareDatetime
    value: float
    threshold: float
    severity: Severity
    action: Action
    owner: str | None = None
    runbook: str | None = None
    reference_version: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list, description="All rules crossed in the window, ranked.")
    diagnosis: Diagnosis | None = None
    created_at: AwareDatetime

    def one_line(self, top: int = 3) -> str:
        """One readable line per model and window: severity, top features, diagnosis, action."""
        head = (f"[{self.severity.upper():8}] {self.model_id}@{self.model_version} "
                f"{self.window_start:%H:%M:%S}-{self.window_end:%H:%M:%S}")
        if self.status == "resolved":
            return f"[RESOLVED] {head[11:]} {self.kind} cleared; incident {(self.incident_id or '')[:12]}"
        seen: dict[str, Finding] = {}
        for f in self.findings:
            seen.setdefault(f.feature + (f"[{f.slice}]" if f.slice else ""), f)
        parts = [f"{name} {f.metric}={f.value:.3g}" for name, f in list(seen.items())[:top]]
        more = f" (+{len(seen) - top} more)" if len(seen) > top else ""
        if not parts:
            parts = [f"{self.feature or '-'} {self.metric}={self.value:.3g}"]
        cause = f" | {self.diagnosis.cause}: {self.diagnosis.summary}" if self.diagnosis else ""
        return (f"{head} {self.kind}: {', '.join(parts)}{more}{cause} | action={self.action} "
                f"ref={self.reference_version} id={self.alert_id[:12]}")

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
    """Deterministic id: the same rule on the same window and reference always gives the same id.

    That is what lets consumers (and a restarted monitor) de-duplicate: replaying the
    same input, or publishing again after a crash, produces the same key.
    """
    parts = [
        model_id,
        model_version,
        rule_id,
        feature or "",
        slice_key or "",
        window_start.isoformat(),
        window_end.isoformat(),
        reference_version,
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class AlertEvent(BaseModel):
    """A rule fired on one model, feature (or the prediction) and window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal["1"] = "1"
    alert_id: str = Field(
        description="Deterministic: sha256 of model, version, rule, feature, slice, window and reference."
    )
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
    created_at: AwareDatetime

    def one_line(self) -> str:
        """The human-readable form the demo prints: severity, where, what, against what."""
        where = self.feature or "-"
        return (
            f"[{self.severity.upper():8}] {self.model_id}@{self.model_version} {self.kind} "
            f"feature={where} {self.metric}={self.value:.4f} {self.comparison} {self.threshold:g} "
            f"window={self.window_start:%H:%M:%S}-{self.window_end:%H:%M:%S} action={self.action} "
            f"ref={self.reference_version} id={self.alert_id[:12]}"
        )

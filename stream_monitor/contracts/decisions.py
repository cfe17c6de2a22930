"""Output contract: the decision event a retraining / deployment pipeline subscribes to.

stream-monitor does not train or deploy models. It decides, with evidence, when a
model should be retrained, promoted, held or rolled back, and publishes that verdict
on the ``decisions`` topic (key = ``decision_id``). Ids are deterministic: the same
stream judged twice (a replay, a restart) yields the same ids, so a subscriber acts
on each decision once.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from stream_monitor.contracts.alerts import stable_id

DecisionType = Literal["retrain", "promote", "hold", "rollback", "blocked"]
DecisionSource = Literal["schedule", "trigger", "champion_challenger", "probation"]
GateName = Literal["label_coverage", "label_freshness", "quality", "data"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DecisionVersions(_Frozen):
    """The model versions a decision involves; which fields are set depends on its type."""

    current: str | None = Field(default=None, description="The version serving (champion) when decided.")
    challenger: str | None = Field(default=None, description="champion_challenger: the shadow version judged.")
    previous: str | None = Field(default=None, description="probation: the version the new one replaced.")
    rollback_target: str | None = Field(default=None, description="rollback: the version to return to.")


class DataWindow(_Frozen):
    """The event-time span of data a retrain should train on (inclusive start, exclusive end)."""

    start: AwareDatetime
    end: AwareDatetime


class GateResult(_Frozen):
    """One data-freshness gate judged for a retrain: what was measured, the limit, and how to unblock it."""

    gate: GateName
    passed: bool
    value: float | None = Field(description="The measured value; None when unknown (no such data yet).")
    limit: float | None
    detail: str
    unblock: str | None = Field(default=None, description="What would make this gate pass (failed gates only).")


class Uncertainty(_Frozen):
    """A confidence interval of an estimated difference (challenger minus champion, oriented: > 0 is better)."""

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str = Field(description="e.g. 'bootstrap-percentile' or 'paired-t'.")
    standard_error: float | None = None
    n: int


class DecisionEvidence(_Frozen):
    """What the decision rests on: the numbers, the windows, the reference, the sample sizes, the uncertainty."""

    metrics: dict[str, float | None] = Field(default_factory=dict)
    windows: list[DataWindow] = Field(default_factory=list, description="The event-time windows judged.")
    reference_version: str | None = None
    sample_sizes: dict[str, int] = Field(default_factory=dict)
    uncertainty: dict[str, Uncertainty] = Field(default_factory=dict, description="Per compared quantity.")
    details: dict[str, Any] = Field(default_factory=dict)


class DecisionEvent(_Frozen):
    """A retrain, promote, hold, rollback or blocked verdict on one model, with its evidence."""

    schema_version: Literal["1"] = "1"
    decision_id: str = Field(description="Deterministic: sha256 of model, type, policy, versions and the "
                             "window or schedule slot it was decided on (32 hex).")
    model_id: str
    type: DecisionType
    source: DecisionSource
    policy_id: str = Field(description="The trigger id, 'schedule', 'champion_challenger' or 'probation'.")
    reason: str = Field(description="One readable sentence: why this decision, in numbers.")
    versions: DecisionVersions
    triggering_alerts: list[str] = Field(default_factory=list, description="alert_ids the decision rests on.")
    schedule_slot: AwareDatetime | None = Field(default=None, description="schedule: the slot that fired.")
    schedule: str | None = Field(default=None, description="schedule: the interval or cron expression.")
    evidence: DecisionEvidence = Field(default_factory=DecisionEvidence)
    gates: list[GateResult] = Field(default_factory=list, description="retrain / blocked: every gate judged.")
    data_window: DataWindow | None = Field(default=None, description="retrain / blocked: the data to train on.")
    owner: str | None = None
    decided_at: AwareDatetime = Field(description="The time the policy judged: the window end (event time) or "
                                      "the schedule tick (the service clock).")
    created_at: AwareDatetime = Field(description="When the event was made (service clock).")

    def one_line(self) -> str:
        v = self.versions
        parts = [p for p in (f"current={v.current}" if v.current else "",
                             f"challenger={v.challenger}" if v.challenger else "",
                             f"rollback_to={v.rollback_target}" if v.rollback_target else "") if p]
        return (f"[{self.type.upper():8}] {self.model_id} {self.source}/{self.policy_id} "
                f"{' '.join(parts)} | {self.reason} | id={self.decision_id[:12]}")


def decision_id_for(model_id: str, type_: str, policy_id: str, *anchors: str | None) -> str:
    """The id of one policy's verdict on one model at one anchor (a window, a slot, a version pair)."""
    return stable_id("decision", model_id, type_, policy_id, *anchors)

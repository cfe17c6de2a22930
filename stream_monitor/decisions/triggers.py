"""Trigger policies: turn alerts and window performance into "retrain", after a persistence of N windows.

A trigger is judged once per closed window of the serving version, and *qualifies*
in that window or not; it fires when it has qualified in ``windows`` consecutive
windows. Alerts are remembered as open incidents (a ``firing`` alert opens or
updates one, its ``resolved`` event closes it), because the policy publishes an
incident once, not every window; the window's own numbers then say whether the
condition still holds (see :func:`qualifies`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream_monitor.config import ModelConfig
from stream_monitor.contracts.alerts import SEVERITY_ORDER, AlertEvent
from stream_monitor.decisions.config import HIGHER_IS_BETTER, RetrainingConfig, TriggerConfig
from stream_monitor.engine_types import WindowReport
from stream_monitor.policy.rules import verdicts

DRIFT_KINDS = ("feature_drift", "prediction_drift")
_MAX_ALERT_IDS = 50


@dataclass
class OpenIncident:
    kind: str
    severity: str
    alert_id: str


def track_incidents(open_: dict[str, dict[str, OpenIncident]], alerts: list[AlertEvent]) -> None:
    """Update the open incidents per model version (version -> incident id -> incident) from new alerts."""
    for a in alerts:
        per_version = open_.setdefault(a.model_version, {})
        key = a.incident_id or a.alert_id
        if a.status == "resolved":
            per_version.pop(key, None)
        else:
            per_version[key] = OpenIncident(a.kind, a.severity, a.alert_id)


@dataclass
class TriggerState:
    """Persistence of one trigger on the serving version, and the learned performance baseline."""

    streak: int = 0
    streak_start: float | None = None  # epoch seconds of the first qualifying window
    alert_ids: list[str] = field(default_factory=list)
    windows: list[list[float]] = field(default_factory=list)  # [start, end] of the streak's last windows
    baseline_version: str | None = None
    baseline_values: list[float] = field(default_factory=list)
    last_notice: str | None = None  # id of the last hold / blocked published for this streak

    def reset(self) -> None:
        self.streak, self.streak_start, self.alert_ids, self.windows, self.last_notice = 0, None, [], [], None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TriggerState:
        return cls(**d)


@dataclass(frozen=True)
class Qualification:
    """Why a trigger qualifies in a window: the numbers and the alerts behind them."""

    detail: str
    metrics: dict[str, float | None]
    alert_ids: list[str]


def _at_least(severity: str, minimum: str) -> bool:
    return SEVERITY_ORDER.get(severity, -1) >= SEVERITY_ORDER[minimum]


def worsening(metric: str, baseline: float, value: float) -> float:
    """How much worse `value` is than `baseline` (> 0 = worse), whatever the metric's direction."""
    if metric == "bias":
        return abs(value) - abs(baseline)
    return baseline - value if HIGHER_IS_BETTER[metric] else value - baseline


def qualifies(trigger: TriggerConfig, retraining: RetrainingConfig, model: ModelConfig, report: WindowReport,
              incidents: dict[str, OpenIncident], state: TriggerState) -> Qualification | None:
    """Whether `trigger` holds in this window of the serving version (None = it does not)."""
    if trigger.on == "drift":
        return _drift(trigger, retraining, model, report, incidents)
    if trigger.on == "alerts":
        hits = [i for i in incidents.values() if i.kind in trigger.kinds and _at_least(i.severity, trigger.severity)]
        if not hits:
            return None
        kinds = sorted({i.kind for i in hits})
        return Qualification(f"open {', '.join(kinds)} incident(s) at {trigger.severity} or above",
                             {"open_incidents": float(len(hits))}, [i.alert_id for i in hits])
    return _performance(trigger, report, incidents, state)


def _drift(trigger: TriggerConfig, retraining: RetrainingConfig, model: ModelConfig, report: WindowReport,
           incidents: dict[str, OpenIncident]) -> Qualification | None:
    drift = [i for i in incidents.values() if i.kind in DRIFT_KINDS]
    if not drift:
        return None
    scope = (set(trigger.features) if trigger.features is not None
             else set(retraining.top_features(trigger.top_k)) if trigger.top_k is not None else None)
    hits: dict[str, float] = {}
    for rule in model.all_rules():
        for v in verdicts(rule, report):
            if (v.slice is None and v.severity is not None and _at_least(v.severity, trigger.severity)
                    and (scope is None or v.feature in scope)):
                hits.setdefault(f"{v.feature}.{rule.metric}", v.value)
    if not hits:
        return None
    names = sorted({k.rsplit(".", 1)[0] for k in hits})
    where = f"top-{trigger.top_k} feature(s)" if trigger.top_k is not None else "feature(s)"
    return Qualification(f"{trigger.severity} drift on {where} {', '.join(names)}", dict(sorted(hits.items())),
                         [i.alert_id for i in drift])


def _performance(trigger: TriggerConfig, report: WindowReport, incidents: dict[str, OpenIncident],
                 state: TriggerState) -> Qualification | None:
    perf = getattr(report, "performance", None) or {}
    coverage, value = perf.get("label_coverage"), perf.get(trigger.metric)
    if coverage is None or value is None or coverage < trigger.min_label_coverage:
        return None
    if state.baseline_version != report.model_version:
        state.baseline_version, state.baseline_values = report.model_version, []
    baseline = trigger.baseline
    if baseline is None:
        if len(state.baseline_values) < trigger.baseline_windows:
            state.baseline_values.append(float(value))
            return None
        baseline = sum(state.baseline_values) / len(state.baseline_values)
    worse = worsening(trigger.metric, baseline, float(value))
    assert trigger.max_drop is not None  # the config validator requires it for on: performance
    if worse <= trigger.max_drop:
        return None
    perf_alerts = [i.alert_id for i in incidents.values() if i.kind == "performance"]
    return Qualification(
        f"{trigger.metric} {value:.4f} is {worse:.4f} worse than its baseline {baseline:.4f} "
        f"(limit {trigger.max_drop:g}) at label coverage {coverage:.2f}",
        {trigger.metric: float(value), f"{trigger.metric}.baseline": baseline, "worsening": worse,
         "label_coverage": float(coverage)}, perf_alerts)


def observe(state: TriggerState, window: tuple[float, float], q: Qualification | None, needed: int) -> bool:
    """Advance the streak by one window; True when it has qualified in `needed` consecutive windows."""
    if q is None:
        state.reset()
        return False
    if state.streak == 0:
        state.streak_start = window[0]
    state.streak += 1
    state.windows = [*state.windows, list(window)][-max(needed, 1):]
    for a in q.alert_ids:
        if a not in state.alert_ids and len(state.alert_ids) < _MAX_ALERT_IDS:
            state.alert_ids.append(a)
    return state.streak >= needed


__all__ = ["OpenIncident", "Qualification", "TriggerState", "observe", "qualifies", "track_incidents", "worsening"]

"""Rollback-safe promotion: watch a newly deployed version against the version it replaced.

When a new version takes over the stream (the serving version is absent from a
closed window in which another version is present, or a deployment is reported to
:meth:`DecisionEngine.observe_deployment`), the new version is *on probation* for
``probation.windows`` windows. Its baseline is the previous version's own record
over its last ``baseline_windows`` windows: the mean of the performance metric (where
label coverage was enough) and the mean of each watched drift statistic (by default
PSI of ``prediction.score`` against the model's reference). A window regresses when

* the metric is worse than the previous version's mean by more than ``max_drop``
  (judged only with label coverage >= ``min_label_coverage``), or
* a watched drift statistic exceeds the previous version's mean by more than
  ``max_drift_increase``.

``regression_windows`` consecutive regressing windows give ``rollback`` naming the
previous version as the target; a probation that runs out without one gives ``hold``
("keep the new version"), with the numbers.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_monitor.decisions.config import ProbationConfig
from stream_monitor.decisions.gates import WindowSummary
from stream_monitor.decisions.triggers import worsening


@dataclass
class Probation:
    version: str
    previous: str
    started: float  # epoch seconds: start of the first window of the new version judged
    baseline: dict[str, float] = field(default_factory=dict)
    baseline_windows: list[list[float]] = field(default_factory=list)  # [start, end] of the windows used
    windows_seen: int = 0
    judged_performance: int = 0
    regress_streak: int = 0
    last_findings: list[str] = field(default_factory=list)
    reference_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Probation:
        return cls(**d)


def drift_keys(cfg: ProbationConfig) -> list[tuple[str, str]]:
    return [(f, cfg.drift_metric) for f in cfg.drift_features]


def start(cfg: ProbationConfig, version: str, previous: str, previous_history: Sequence[WindowSummary],
          started: float) -> Probation:
    """A probation whose baseline is the previous version's last ``baseline_windows`` windows."""
    last = list(previous_history)[-cfg.baseline_windows:]
    baseline: dict[str, float] = {}
    perf = [w.performance[cfg.metric] for w in last
            if cfg.metric in w.performance and w.performance.get("label_coverage", 0.0) >= cfg.min_label_coverage]
    if perf:
        baseline[cfg.metric] = sum(perf) / len(perf)
    for feature, stat in drift_keys(cfg):
        key = f"{feature}.{stat}"
        values = [w.drift[key] for w in last if key in w.drift]
        if values:
            baseline[key] = sum(values) / len(values)
    return Probation(version=version, previous=previous, started=started, baseline=baseline,
                     baseline_windows=[[w.start, w.end] for w in last])


def regressions(cfg: ProbationConfig, p: Probation, window: WindowSummary) -> tuple[list[str], dict[str, float | None]]:
    """The regressions of one window of the new version (readable), and the figures compared."""
    found: list[str] = []
    figures: dict[str, float | None] = {}
    value = window.performance.get(cfg.metric)
    coverage = window.performance.get("label_coverage")
    base = p.baseline.get(cfg.metric)
    figures[cfg.metric] = value
    figures[f"{cfg.metric}.previous"] = base
    figures["label_coverage"] = coverage
    if (cfg.max_drop is not None and value is not None and base is not None and coverage is not None
            and coverage >= cfg.min_label_coverage):
        p.judged_performance += 1
        worse = worsening(cfg.metric, base, value)
        figures[f"{cfg.metric}.worsening"] = worse
        if worse > cfg.max_drop:
            found.append(f"{cfg.metric} {value:.4f} vs {base:.4f} for {p.previous} (worse by {worse:.4f} > "
                         f"{cfg.max_drop:g})")
    for feature, stat in drift_keys(cfg):
        key = f"{feature}.{stat}"
        now, before = window.drift.get(key), p.baseline.get(key)
        figures[key], figures[f"{key}.previous"] = now, before
        if cfg.max_drift_increase is not None and now is not None and before is not None \
                and now - before > cfg.max_drift_increase:
            found.append(f"{key} {now:.4f} vs {before:.4f} for {p.previous} (up {now - before:.4f} > "
                         f"{cfg.max_drift_increase:g})")
    return found, figures

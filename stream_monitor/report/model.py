"""What a drift report shows, collected from engine results: windows, alerts, histograms, the diagnosis.

Kept apart from the HTML so that the numbers a person looks at can be tested
directly (a histogram's proportions against numpy on the same data) and so that
the CLI report, the Python API and the status page share one source of truth.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stream_monitor.config import ModelConfig
from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.contracts.decisions import DecisionEvent
from stream_monitor.engine import Engine
from stream_monitor.engine_types import FeatureResult, WindowReport
from stream_monitor.reference import CategoricalReference, NumericReference, ReferenceProfile
from stream_monitor.sketches.categorical import OTHER

#: Statistics drawn over time, in this order, when the windows have them.
TIMELINE_STATS = ("psi", "ks_statistic", "chi2_pvalue", "missing_rate")


@dataclass(frozen=True)
class Histogram:
    """Reference and current distribution of one feature over the reference's bins, as proportions."""

    feature: str
    kind: str
    labels: list[str]
    reference: list[float]
    current: list[float]
    n_reference: int
    n_current: int
    binning: str
    psi: float | None


@dataclass(frozen=True)
class ReferenceSummary:
    profile_id: str
    source: str
    row_count: int
    time_span: tuple[str | None, str | None]
    created_at: str


@dataclass
class ModelView:
    """Everything the report page shows for one model over a window range."""

    model_id: str
    owner: str | None
    reference: ReferenceSummary | None
    windows: list[WindowReport]
    alerts: list[AlertEvent]
    histograms: list[Histogram]
    current: WindowReport | None
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    open_incident: dict[str, Any] | None = None
    decisions: list[DecisionEvent] = field(default_factory=list)
    range: tuple[datetime | None, datetime | None] = (None, None)

    @property
    def evaluated(self) -> list[WindowReport]:
        return [w for w in self.windows if w.role == "evaluated"]

    @property
    def diagnosed(self) -> AlertEvent | None:
        """The latest firing alert with a diagnosis: what the page explains."""
        return next((a for a in reversed(self.alerts) if a.status == "firing" and a.diagnosis is not None), None)


def _num(x: float) -> str:
    """Short, readable bin edges: 3 significant digits, k/M suffixes for large values."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= 0.9995 * scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}" if abs(x) >= 1e-3 else f"{x:.2e}"


def bin_labels(edges: Sequence[float], n_bins: int) -> list[str]:
    """Labels of the histogram bins: ``len(edges) + 1`` right-closed bins with open outer ends."""
    e = list(edges)
    if n_bins != len(e) + 1:
        return [f"bin {i}" for i in range(n_bins)]
    if not e:
        return ["all"]
    labels = [f"≤ {_num(e[0])}"]
    labels += [f"{_num(a)} – {_num(b)}" for a, b in zip(e[:-1], e[1:], strict=True)]
    return [*labels, f"> {_num(e[-1])}"]


def _proportions(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [float(c) / total if total > 0 else 0.0 for c in counts]


def histogram(name: str, ref: object, result: FeatureResult) -> Histogram | None:
    """Reference vs window proportions for one feature; None for kinds without bins (embeddings)."""
    if result.counts is None:
        return None
    if isinstance(ref, NumericReference):
        labels = bin_labels(ref.edges.tolist(), len(ref.counts))
        ref_counts = ref.counts.tolist()
    elif isinstance(ref, CategoricalReference):
        labels = [*ref.categories, OTHER]
        ref_counts = ref.counts.tolist()
    else:
        return None
    if len(ref_counts) != len(result.counts):
        return None
    return Histogram(feature=name, kind=result.kind, labels=labels, reference=_proportions(ref_counts),
                     current=_proportions(result.counts), n_reference=int(sum(ref_counts)), n_current=result.n,
                     binning=result.binning, psi=result.stats.get("psi"))


def reference_summary(profile: ReferenceProfile | None) -> ReferenceSummary | None:
    if profile is None:
        return None
    return ReferenceSummary(profile_id=profile.profile_id, source=profile.source, row_count=profile.row_count,
                            time_span=profile.time_span, created_at=profile.created_at)


def rule_thresholds(model: ModelConfig) -> dict[str, dict[str, float]]:
    """metric -> severity -> threshold of the model's uncalibrated overall rules (the lines on the charts)."""
    out: dict[str, dict[str, float]] = {}
    for rule in model.rules:
        if rule.calibration is None and rule.features is None:
            out.setdefault(rule.metric, {str(k): v for k, v in rule.thresholds.items()})
    return out


def in_range(report: WindowReport, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or report.window_start >= start) and (end is None or report.window_end <= end)


def current_window(windows: Sequence[WindowReport], min_samples: int) -> WindowReport | None:
    """The latest evaluated window big enough for the rules to judge it (a replay's last window is often a
    stub), else the latest evaluated window."""
    evaluated = [w for w in windows if w.role == "evaluated"]
    return next((w for w in reversed(evaluated) if w.n_events >= min_samples), evaluated[-1] if evaluated else None)


def collect(engine: Engine, model_id: str, windows: Iterable[WindowReport], alerts: Iterable[AlertEvent],
            start: datetime | None = None, end: datetime | None = None,
            decisions: Iterable[DecisionEvent] = ()) -> ModelView:
    """The view of one model: its windows, alerts and decisions within [start, end], histograms of the latest window.

    `windows` and `alerts` come from a replay's totals (every window) or the engine's
    bounded history (the running service). "Current" is :func:`current_window` in
    the range: the histograms compare it with the reference profile in use.
    """
    mm = engine.models.get(model_id)
    if mm is None:
        raise KeyError(model_id)
    chosen = sorted((w for w in windows if w.model_id == model_id and in_range(w, start, end)),
                    key=lambda w: (w.window_start, w.model_version))
    picked = [a for a in alerts if a.model_id == model_id
              and (start is None or a.window_start >= start) and (end is None or a.window_end <= end)]
    decided = [d for d in decisions if d.model_id == model_id
               and (start is None or d.decided_at >= start) and (end is None or d.decided_at <= end)]
    current = current_window(chosen, min(r.min_samples for r in mm.config.rules) if mm.config.rules else 1)
    histograms: list[Histogram] = []
    if current is not None and mm.reference is not None:
        for name, result in current.features.items():
            h = histogram(name, mm.reference.features.get(name), result)
            if h is not None:
                histograms.append(h)
    incident = None
    for (mid, version), series in sorted(engine.policy.series.items()):
        if mid == model_id and series.incident is not None:
            inc = series.incident
            incident = {"model_version": version, "incident_id": inc.incident_id,
                        "opened_at_window": inc.opened_at_window, "severity": inc.published_severity,
                        "windows_open": inc.windows_open, "top": dict(inc.top)}
    return ModelView(model_id=model_id, owner=mm.config.owner, reference=reference_summary(mm.reference),
                     windows=chosen, alerts=picked, histograms=histograms, current=current,
                     thresholds=rule_thresholds(mm.config), open_incident=incident, range=(start, end),
                     decisions=decided)


def top_drifted(report: WindowReport, statistic: str = "psi", limit: int = 5) -> list[tuple[str, float]]:
    """Features of a window ranked by a statistic, largest first (the status page's list)."""
    ranked = [(name, r.stats[statistic]) for name, r in report.features.items()
              if statistic in r.stats and math.isfinite(r.stats[statistic])]
    return sorted(ranked, key=lambda x: (-x[1], x[0]))[:limit]

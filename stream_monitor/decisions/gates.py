"""Data-freshness gates: a retrain is decided only when the data it names is fresh and sound.

A retrain decision names a data window (``[end - data_window_seconds, end)``, ``end`` =
the newest closed window of the serving version). Over the closed windows inside it:

* ``label_coverage``: labelled events / events must reach ``gates.min_label_coverage``;
* ``label_freshness``: the newest label, aged to the service clock now, must be at most
  ``gates.max_label_age_seconds`` old (label age is processing time, as the label join
  measures it; everything else is event time);
* ``quality``: quality-contract violations per event must stay at most
  ``gates.max_violation_rate``;
* ``data``: the window must hold at least ``gates.min_events`` events.

A quantity the monitor does not know (no label stream joined, no quality contract)
fails its gate with a reason that says so: "unknown" is not "fresh". A gate set to
null in the config is not judged. The figures come from the window reports' ``performance``
and ``quality`` maps (label join and quality contracts, docs/retraining.md).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from stream_monitor.contracts.decisions import GateResult
from stream_monitor.decisions.config import GatesConfig
from stream_monitor.engine_types import WindowReport


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass
class WindowSummary:
    """What the decision layer keeps of one closed window: small, JSON-able, enough for gates and baselines."""

    start: float  # epoch seconds
    end: float
    n_events: int
    performance: dict[str, float] = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict)  # "<feature>.<statistic>" for probation features
    operations: dict[str, float] = field(default_factory=dict)
    measured_at: float | None = None  # service clock when `performance` was read (the label age is as of then)

    @classmethod
    def of(cls, report: WindowReport, drift_keys: Sequence[tuple[str, str]] = (),
           measured_at: datetime | None = None) -> WindowSummary:
        perf = {k: f for k, v in (getattr(report, "performance", None) or {}).items() if (f := _finite(v)) is not None}
        qual = {k: f for k, v in (getattr(report, "quality", None) or {}).items() if (f := _finite(v)) is not None}
        ops = {k: f for k, v in (getattr(report, "operations", None) or {}).items() if (f := _finite(v)) is not None}
        drift: dict[str, float] = {}
        for feature, stat in drift_keys:
            result = report.features.get(feature)
            value = _finite(result.stats.get(stat)) if result is not None else None
            if value is not None:
                drift[f"{feature}.{stat}"] = value
        return cls(report.window_start.timestamp(), report.window_end.timestamp(), report.n_events,
                   perf, qual, drift, ops, measured_at.timestamp() if measured_at is not None else None)

    def labels(self) -> float | None:
        """Labelled events of the window: the count if reported, else coverage x events."""
        n = self.performance.get("labels")
        if n is not None:
            return n
        cov = self.performance.get("label_coverage")
        return cov * self.n_events if cov is not None else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowSummary:
        return cls(**d)


@dataclass(frozen=True)
class DataFigures:
    """The gate quantities over one data window (None = unknown)."""

    events: int
    windows: int
    label_coverage: float | None
    label_age_seconds: float | None
    violation_rate: float | None


def figures(windows: Sequence[WindowSummary], now: datetime) -> DataFigures:
    """Aggregate the windows of a data window; the newest label is aged to `now` (the service clock).

    The label join measures a label's age on the service clock when it refreshes a
    window's performance; that age grows by the clock time elapsed since.
    """
    events = sum(w.n_events for w in windows)
    labelled = [(w.labels(), w.n_events) for w in windows]
    known = [(lab, n) for lab, n in labelled if lab is not None]
    coverage = (sum(lab for lab, _ in known) / sum(n for _, n in known)) if known and sum(
        n for _, n in known) > 0 else None
    age = None
    for w in sorted(windows, key=lambda w: w.end, reverse=True):
        a = w.performance.get("newest_label_age_seconds")
        if a is not None:
            age = a + (max(0.0, now.timestamp() - w.measured_at) if w.measured_at is not None else 0.0)
            break
    rated = [(w.quality["violation_rate"], w.n_events) for w in windows if "violation_rate" in w.quality]
    total = sum(n for _, n in rated)
    violation = sum(r * n for r, n in rated) / total if rated and total > 0 else None
    return DataFigures(events, len(windows), coverage, age, violation)


def judge_gates(cfg: GatesConfig, fig: DataFigures) -> list[GateResult]:
    """Every configured gate with its value, limit, verdict and, when failed, what would unblock it."""
    out: list[GateResult] = []
    if cfg.min_events > 0 or fig.windows == 0:
        ok = fig.windows > 0 and fig.events >= cfg.min_events
        out.append(GateResult(
            gate="data", passed=ok, value=float(fig.events), limit=float(cfg.min_events),
            detail=(f"{fig.events} events in {fig.windows} closed window(s) of the data window"
                    if fig.windows else "no closed window of the serving version in the data window"),
            unblock=None if ok else "wait for more traffic, or lower retraining.gates.min_events"))
    if cfg.min_label_coverage is not None:
        cov = fig.label_coverage
        ok = cov is not None and cov >= cfg.min_label_coverage
        out.append(GateResult(
            gate="label_coverage", passed=ok, value=cov, limit=cfg.min_label_coverage,
            detail=("label coverage unknown: no labels joined in the data window (is topics.labels set?)"
                    if cov is None else f"label coverage {cov:.3f} (limit >= {cfg.min_label_coverage:g})"),
            unblock=None if ok else "wait for labels of the data window to arrive, or lower "
                                    "retraining.gates.min_label_coverage"))
    if cfg.max_label_age_seconds is not None:
        age = fig.label_age_seconds
        ok = age is not None and age <= cfg.max_label_age_seconds
        out.append(GateResult(
            gate="label_freshness", passed=ok, value=age, limit=cfg.max_label_age_seconds,
            detail=("newest label age unknown: no label stream joined" if age is None
                    else f"newest label is {age:.0f}s old (limit <= {cfg.max_label_age_seconds:g}s)"),
            unblock=None if ok else "restore the label feed (fresh labels on topics.labels), or raise "
                                    "retraining.gates.max_label_age_seconds"))
    if cfg.max_violation_rate is not None:
        rate = fig.violation_rate
        ok = rate is not None and rate <= cfg.max_violation_rate
        out.append(GateResult(
            gate="quality", passed=ok, value=rate, limit=cfg.max_violation_rate,
            detail=("quality-contract violation rate unknown: no quality contract evaluated" if rate is None
                    else f"quality-contract violation rate {rate:.4f} (limit <= {cfg.max_violation_rate:g})"),
            unblock=None if ok else "fix the upstream data (see the quality alerts), or raise "
                                    "retraining.gates.max_violation_rate (null turns the gate off)"))
    return out

"""Decision events from the policies' verdicts: ids, reasons, versions, evidence, gates and data windows.

Ids are :func:`~stream_monitor.contracts.decisions.decision_id_for` of the model, the
type, the policy and anchors that name *what* was decided on:

* retrain: the trigger's streak windows, or the schedule slot;
* hold for min interval / budget: the cause, the blocking retrain (or the day) and the
  trigger's streak start (or the slot), so one streak publishes it once;
* blocked: the streak start (or the slot) and the failed gates;
* promote / hold of a challenger: the pair and the window it was judged at;
* rollback / probation hold: the new and previous versions and the window.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from stream_monitor.config import ModelConfig
from stream_monitor.contracts.decisions import (
    DataWindow,
    DecisionEvent,
    DecisionEvidence,
    DecisionSource,
    DecisionType,
    DecisionVersions,
    Uncertainty,
    decision_id_for,
)
from stream_monitor.decisions.challenger import ShadowPairs, Verdict
from stream_monitor.decisions.config import ChampionChallengerConfig, RetrainingConfig
from stream_monitor.decisions.gates import WindowSummary, figures, judge_gates
from stream_monitor.decisions.paired import Interval
from stream_monitor.decisions.probation import Probation
from stream_monitor.engine_types import WindowReport


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _windows(spans: Iterable[list[float]]) -> list[DataWindow]:
    return [DataWindow(start=_ts(s), end=_ts(e)) for s, e in spans]


def window_of(cfg: RetrainingConfig, history: Iterable[WindowSummary], decided_at: datetime
              ) -> tuple[DataWindow, list[WindowSummary]]:
    """The data a retrain decided at `decided_at` should use, and the closed windows inside it."""
    closed = [w for w in history if w.end <= decided_at.timestamp()]
    end = max((w.end for w in closed), default=decided_at.timestamp())
    start = end - cfg.data_window_seconds
    return DataWindow(start=_ts(start), end=_ts(end)), [w for w in closed if w.start >= start]


def _uncertainty(i: Interval) -> Uncertainty:
    return Uncertainty(estimate=i.estimate, ci_low=i.low, ci_high=i.high, confidence=i.confidence, method=i.method,
                       standard_error=i.standard_error, n=i.n)


class Builder:
    """Makes the decision events of one model at one evaluation (`now` = the service clock)."""

    def __init__(self, model: ModelConfig, now: datetime) -> None:
        self.model = model
        self.now = now
        retraining = model.retraining
        self.owner = (retraining.owner if retraining is not None else None) or model.owner

    def event(self, type_: DecisionType, source: DecisionSource, policy_id: str, anchors: tuple[str | None, ...],
              reason: str, decided_at: datetime, versions: DecisionVersions, **fields: object) -> DecisionEvent:
        return DecisionEvent(
            decision_id=decision_id_for(self.model.model_id, type_, policy_id, *anchors),
            model_id=self.model.model_id, type=type_, source=source, policy_id=policy_id, reason=reason,
            versions=versions, owner=self.owner, decided_at=decided_at, created_at=self.now,
            **fields,  # type: ignore[arg-type]
        )

    def retrain(self, cfg: RetrainingConfig, policy_id: str, anchor: str, episode: str, reason: str,
                decided_at: datetime, serving: str | None, alert_ids: list[str], metrics: dict[str, float | None],
                windows: list[list[float]], reference: str | None, schedule: tuple[str, datetime] | None,
                data_window: DataWindow, summaries: list[WindowSummary]) -> DecisionEvent:
        """Retrain if every gate passes, else blocked naming the failed gates and what would unblock them."""
        fig = figures(summaries, self.now)
        gates = judge_gates(cfg.gates, fig)
        failed = [g for g in gates if not g.passed]
        source: DecisionSource = "schedule" if schedule is not None else "trigger"
        evidence = DecisionEvidence(
            metrics={**metrics, "label_coverage": fig.label_coverage, "label_age_seconds": fig.label_age_seconds,
                     "violation_rate": fig.violation_rate},
            windows=_windows(windows), reference_version=reference,
            sample_sizes={"data_window_events": fig.events, "data_window_windows": fig.windows},
        )
        common = {"triggering_alerts": list(alert_ids), "evidence": evidence, "gates": gates,
                  "data_window": data_window, "schedule": schedule[0] if schedule else None,
                  "schedule_slot": schedule[1] if schedule else None}
        versions = DecisionVersions(current=serving)
        if failed:
            names = ",".join(g.gate for g in failed)
            why = "; ".join(f"{g.gate}: {g.detail}" for g in failed)
            return self.event("blocked", source, policy_id, (episode, names),
                              f"{reason}; blocked by {names}: {why}", decided_at, versions, **common)
        return self.event("retrain", source, policy_id, (anchor,), reason, decided_at, versions, **common)

    def retrain_hold(self, policy_id: str, episode: str, hold: tuple[str, str, str], reason: str,
                     decided_at: datetime, serving: str | None, alert_ids: list[str],
                     metrics: dict[str, float | None], windows: list[list[float]], reference: str | None,
                     schedule: tuple[str, datetime] | None) -> DecisionEvent:
        cause, blocker, why = hold
        return self.event(
            "hold", "schedule" if schedule is not None else "trigger", policy_id, (cause, blocker, episode),
            f"{reason}; held: {why}", decided_at, DecisionVersions(current=serving),
            triggering_alerts=list(alert_ids),
            evidence=DecisionEvidence(metrics=metrics, windows=_windows(windows), reference_version=reference,
                                      details={"held_by": cause, "blocker": blocker}),
            schedule=schedule[0] if schedule else None, schedule_slot=schedule[1] if schedule else None)

    def probation(self, p: Probation, type_: DecisionType, report: WindowReport,
                  figures_: dict[str, float | None], reason: str) -> DecisionEvent:
        versions = DecisionVersions(current=p.version, previous=p.previous,
                                    rollback_target=p.previous if type_ == "rollback" else None)
        evidence = DecisionEvidence(
            metrics=figures_, windows=[DataWindow(start=report.window_start, end=report.window_end)],
            reference_version=report.reference_version,
            sample_sizes={"window_events": report.n_events, "probation_windows": p.windows_seen,
                          "baseline_windows": len(p.baseline_windows)},
            details={"baseline": p.baseline, "baseline_windows": [[_ts(s).isoformat(), _ts(e).isoformat()]
                                                                  for s, e in p.baseline_windows],
                     "regressions": p.last_findings, "probation_started": _ts(p.started).isoformat()})
        return self.event(type_, "probation", "probation", (p.version, p.previous, report.window_start.isoformat()),
                          reason, report.window_end, versions, evidence=evidence)


def judged_pair(build: Builder, cc: ChampionChallengerConfig, champion: str, challenger: str, verdict: Verdict,
                at: WindowReport, pairs: ShadowPairs) -> DecisionEvent:
    """promote / hold of a challenger, with both intervals of every compared quantity."""
    uncertainty = {f"{cc.metric}.bootstrap": _uncertainty(verdict.quality.bootstrap),
                   f"{cc.metric}.paired_t": _uncertainty(verdict.quality.t)}
    for name, cmp in (("latency_ms", verdict.latency), ("cost_usd", verdict.cost)):
        if cmp is not None:
            uncertainty[f"{name}.bootstrap"] = _uncertainty(cmp.bootstrap)
            uncertainty[f"{name}.paired_t"] = _uncertainty(cmp.t)
    evidence = DecisionEvidence(
        metrics={**verdict.means, f"{cc.metric}.gain": verdict.quality.t.estimate},
        windows=[DataWindow(start=at.window_start, end=at.window_end)], reference_version=at.reference_version,
        sample_sizes={"pairs": verdict.n, "pending": len(pairs.pending), "dropped": pairs.dropped,
                      "unscorable": pairs.incomplete},
        uncertainty=uncertainty,
        details={"margin": cc.margin, "confidence": cc.confidence, "min_samples": cc.min_samples,
                 "bootstrap_resamples": cc.bootstrap_resamples, "seed": cc.seed,
                 "max_latency_increase_ms": cc.max_latency_increase_ms,
                 "max_cost_increase_usd": cc.max_cost_increase_usd,
                 "orientation": f"{cc.metric}: challenger minus champion, losses negated (> 0 favours the "
                                "challenger); latency and cost: challenger minus champion (> 0 costs more)"},
    )
    type_: DecisionType = "promote" if verdict.promote else "hold"
    return build.event(type_, "champion_challenger", "champion_challenger",
                       (champion, challenger, at.window_end.isoformat()), verdict.reason, at.window_end,
                       DecisionVersions(current=champion, challenger=challenger), evidence=evidence)

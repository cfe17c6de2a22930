"""The decision engine: closed windows, alerts, labels and the clock in; decision events out. No I/O.

Called by :class:`stream_monitor.engine.Engine` with every closed window (all model
versions of one window together, so "which version is serving" is known) and by
``tick(now)`` for schedules. Everything it decides is anchored on event time (the
window end) or on a schedule slot, never on the wall clock, so a replay of the same
stream makes the same decisions with the same ids (``created_at`` aside).

Per model it keeps: the serving version, small summaries of recent windows per
version (for gates and baselines), open incidents from alerts, each trigger's
streak, the last retrain and the day's count (min interval, budget), the schedule's
last slot, the probation of a new version, and the champion/challenger pairs. All of
it is checkpointed with the model (:meth:`snapshot` / :meth:`restore`).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream_monitor.config import ModelConfig, MonitorConfig
from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.contracts.decisions import DecisionEvent
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.decisions import probation as prob
from stream_monitor.decisions.build import Builder, judged_pair, window_of
from stream_monitor.decisions.challenger import Answer, Label, ShadowPairs, judge
from stream_monitor.decisions.config import RetrainingConfig
from stream_monitor.decisions.gates import WindowSummary
from stream_monitor.decisions.intake import answers_from_columns
from stream_monitor.decisions.schedule import latest_slot, slots_between
from stream_monitor.decisions.triggers import OpenIncident, TriggerState, observe, qualifies, track_incidents
from stream_monitor.engine_types import WindowReport

#: Window summaries kept per model version (gates look back over the data window).
MAX_SUMMARIES = 10_000


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


@dataclass
class ModelDecisions:
    """The decision state of one model (see the module docstring)."""

    serving: str | None = None
    history: dict[str, deque[WindowSummary]] = field(default_factory=dict)
    incidents: dict[str, dict[str, OpenIncident]] = field(default_factory=dict)
    triggers: dict[str, TriggerState] = field(default_factory=dict)
    last_retrain_at: float | None = None
    last_retrain_id: str | None = None
    retrains_by_day: dict[str, int] = field(default_factory=dict)
    schedule_last_slot: float | None = None
    probation: prob.Probation | None = None
    rollback_target: str | None = None
    cc_last: dict[str, str] = field(default_factory=dict)
    pairs: ShadowPairs | None = None


class DecisionEngine:
    """Retrain / promote / hold / rollback / blocked decisions for the models with a `retraining` section."""

    def __init__(self, config: MonitorConfig) -> None:
        self.models: dict[str, ModelConfig] = {
            m.model_id: m for m in config.models if m.retraining is not None and m.retraining.enabled}
        self.state: dict[str, ModelDecisions] = {}
        for mid in self.models:
            self.reset(mid)
        #: Models whose prediction records must be read for champion/challenger pairing.
        self.paired_models = frozenset(mid for mid, m in self.models.items()
                                       if m.retraining is not None and m.retraining.champion_challenger.enabled)

    def enabled_for(self, model_id: str) -> bool:
        return model_id in self.models

    @property
    def wants_predictions(self) -> bool:
        return bool(self.paired_models)

    def _retraining(self, model_id: str) -> RetrainingConfig:
        cfg = self.models[model_id].retraining
        assert cfg is not None
        return cfg

    # -- inputs besides windows -------------------------------------------------------------

    def observe_prediction(self, model_id: str, event_id: str, version: str, answer: Answer) -> None:
        pairs = self.state[model_id].pairs if model_id in self.paired_models else None
        if pairs is not None:
            pairs.observe(event_id, version, answer)

    def observe_events(self, events: Iterable[PredictionEvent]) -> None:
        for e in events:
            if e.model_id in self.paired_models:
                cost = e.llm.cost_usd if e.llm is not None else None
                self.observe_prediction(e.model_id, e.event_id, e.model_version, Answer(
                    e.prediction.score, e.prediction.class_, e.prediction.value, e.latency_ms, cost))

    def observe_columns(self, batches: Iterable[Any]) -> None:
        """The engine's column batches (its hot path); only paired models' rows are read."""
        for batch in batches:
            if batch.model_id in self.paired_models:
                pairs = self.state[batch.model_id].pairs
                assert pairs is not None
                for event_id, version, answer in answers_from_columns(batch):
                    pairs.observe(event_id, version, answer)

    def observe_labels(self, labels: Iterable[Any], updates: Iterable[WindowReport] = (),
                       now: datetime | None = None) -> None:
        """Label events (pairs for champion/challenger) and closed windows whose performance the labels changed
        (so gates see the label coverage and freshness as they are now, not as they were at the close)."""
        if self.paired_models:
            for lab in labels:
                if lab.model_id in self.paired_models:
                    self.observe_label(lab.event_id, lab.label, lab.timestamp, lab.model_id)
        for r in updates:
            st = self.state.get(r.model_id)
            history = st.history.get(r.model_version) if st is not None else None
            if not history:
                continue
            start = r.window_start.timestamp()
            for i in range(len(history) - 1, -1, -1):
                if history[i].start == start:
                    cfg = self._retraining(r.model_id)
                    history[i] = WindowSummary.of(r, prob.drift_keys(cfg.probation), now)
                    break
                if history[i].start < start:
                    break

    def observe_label(self, event_id: str, label: Label, ts: datetime | None = None,
                      model_id: str | None = None) -> None:
        """A ground-truth label for an earlier request (from the label topic); `ts` is kept for the API's sake."""
        for mid in ([model_id] if model_id is not None else sorted(self.paired_models)):
            pairs = self.state[mid].pairs if mid in self.paired_models else None
            if pairs is not None and (model_id is not None or event_id in pairs.pending):
                pairs.observe_label(event_id, label)

    def observe_deployment(self, model_id: str, version: str, previous: str | None, at: datetime,
                           now: datetime) -> list[DecisionEvent]:
        """A deployment event: `version` now serves; starts its probation against `previous`."""
        if model_id not in self.models:
            return []
        st = self.state[model_id]
        previous = previous or st.serving
        if previous is not None and previous != version:
            self._deployed(model_id, st, version, previous, at.timestamp())
        st.serving = version
        return []

    # -- windows --------------------------------------------------------------------------------

    def evaluate(self, model: ModelConfig, report: WindowReport, alerts: list[AlertEvent],
                 now: datetime) -> list[DecisionEvent]:
        """One closed window of one version (prefer :meth:`evaluate_closed` with all versions of a window)."""
        return self.evaluate_closed(model, [(report, alerts)], now)

    def evaluate_closed(self, model: ModelConfig, closed: Sequence[tuple[WindowReport, list[AlertEvent]]],
                        now: datetime) -> list[DecisionEvent]:
        """Windows closed together (sorted by start, then version): each window judged with all its versions."""
        if model.model_id not in self.models or not closed:
            return []
        groups: dict[float, list[tuple[WindowReport, list[AlertEvent]]]] = {}
        for report, alerts in closed:
            groups.setdefault(report.window_start.timestamp(), []).append((report, alerts))
        out: list[DecisionEvent] = []
        for start in sorted(groups):
            out.extend(self._window(model, groups[start], now))
        return out

    def _window(self, model: ModelConfig, group: list[tuple[WindowReport, list[AlertEvent]]],
                now: datetime) -> list[DecisionEvent]:
        mid = model.model_id
        cfg = self._retraining(mid)
        st = self.state[mid]
        track_incidents(st.incidents, [a for _, alerts in group for a in alerts])
        reports = {r.model_version: r for r, _ in group}
        for version, r in reports.items():
            st.history.setdefault(version, deque(maxlen=MAX_SUMMARIES)).append(
                WindowSummary.of(r, prob.drift_keys(cfg.probation), now))
        first = next(iter(reports.values()))
        start = first.window_start.timestamp()
        if st.serving is None:
            st.serving = self._choose(cfg, st, reports)
        elif st.serving not in reports:
            new = self._choose(cfg, st, reports)
            self._deployed(mid, st, new, st.serving, start)
            st.serving = new
        build = Builder(model, now)
        out: list[DecisionEvent] = []
        if st.probation is not None and st.probation.version in reports:
            out.extend(self._probation(build, cfg, st, reports[st.probation.version]))
        serving = reports.get(st.serving or "")
        if serving is not None:
            for trigger in cfg.triggers:
                ts = st.triggers.setdefault(trigger.id, TriggerState())
                q = qualifies(trigger, cfg, model, serving, st.incidents.get(serving.model_version, {}), ts)
                window = (serving.window_start.timestamp(), serving.window_end.timestamp())
                if observe(ts, window, q, trigger.windows) and q is not None:
                    d = self._retrain(build, cfg, st, trigger.id, serving.window_end, anchor=_anchor(ts),
                                      episode=str(ts.streak_start),
                                      reason=f"trigger {trigger.id}: {q.detail} for {ts.streak} window(s)",
                                      alert_ids=ts.alert_ids, metrics=q.metrics, windows=ts.windows,
                                      reference=serving.reference_version)
                    out.extend([d] if d is not None else [])
            if cfg.champion_challenger.enabled:
                out.extend(self._challengers(build, cfg, st, serving))
        return out

    @staticmethod
    def _choose(cfg: RetrainingConfig, st: ModelDecisions, reports: dict[str, WindowReport]) -> str:
        """The serving version among those present: configured champion, a pending rollback target, else the
        version with the most events (ties by name). Shadows share the window with it and do not take over."""
        champion = cfg.champion_challenger.champion
        if champion is not None and champion in reports:
            return champion
        if st.rollback_target is not None and st.rollback_target in reports:
            return st.rollback_target
        return min(reports, key=lambda v: (-reports[v].n_events, v))

    def _deployed(self, mid: str, st: ModelDecisions, new: str, previous: str, start: float) -> None:
        cfg = self._retraining(mid)
        for ts in st.triggers.values():
            ts.reset()
        if st.rollback_target == new:  # the rollback we asked for has happened: nothing to watch
            st.rollback_target, st.probation = None, None
            return
        history = st.history.get(previous, deque())
        st.probation = (prob.start(cfg.probation, new, previous, [w for w in history if w.start < start], start)
                        if cfg.probation.enabled else None)

    # -- policies ---------------------------------------------------------------------------

    def _probation(self, build: Builder, cfg: RetrainingConfig, st: ModelDecisions,
                   report: WindowReport) -> list[DecisionEvent]:
        p = st.probation
        assert p is not None
        p.reference_version = report.reference_version
        summary = st.history[report.model_version][-1]
        p.windows_seen += 1
        found, figures = prob.regressions(cfg.probation, p, summary)
        p.regress_streak = p.regress_streak + 1 if found else 0
        p.last_findings = found
        if found and p.regress_streak >= cfg.probation.regression_windows:
            st.probation, st.rollback_target = None, p.previous
            return [build.probation(p, "rollback", report, figures,
                                    f"roll {p.version} back to {p.previous}: " + "; ".join(found))]
        if p.windows_seen >= cfg.probation.windows:
            st.probation = None
            judged = "" if p.judged_performance else f" ({cfg.probation.metric} not judged: too few labels)"
            return [build.probation(p, "hold", report, figures,
                                    f"keep {p.version}: {p.windows_seen} probation window(s) without a "
                                    f"regression against {p.previous}{judged}")]
        return []

    def _retrain(self, build: Builder, cfg: RetrainingConfig, st: ModelDecisions, policy_id: str,
                 decided_at: datetime, *, anchor: str, episode: str, reason: str, alert_ids: list[str],
                 metrics: dict[str, float | None], windows: list[list[float]], reference: str | None,
                 schedule: tuple[str, datetime] | None = None) -> DecisionEvent | None:
        """Retrain, unless the min interval or the budget says hold, or a gate says blocked."""
        at = decided_at.timestamp()
        day = decided_at.astimezone(UTC).date().isoformat()
        ts = st.triggers.get(policy_id)
        hold = None
        if st.last_retrain_at is not None and at - st.last_retrain_at < cfg.min_interval_seconds:
            allowed = _ts(st.last_retrain_at + cfg.min_interval_seconds)
            hold = ("min_interval", st.last_retrain_id or "",
                    f"the last retrain was decided {at - st.last_retrain_at:.0f}s ago (min interval "
                    f"{cfg.min_interval_seconds:g}s; next allowed at {allowed:%Y-%m-%dT%H:%M:%SZ})")
        elif st.retrains_by_day.get(day, 0) >= cfg.daily_budget:
            hold = ("daily_budget", day, f"the daily budget of {cfg.daily_budget} retrain(s) for {day} is spent")
        history = st.history.get(st.serving or "", deque())
        data_window, summaries = window_of(cfg, history, decided_at)
        if hold is not None:
            d = build.retrain_hold(policy_id, episode, hold, reason, decided_at, st.serving, alert_ids, metrics,
                                   windows, reference, schedule)
        else:
            d = build.retrain(cfg, policy_id, anchor, episode, reason, decided_at, st.serving, alert_ids, metrics,
                              windows, reference, schedule, data_window, summaries)
        if ts is not None:  # a trigger publishes one hold / blocked per cause and streak, not one per window
            if d.type in ("hold", "blocked") and ts.last_notice == d.decision_id:
                return None
            ts.last_notice = d.decision_id
        if d.type == "retrain":
            st.last_retrain_at, st.last_retrain_id = at, d.decision_id
            st.retrains_by_day = {k: v for k, v in st.retrains_by_day.items() if k >= day} | {
                day: st.retrains_by_day.get(day, 0) + 1}
            for t in st.triggers.values():
                t.reset()
        return d

    def _challengers(self, build: Builder, cfg: RetrainingConfig, st: ModelDecisions,
                     serving: WindowReport) -> list[DecisionEvent]:
        cc = cfg.champion_challenger
        champion = cc.champion or st.serving
        if st.pairs is None or champion is None:
            return []
        out = []
        for challenger in st.pairs.versions_paired_with(champion):
            key = f"{champion}|{challenger}"
            if st.cc_last.get(key) == "promote":
                continue
            data = st.pairs.samples(champion, challenger)
            verdict = judge(cc, champion, challenger, data) if data is not None else None
            if verdict is None:
                continue
            kind = "promote" if verdict.promote else "hold"
            if st.cc_last.get(key) == kind:
                continue
            st.cc_last[key] = kind
            out.append(judged_pair(build, cc, champion, challenger, verdict, serving, st.pairs))
        return out

    # -- schedules ------------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[DecisionEvent]:
        """Fire the schedules whose next slot `now` has reached (the clock is injected: no sleeping)."""
        out: list[DecisionEvent] = []
        for mid, model in self.models.items():
            cfg = self._retraining(mid)
            if cfg.schedule is None:
                continue
            st = self.state[mid]
            slot = latest_slot(cfg.schedule, now)
            last = st.schedule_last_slot
            st.schedule_last_slot = slot.timestamp()
            if last is None or slot.timestamp() <= last:
                continue
            skipped = slots_between(cfg.schedule, _ts(last), slot) - 1
            history = st.history.get(st.serving or "", deque())
            d = self._retrain(Builder(model, now), cfg, st, "schedule", slot, anchor=slot.isoformat(),
                              episode=slot.isoformat(),
                              reason=f"scheduled retrain ({cfg.schedule.expression}) for the slot "
                                     f"{slot:%Y-%m-%dT%H:%M:%SZ}" + (f"; {skipped} earlier slot(s) missed"
                                                                      if skipped > 0 else ""),
                              alert_ids=[], metrics={"skipped_slots": float(max(skipped, 0))},
                              windows=[[w.start, w.end] for w in list(history)[-1:]], reference=None,
                              schedule=(cfg.schedule.expression, slot))
            out.extend([d] if d is not None else [])
        return out

    # -- checkpoint -------------------------------------------------------------------------

    def reset(self, model_id: str) -> None:
        if model_id not in self.models:
            return
        cc = self._retraining(model_id).champion_challenger
        self.state[model_id] = ModelDecisions(pairs=ShadowPairs(cc) if cc.enabled else None)

    def snapshot(self, model_id: str) -> dict[str, Any] | None:
        st = self.state.get(model_id)
        if st is None:
            return None
        return {
            "serving": st.serving,
            "history": {v: [w.to_dict() for w in h] for v, h in st.history.items()},
            "incidents": {v: {k: i.__dict__ for k, i in inc.items()} for v, inc in st.incidents.items()},
            "triggers": {k: t.to_dict() for k, t in st.triggers.items()},
            "last_retrain_at": st.last_retrain_at, "last_retrain_id": st.last_retrain_id,
            "retrains_by_day": st.retrains_by_day, "schedule_last_slot": st.schedule_last_slot,
            "probation": st.probation.to_dict() if st.probation is not None else None,
            "rollback_target": st.rollback_target, "cc_last": st.cc_last,
            "pairs": st.pairs.to_dict() if st.pairs is not None else None,
        }

    def restore(self, model_id: str, data: dict[str, Any] | None) -> None:
        self.reset(model_id)
        if data is None or model_id not in self.state:
            return
        st = self.state[model_id]
        st.serving = data["serving"]
        st.history = {v: deque((WindowSummary.from_dict(w) for w in h), maxlen=MAX_SUMMARIES)
                      for v, h in data["history"].items()}
        st.incidents = {v: {k: OpenIncident(**i) for k, i in inc.items()} for v, inc in data["incidents"].items()}
        st.triggers = {k: TriggerState.from_dict(t) for k, t in data["triggers"].items()}
        st.last_retrain_at, st.last_retrain_id = data["last_retrain_at"], data["last_retrain_id"]
        st.retrains_by_day, st.schedule_last_slot = dict(data["retrains_by_day"]), data["schedule_last_slot"]
        st.probation = prob.Probation.from_dict(data["probation"]) if data["probation"] is not None else None
        st.rollback_target, st.cc_last = data["rollback_target"], dict(data["cc_last"])
        if st.pairs is not None and data.get("pairs") is not None:
            st.pairs.load(data["pairs"])


def _anchor(ts: TriggerState) -> str:
    """A trigger decision's anchor: the streak's first and last windows."""
    return f"{ts.windows[0][0] if ts.windows else ts.streak_start}-{ts.windows[-1][1] if ts.windows else ''}"

"""Each retraining policy of the decision engine, pure (no broker): reports and alerts built by hand, clock injected."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from decision_helpers import T0, WINDOW, comparable, config, drift_alert, fresh, report

from stream_monitor.contracts.decisions import DecisionEvent
from stream_monitor.decisions.challenger import Answer
from stream_monitor.decisions.engine import DecisionEngine
from stream_monitor.engine_types import WindowReport
from stream_monitor.errors import ConfigError

QUALITY_OK = {"violation_rate": 0.001}


def run(engine: DecisionEngine, windows: list[tuple[list[WindowReport], bool]]) -> list[tuple[int, DecisionEvent]]:
    """Feed windows (reports of one window, whether to attach a firing drift alert); (index, decision) out."""
    model = next(iter(engine.models.values()))
    out = []
    for i, (reports, alert) in enumerate(windows):
        closed = [(r, [drift_alert(r)] if alert else []) for r in reports]
        for d in engine.evaluate_closed(model, closed, reports[0].window_end + timedelta(seconds=1)):
            out.append((i, d))
    return out


def drift_cfg(**retraining: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"triggers": [{"id": "drift-top2", "on": "drift", "windows": 3, "top_k": 2}],
                            "feature_importance": {"income": 0.5, "age": 0.3, "debt": 0.1, "credit_score": 0.05},
                            "min_interval_seconds": 3600, "daily_budget": 5}
    base.update(retraining)
    return base


def drifting(i: int, feature: str = "income", psi: float = 0.4, **kw: Any) -> WindowReport:
    return report(i, psi={feature: psi}, performance=kw.pop("performance", fresh()), quality=QUALITY_OK, **kw)


# -- triggers ---------------------------------------------------------------------------------------


def test_drift_trigger_fires_only_after_the_persistence_and_only_on_top_k_features() -> None:
    engine = DecisionEngine(config(drift_cfg()))
    windows = [([drifting(0)], True), ([drifting(1)], False),
               ([drifting(2, psi=0.05)], False),  # the streak breaks here
               ([drifting(3)], False), ([drifting(4)], False), ([drifting(5)], False)]
    got = run(engine, windows)
    assert [(i, d.type) for i, d in got] == [(5, "retrain")]
    d = got[0][1]
    assert d.source == "trigger" and d.policy_id == "drift-top2" and d.versions.current == "v1"
    assert d.triggering_alerts == [drift_alert(drifting(0)).alert_id]
    assert [w.start for w in d.evidence.windows] == [T0 + k * WINDOW for k in (3, 4, 5)]
    assert d.evidence.metrics["income.psi"] == pytest.approx(0.4)
    assert d.data_window is not None and d.data_window.end == T0 + 6 * WINDOW
    assert all(g.passed for g in d.gates) and {g.gate for g in d.gates} == {
        "data", "label_coverage", "label_freshness", "quality"}
    assert d.owner == "risk-ml-team" and d.evidence.reference_version == "credit-risk-ref1"

    # `debt` is not among the two most important features: no trigger however long it drifts.
    engine = DecisionEngine(config(drift_cfg()))
    assert run(engine, [([drifting(k, feature="debt")], k == 0) for k in range(6)]) == []
    # Without a firing alert (no open incident) the numbers alone do not trigger.
    engine = DecisionEngine(config(drift_cfg()))
    assert run(engine, [([drifting(k)], False) for k in range(6)]) == []


def test_trigger_respects_the_min_interval_and_the_daily_budget() -> None:
    engine = DecisionEngine(config(drift_cfg(daily_budget=2)))
    got = run(engine, [([drifting(k)], k == 0) for k in range(40)])
    kinds = [(i, d.type, d.evidence.details.get("held_by")) for i, d in got]
    # retrain at window 2; the next streak completes at 5, held (min interval 1 h = 12 windows) once;
    # at window 14 (decided 75 min after the first) the interval has passed: retrain; then the budget of 2
    # for the day is spent: one hold for it.
    assert kinds == [(2, "retrain", None), (5, "hold", "min_interval"), (14, "retrain", None),
                     (17, "hold", "min_interval"), (26, "hold", "daily_budget")]
    hold = got[1][1]
    assert "min interval 3600s" in hold.reason and "next allowed at 2026-03-02T01:15:00Z" in hold.reason
    assert len({d.decision_id for _, d in got}) == len(got)


def test_performance_trigger_learns_its_baseline_and_fires_on_a_drop_with_enough_labels() -> None:
    trig = {"id": "acc-drop", "on": "performance", "metric": "accuracy", "max_drop": 0.05,
            "min_label_coverage": 0.5, "windows": 2, "baseline_windows": 2}
    engine = DecisionEngine(config({"triggers": [trig], "min_interval_seconds": 0}))
    accs = [0.90, 0.92, 0.89, 0.80, 0.80, 0.80]
    covs = [0.9, 0.9, 0.9, 0.9, 0.3, 0.9]  # window 4: too few labels to judge, the streak restarts
    got = run(engine, [([report(k, performance=fresh(coverage=c, accuracy=a), quality=QUALITY_OK)], False)
                       for k, (a, c) in enumerate(zip(accs, covs, strict=True))])
    assert got == [], "baseline 0.91 from windows 0-1; 3 qualifies, 4 lacks labels, 5 restarts the streak"
    got = run(engine, [([report(k, performance=fresh(accuracy=0.8), quality=QUALITY_OK)], False) for k in (6, 7)])
    assert [(i, d.type) for i, d in got] == [(0, "retrain")]
    m = got[0][1].evidence.metrics
    assert m["accuracy.baseline"] == pytest.approx(0.91) and m["worsening"] == pytest.approx(0.11)


# -- freshness gates --------------------------------------------------------------------------------


def test_stale_labels_block_a_retrain_naming_the_gate_and_fresh_labels_unblock_it() -> None:
    engine = DecisionEngine(config(drift_cfg(triggers=[{"id": "drift", "on": "drift", "windows": 1}])))
    stale = fresh(age=3 * 86_400.0)
    got = run(engine, [([drifting(0, performance=stale)], True), ([drifting(1, performance=stale)], False)])
    assert [(i, d.type) for i, d in got] == [(0, "blocked")], "one blocked per streak, not one per window"
    d = got[0][1]
    failed = [g for g in d.gates if not g.passed]
    assert [g.gate for g in failed] == ["label_freshness"]
    assert failed[0].value == pytest.approx(3 * 86_400 + 0.0) and failed[0].limit == 86_400
    assert "label" in (failed[0].unblock or "") and "blocked by label_freshness" in d.reason
    got = run(engine, [([drifting(2)], False)])
    assert [d.type for _, d in got] == ["retrain"]


def test_unknown_label_coverage_and_quality_fail_their_gates() -> None:
    engine = DecisionEngine(config(drift_cfg(triggers=[{"id": "drift", "on": "drift", "windows": 1}])))
    r = report(0, psi={"income": 0.5})  # no performance, no quality: unknown, not fresh
    d = engine.evaluate(next(iter(engine.models.values())), r, [drift_alert(r)], r.window_end)[0]
    assert d.type == "blocked"
    assert {g.gate for g in d.gates if not g.passed} == {"label_coverage", "label_freshness", "quality"}
    assert "unknown" in next(g.detail for g in d.gates if g.gate == "label_coverage")


# -- schedules --------------------------------------------------------------------------------------


def test_interval_schedule_fires_once_per_slot_on_the_injected_clock() -> None:
    engine = DecisionEngine(config({"schedule": {"every_seconds": 3600}, "min_interval_seconds": 0,
                                    "daily_budget": 100, "gates": {"max_violation_rate": None}}))
    model = next(iter(engine.models.values()))
    engine.evaluate(model, report(0, performance=fresh()), [], T0)
    fired = []
    for minutes in (1, 30, 59, 60, 61, 119, 120, 300):  # armed at 00:01; slots at 01:00, 02:00, then 05:00
        fired += [(minutes, d) for d in engine.tick(T0 + timedelta(minutes=minutes))]
    assert [(m, d.type, d.schedule_slot) for m, d in fired] == [
        (60, "retrain", T0 + timedelta(hours=1)), (120, "retrain", T0 + timedelta(hours=2)),
        (300, "retrain", T0 + timedelta(hours=5))]
    assert fired[2][1].evidence.metrics["skipped_slots"] == 2.0 and "2 earlier slot(s) missed" in fired[2][1].reason
    assert all(d.source == "schedule" and d.schedule == "every 3600s" for _, d in fired)


def test_cron_schedule_fires_at_its_minute_and_is_held_by_the_min_interval() -> None:
    engine = DecisionEngine(config({"schedule": {"cron": "0 3 * * *"}, "min_interval_seconds": 2 * 86_400,
                                    "gates": {"max_violation_rate": None, "max_label_age_seconds": None}}))
    model = next(iter(engine.models.values()))
    engine.evaluate(model, report(0, performance=fresh()), [], T0)
    engine.tick(T0 + timedelta(hours=2))  # arms
    ticks = [T0 + timedelta(hours=2, minutes=59, seconds=59), T0 + timedelta(hours=3),
             T0 + timedelta(days=1, hours=3), T0 + timedelta(days=2, hours=3, seconds=5)]
    got = [(t, d.type) for t in ticks for d in engine.tick(t)]
    assert got == [(ticks[1], "retrain"), (ticks[2], "hold"), (ticks[3], "retrain")]


# -- champion / challenger --------------------------------------------------------------------------


def cc_engine(**cc: Any) -> DecisionEngine:
    settings = {"enabled": True, "min_samples": 500, "margin": 0.0, "confidence": 0.95, "bootstrap_resamples": 1000}
    settings.update(cc)
    return DecisionEngine(config({"champion_challenger": settings}))


def feed_pairs(engine: DecisionEngine, n: int, p_champ: float, p_chal: float, seed: int,
               chal_latency: float = 20.0) -> None:
    """n requests answered by v1 (champion) and v2 (shadow, same event_id), then their labels."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    for i in range(n):
        label = "repaid"
        engine.observe_prediction("credit-risk", f"r{i}", "v1", Answer(
            class_=label if u[i] < p_champ else "default", latency_ms=20.0))
        engine.observe_prediction("credit-risk", f"r{i}", "v2", Answer(
            class_=label if u[i] < p_chal else "default", latency_ms=chal_latency))
    for i in range(n):
        engine.observe_label(f"r{i}", "repaid", model_id="credit-risk")


def judge_window(engine: DecisionEngine, i: int) -> list[DecisionEvent]:
    model = next(iter(engine.models.values()))
    return engine.evaluate_closed(model, [(report(i, "v1", n=2000), []), (report(i, "v2", n=1000), [])],
                                  T0 + (i + 1) * WINDOW)


def test_better_challenger_is_promoted_with_the_interval_in_the_evidence() -> None:
    engine = cc_engine(margin=0.01)
    feed_pairs(engine, 400, 0.80, 0.86, seed=1)
    assert judge_window(engine, 0) == [], "fewer pairs than min_samples: no verdict"
    feed_pairs(engine, 2000, 0.80, 0.86, seed=2)
    (d,) = judge_window(engine, 1)
    assert d.type == "promote" and d.versions.current == "v1" and d.versions.challenger == "v2"
    boot, t = d.evidence.uncertainty["accuracy.bootstrap"], d.evidence.uncertainty["accuracy.paired_t"]
    assert boot.n == t.n == 2400 == d.evidence.sample_sizes["pairs"]
    assert 0.01 < min(boot.ci_low, t.ci_low) < t.estimate < boot.ci_high
    assert t.estimate == pytest.approx(d.evidence.metrics["accuracy.challenger"]
                                       - d.evidence.metrics["accuracy.champion"])
    assert judge_window(engine, 2) == [], "promoted once"


@pytest.mark.parametrize(("p_chal", "latency"), [(0.80, 20.0), (0.75, 20.0), (0.86, 35.0)])
def test_equal_worse_or_slower_challenger_is_held_with_the_numbers(p_chal: float, latency: float) -> None:
    engine = cc_engine(max_latency_increase_ms=5.0)
    feed_pairs(engine, 3000, 0.80, p_chal, seed=3, chal_latency=latency)
    (d,) = judge_window(engine, 0)
    assert d.type == "hold" and d.versions.challenger == "v2"
    assert "accuracy.bootstrap" in d.evidence.uncertainty and "latency_ms.paired_t" in d.evidence.uncertainty
    if latency > 20:
        assert "latency increase" in d.reason
    else:
        assert d.evidence.uncertainty["accuracy.paired_t"].ci_low <= 0.0 and "does not exceed" in d.reason
    assert judge_window(engine, 1) == [], "a hold is published when the verdict changes, not every window"


# -- probation and rollback -------------------------------------------------------------------------


def test_a_regressing_new_version_is_rolled_back_to_the_previous_one() -> None:
    engine = DecisionEngine(config({"probation": {"windows": 3, "max_drop": 0.05, "regression_windows": 2}}))
    old = [([report(k, "v1", performance=fresh(accuracy=0.9), psi={"prediction.score": 0.02})], False)
           for k in range(4)]
    new = [([report(k, "v2", performance=fresh(accuracy=0.78), psi={"prediction.score": 0.03})], False)
           for k in range(4, 7)]
    got = run(engine, old + new)
    assert [(i, d.type) for i, d in got] == [(5, "rollback")]
    d = got[0][1]
    assert d.versions.current == "v2" and d.versions.rollback_target == "v1" and d.versions.previous == "v1"
    assert d.evidence.metrics["accuracy"] == pytest.approx(0.78)
    assert d.evidence.metrics["accuracy.previous"] == pytest.approx(0.9)
    assert "accuracy 0.7800 vs 0.9000 for v1" in d.reason and d.source == "probation"
    # The rollback happening (v1 alone again) is not a new deployment to watch.
    assert run(engine, [([report(k, "v1", performance=fresh())], False) for k in range(7, 10)]) == []


def test_a_good_new_version_passes_probation_and_a_shadow_never_starts_one() -> None:
    engine = DecisionEngine(config({"probation": {"windows": 2, "max_drift_increase": 0.1}}))
    old = [([report(k, "v1", performance=fresh(accuracy=0.9))], False) for k in range(3)]
    shadow = [([report(k, "v1", performance=fresh()), report(k, "v1-shadow", n=900)], False) for k in range(3, 5)]
    new = [([report(k, "v2", performance=fresh(accuracy=0.91))], False) for k in range(5, 8)]
    got = run(engine, old + shadow + new)
    assert [(i, d.type, d.versions.current, d.versions.previous) for i, d in got] == [(6, "hold", "v2", "v1")]
    assert "without a regression" in got[0][1].reason


def test_drift_of_the_new_version_against_the_previous_one_is_a_regression() -> None:
    engine = DecisionEngine(config({"probation": {"windows": 3, "max_drift_increase": 0.1}}))
    old = [([report(k, "v1", psi={"prediction.score": 0.02})], False) for k in range(3)]
    new = [([report(k, "v2", psi={"prediction.score": 0.3})], False) for k in range(3, 5)]
    got = run(engine, old + new)
    assert [(i, d.type) for i, d in got] == [(3, "rollback")]
    assert got[0][1].evidence.metrics["prediction.score.psi.previous"] == pytest.approx(0.02)


# -- determinism, checkpoints, config ---------------------------------------------------------------


def scenario() -> list[tuple[list[WindowReport], bool]]:
    drift = [([drifting(k)], k == 0) for k in range(20)]
    new = [([report(k, "v2", performance=fresh(accuracy=0.7), quality=QUALITY_OK)], False) for k in range(20, 24)]
    return drift + new


def test_the_same_stream_gives_the_same_decisions_once_each() -> None:
    retraining = drift_cfg(probation={"windows": 2})
    first = run(DecisionEngine(config(retraining)), scenario())
    second = run(DecisionEngine(config(retraining)), scenario())
    assert comparable([d for _, d in first]) == comparable([d for _, d in second])
    assert {d.type for _, d in first} >= {"retrain", "hold", "rollback"}
    assert len({d.decision_id for _, d in first}) == len(first)


def test_snapshot_and_restore_continue_exactly_where_the_state_was() -> None:
    retraining = drift_cfg(probation={"windows": 2}, schedule={"every_seconds": 3600})
    windows = scenario()
    whole = run(DecisionEngine(config(retraining)), windows)
    a = DecisionEngine(config(retraining))
    head = run(a, windows[:10])
    b = DecisionEngine(config(retraining))
    b.restore("credit-risk", a.snapshot("credit-risk"))
    tail = [(i + 10, d) for i, d in run(b, windows[10:])]
    assert comparable([d for _, d in head + tail]) == comparable([d for _, d in whole])


def test_config_errors_name_the_field_and_the_fix() -> None:
    with pytest.raises(ConfigError, match="exactly one of schedule.every_seconds or schedule.cron"):
        config({"schedule": {}})
    with pytest.raises(ConfigError, match="five-field cron"):
        config({"schedule": {"cron": "every day"}})
    with pytest.raises(ConfigError, match="needs max_drop"):
        config({"triggers": [{"id": "p", "on": "performance"}]})
    with pytest.raises(ConfigError, match="feature_importance"):
        config({"triggers": [{"id": "d", "on": "drift", "top_k": 3}]})
    with pytest.raises(ConfigError, match="reserved"):
        config({"triggers": [{"id": "schedule", "on": "alerts", "kinds": ["quality"]}]})
    with pytest.raises(ConfigError, match="unknown performance metric"):
        config({"probation": {"metric": "acc"}})
    assert config({}).models[0].retraining is not None
    assert config_without_retraining().models[0].retraining is None


def config_without_retraining() -> Any:
    from stream_monitor.config import config_from_dict

    return config_from_dict({"models": [{"model_id": "m", "features": [{"name": "x"}]}]})


def test_decision_state_travels_in_the_model_checkpoint() -> None:
    """state.snapshot_models carries the decision state; a restored engine holds the same (and JSON survives)."""
    from stream_monitor.engine import Engine
    from stream_monitor.state import decode_document, encode_document, restore_models, snapshot_models

    cfg = config(drift_cfg(schedule={"every_seconds": 3600}, champion_challenger={"enabled": True}))
    engine = Engine(cfg)
    model = cfg.models[0]
    run(engine.decisions, [([drifting(k)], k == 0) for k in range(4)])
    engine.decisions.tick(T0 + timedelta(minutes=30))
    engine.decisions.observe_prediction("credit-risk", "r1", "v1", Answer(score=0.2, latency_ms=None))
    engine.decisions.observe_prediction("credit-risk", "r1", "v2", Answer(score=0.3, latency_ms=12.0))
    engine.decisions.observe_label("r1", True, model_id="credit-risk")
    before = engine.decisions.snapshot("credit-risk")
    assert before is not None and before["last_retrain_id"] and before["schedule_last_slot"] is not None
    doc = decode_document(encode_document(snapshot_models(engine, ["credit-risk"])))
    fresh_engine = Engine(cfg)
    assert restore_models(fresh_engine, doc) == ["credit-risk"]
    after = fresh_engine.decisions.snapshot("credit-risk")
    assert encode_document(after) == encode_document(before)  # type: ignore[arg-type]
    assert model.retraining is not None

"""The decision layer: FDR, hysteresis, cooldown, resolve, slices, detectors, calibration."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from helpers import START, monitor_config
from scipy.stats import false_discovery_control

from stream_monitor.config import config_from_dict
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.engine import Engine
from stream_monitor.engine_types import EngineOutput
from stream_monitor.policy.calibration import calibrate_model
from stream_monitor.policy.fdr import benjamini_hochberg
from stream_monitor.policy.hysteresis import KeyState
from stream_monitor.simulate import TrafficSimulator


def sim_events(seconds: float, *, seed: int = 1, drift: tuple[float, float] | None = None,
               features: tuple[str, ...] = ("income",), rate: int = 100) -> list[PredictionEvent]:
    d_at = START + timedelta(seconds=drift[0]) if drift else None
    d_until = START + timedelta(seconds=drift[1]) if drift else None
    sim = TrafficSimulator(seed=seed, drift_at=d_at, drift_until=d_until, drift_features=features)
    return [PredictionEvent.model_validate_json(v) for _k, v, _ in sim.messages(START, int(seconds * rate), rate)]


def run(events: list[PredictionEvent], **model: object) -> EngineOutput:
    cfg = monitor_config()
    cfg["models"][0].update(model)
    eng = Engine(config_from_dict(cfg))
    out = eng.process(events)
    out.extend(eng.flush())
    return out


@pytest.mark.parametrize("seed", range(5))
def test_benjamini_hochberg_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.002, size=10)]).tolist()
    for q in (0.01, 0.05, 0.2):
        expected = (false_discovery_control(p, method="bh") <= q).tolist()
        assert benjamini_hochberg(p, q) == expected


def test_key_state_fire_after_clear_after_and_cooldown() -> None:
    ks = KeyState()
    timeline = []
    for breached in [True, True, False, True, False, False, True, True, True, True]:
        ks.observe(breached, fire_after=2, clear_after=2, cooldown=2)
        timeline.append(ks.firing)
    # fires at the 2nd breach; one clear window is not enough; two clear windows resolve; then a 2-window
    # cooldown swallows two breaching windows before it may fire again.
    assert timeline == [False, True, True, True, True, False, False, False, True, True]


def test_incident_opens_once_and_resolves_when_the_drift_ends() -> None:
    out = run(sim_events(140, drift=(40, 90)))
    firing = [a for a in out.alerts if a.status == "firing"]
    resolved = [a for a in out.alerts if a.status == "resolved"]
    assert len(firing) == 1 and len(resolved) == 1
    assert firing[0].window_start == START + timedelta(seconds=40)
    assert resolved[0].window_start == START + timedelta(seconds=90)
    assert resolved[0].incident_id == firing[0].incident_id and resolved[0].alert_id != firing[0].alert_id
    assert firing[0].findings[0].feature == "income"


def test_fire_after_delays_and_renotify_repeats() -> None:
    rules = [{"id": "psi", "metric": "psi", "thresholds": {"warning": 0.1, "critical": 0.25}, "fire_after": 2,
              "clear_after": 2}]
    out = run(sim_events(140, drift=(40, 90)), rules=rules, renotify_windows=1)
    firing = [a for a in out.alerts if a.status == "firing"]
    resolved = [a for a in out.alerts if a.status == "resolved"]
    assert [a.window_start for a in firing] == [START + timedelta(seconds=s) for s in (50, 60, 70, 80, 90)]
    assert [a.window_start for a in resolved] == [START + timedelta(seconds=100)]
    assert firing[-1].findings[0].windows_breached == 0, "still firing in the first clear window"


def test_a_replay_gives_the_same_ids_for_firing_and_resolved_events() -> None:
    events = sim_events(140, drift=(40, 90))
    first = [(a.status, a.alert_id) for a in run(events).alerts]
    cfg = monitor_config()
    eng = Engine(config_from_dict(cfg))
    again = []
    for i in range(0, len(events), 333):  # other batch boundaries, same order
        again += eng.process(events[i : i + 333]).alerts
    again += eng.flush().alerts
    assert [(a.status, a.alert_id) for a in again] == first
    assert [s for s, _ in first] == ["firing", "resolved"]


def test_slice_cap_folds_extra_values_into_other_and_locates_the_drift() -> None:
    out = run(sim_events(100, drift=(40, 100)), slices={"keys": ["region"], "max_values": 2})
    evaluated = [r for r in out.reports if r.role == "evaluated"]
    labels = {label for r in evaluated for label in r.slices}
    assert len(labels) == 3 and "region=other" in labels, labels  # two tracked values + other
    assert all(sum(s["income"].n for s in r.slices.values()) == r.features["income"].n for r in evaluated)
    alert = next(a for a in out.alerts if a.status == "firing")
    assert "income" in alert.diagnosis.evidence["by_slice"]  # type: ignore[union-attr]


def test_per_slice_rule_finds_a_shift_in_one_slice_only() -> None:
    base = sim_events(120, seed=3)
    shifted = []
    for e in base:
        if e.timestamp >= START + timedelta(seconds=60) and (e.slice or {}).get("region") == "east":
            feats = dict(e.features, income=float(e.features["income"]) + 40_000)  # type: ignore[arg-type]
            e = e.model_copy(update={"features": feats})
        shifted.append(e)
    rules = [{"id": "psi-slices", "metric": "psi", "thresholds": {"warning": 0.25}, "per_slice": True,
              "min_samples": 100}]
    out = run(shifted, rules=rules, slices={"keys": ["region"], "max_values": 4}, monitor_prediction=False)
    alert = next(a for a in out.alerts if a.status == "firing")
    assert alert.window_start == START + timedelta(seconds=60)
    slices = {f.slice for f in alert.findings if f.feature == "income"}
    assert "region=east" in slices and not slices & {"region=north", "region=south", "region=west"}


def test_online_detector_becomes_a_finding_in_its_window() -> None:
    detectors = [{"id": "adwin-income", "type": "adwin", "signal": "income", "severity": "critical",
                  "action": "escalate"}]
    out = run(sim_events(100, drift=(50, 100), features=("income",)), detectors=detectors, rules=[])
    firing = [a for a in out.alerts if a.status == "firing"]
    assert firing, "ADWIN flags the mean shift"
    assert firing[0].window_start >= START + timedelta(seconds=50)
    assert firing[0].findings[0].metric == "detections.adwin-income" and firing[0].action == "escalate"
    assert sum(r.detections.get("adwin-income", 0) for r in out.reports) >= 1


def test_detector_config_errors_name_the_field() -> None:
    cfg = monitor_config()
    cfg["models"][0]["detectors"] = [{"id": "d", "type": "adwin", "signal": "channel"}]
    with pytest.raises(Exception, match="detectors.d.signal"):
        Engine(config_from_dict(cfg))
    cfg["models"][0]["detectors"] = [{"id": "d", "type": "adwin", "signal": "income", "params": {"delt": 1}}]
    with pytest.raises(ValueError, match="unknown parameter"):
        Engine(config_from_dict(cfg))


def gaussian_events(n_features: int, seconds: float, rate: int, *, shift_at: float | None = None,
                    shift: float = 0.0, seed: int = 0) -> list[PredictionEvent]:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    x = rng.normal(size=(n, n_features))
    out = []
    for i in range(n):
        ts = START + timedelta(seconds=i / rate)
        row = x[i].copy()
        if shift_at is not None and i / rate >= shift_at:
            row[0] += shift
        out.append(PredictionEvent.model_construct(
            event_id=str(i), model_id="credit-risk", model_version="v1", timestamp=ts,
            features={f"f{j}": float(row[j]) for j in range(n_features)},
            prediction=PredictionEvent.model_fields["prediction"].annotation.model_construct(  # type: ignore[union-attr]
                score=0.5, class_=None, value=None),
            latency_ms=None, slice=None, llm=None))
    return out


def test_calibrated_rules_with_fdr_keep_stationary_false_alarms_rare_and_catch_a_small_shift() -> None:
    """20 stationary features, 120 windows of 1,000 events: at a 1% target with BH the share of windows with
    any alert stays near 1% (asserted <= 5 of 120; P(X >= 6) ~ 0.06% at the target rate), and a 0.25-std
    shift of one feature is flagged within 2 windows."""
    k = 20
    cfg = monitor_config()
    cfg["models"][0] = {"model_id": "credit-risk", "features": [{"name": f"f{j}"} for j in range(k)],
                        "monitor_prediction": False, "window": {"size_seconds": 10},
                        "rules": [{"id": "psi", "metric": "psi", "thresholds": {"warning": 0.1}, "min_samples": 100}]}
    config = config_from_dict(cfg)
    ref_engine = Engine(config)
    reference = ref_engine.build_reference("credit-risk", gaussian_events(k, 500, 100, seed=1), source="ref")
    calibrated = calibrate_model(config.models[0], reference, window_events=1000, target_rate=0.01, draws=150)
    rule = calibrated.rules[0]
    assert rule.fdr == 0.01 and rule.calibration["window_events"] == 1000  # type: ignore[index]
    cfg["models"][0]["rules"] = [rule.model_dump(mode="json")]
    cfg["models"][0]["renotify_windows"] = 1
    stationary = Engine(config_from_dict(cfg), references={"credit-risk": reference})
    out = stationary.process(gaussian_events(k, 1210, 100, seed=2))
    windows = sum(r.role == "evaluated" for r in out.reports)
    false_windows = sum(a.status == "firing" for a in out.alerts)
    assert windows >= 120 and false_windows <= 5, (windows, false_windows)

    shifted = Engine(config_from_dict(cfg), references={"credit-risk": reference})
    out = shifted.process(gaussian_events(k, 100, 100, shift_at=50, shift=0.25, seed=3))
    first = min((a.window_start for a in out.alerts if a.status == "firing"), default=None)
    assert first is not None and first <= START + timedelta(seconds=60), first
    assert any(f.feature == "f0" for a in out.alerts for f in a.findings)

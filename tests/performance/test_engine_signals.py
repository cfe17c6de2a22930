"""Latency, quality contracts, LLM change points and freshness through the engine (fake clock, no sleeps)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from helpers import FakeClock

from stream_monitor.config import config_from_dict
from stream_monitor.contracts.events import LabelEvent, PredictionEvent
from stream_monitor.engine import Engine
from stream_monitor.errors import ConfigError

START = datetime(2026, 4, 1, tzinfo=UTC)
NOW = START + timedelta(days=1)  # the engine's clock: a day after the events


def model(**extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"model_id": "m", "features": [{"name": "x", "kind": "numeric"},
                                                     {"name": "plan", "kind": "categorical"}],
                         "window": {"size_seconds": 10}, "reference": {"from_stream_windows": 1}}
    m.update(extra)
    return m


def events(rng: np.random.Generator, t0: float, seconds: float, rate: int = 100, **over: Any) -> list[PredictionEvent]:
    out = []
    for i in range(int(seconds * rate)):
        e: dict[str, Any] = {"event_id": f"e{t0}-{i}", "model_id": "m", "model_version": "v1",
                             "timestamp": (START + timedelta(seconds=t0 + i / rate)).isoformat(),
                             "features": {"x": float(rng.normal()), "plan": ["a", "b"][i % 2]},
                             "prediction": {"score": 0.3}, "latency_ms": float(rng.gamma(2.0, 10.0))}
        for k, f in over.items():
            e[k] = f(i, rng) if callable(f) else f
        out.append(PredictionEvent.model_validate(e))
    return out


def test_latency_quantiles_within_the_sketch_rank_error_and_a_latency_rule_fires() -> None:
    rule = {"id": "p99", "metric": "latency_p99_ms", "comparison": ">=", "thresholds": {"warning": 120.0},
            "min_samples": 100}
    eng = Engine(config_from_dict({"models": [model(rules=[rule])]}), clock=FakeClock(NOW))
    rng = np.random.default_rng(1)
    normal = events(rng, 0, 10)
    slow = events(rng, 10, 10, latency_ms=lambda i, r: float(r.gamma(2.0, 10.0)) * (8 if i % 10 == 0 else 1))
    out = eng.process(normal + slow + events(rng, 20, 0.1))
    assert [r.window_start for r in out.reports] == [START, START + timedelta(seconds=10)]
    for report, evs in zip(out.reports, (normal, slow), strict=True):
        lat = np.sort([e.latency_ms for e in evs])
        for q in (0.5, 0.95, 0.99):
            got = report.operations[f"latency_p{round(q * 100)}_ms"]
            rank = np.searchsorted(lat, got, side="right") / lat.size
            assert abs(rank - q) <= 0.0068 + 1 / lat.size  # KLL k=400 rank error, plus one step of the ECDF
        assert report.operations["latency_mean_ms"] == pytest.approx(lat.mean(), rel=1e-12)
    lat_alerts = [a for a in out.alerts if a.kind == "latency"]
    assert [a.window_start for a in lat_alerts] == [START + timedelta(seconds=10)]
    assert lat_alerts[0].metric == "latency_p99_ms" and lat_alerts[0].value >= 120


def test_a_contract_violation_burst_raises_a_quality_alert_naming_the_feature() -> None:
    quality = {"features": {"x": {"min": -5, "max": 5}, "plan": {"allowed": ["a", "b"], "max_missing_rate": 0.01}}}
    eng = Engine(config_from_dict({"models": [model(quality=quality)]}), clock=FakeClock(NOW))
    rng = np.random.default_rng(2)
    burst = events(rng, 10, 10, features=lambda i, r: {"x": 1000.0 if i < 80 else float(r.normal()), "plan": "a"})
    out = eng.process(events(rng, 0, 10) + burst + events(rng, 20, 10) + events(rng, 30, 0.1))
    reports = {r.window_start: r for r in out.reports}
    bad = reports[START + timedelta(seconds=10)].quality
    assert bad["violation_rate.x"] == pytest.approx(80 / 1000) and bad["violation_rate.plan"] == 0.0
    assert bad["violation_rate"] == pytest.approx(80 / 2000)
    assert reports[START].quality["violation_rate"] == 0.0
    q = [a for a in out.alerts if a.kind == "quality"]
    assert [(a.status, a.feature, a.window_start) for a in q] == [
        ("firing", "x", START + timedelta(seconds=10)), ("resolved", "x", START + timedelta(seconds=20))]
    assert q[0].severity == "critical" and q[0].rule_id == "quality.violations"
    assert not [a for a in out.alerts if a.kind == "feature_drift" and a.window_start == START]


def test_contracts_inferred_from_the_reference_flag_new_categories() -> None:
    eng = Engine(config_from_dict({"models": [model(quality={"infer_from_reference": True})]}), clock=FakeClock(NOW))
    rng = np.random.default_rng(3)
    new_plan = events(rng, 10, 10, features=lambda i, r: {"x": float(r.normal()), "plan": "zzz" if i % 4 == 0
                                                          else "a"})
    first = eng.process(events(rng, 0, 10) + new_plan[:1])  # closes the reference window: contracts exist from here
    assert first.reports[0].role == "reference" and first.reports[0].quality == {}
    out = eng.process(new_plan[1:] + events(rng, 20, 0.1))
    report = out.reports[0]
    assert report.window_start == START + timedelta(seconds=10) and report.quality["rows.plan"] == 999
    assert report.quality["violation_rate.plan"] == pytest.approx(249 / 999)
    assert report.quality["violation_rate.x"] < 0.01


def test_unknown_contract_feature_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"models\.m\.quality\.features: nope"):
        Engine(config_from_dict({"models": [model(quality={"features": {"nope": {"min": 0}}})]}))


def llm(prompt: str, mean_out: float) -> Any:
    return lambda i, r: {"prompt_version": prompt, "index_version": "idx-1", "tokens_in": int(r.poisson(400)),
                         "tokens_out": int(r.poisson(mean_out)), "cost_usd": 0.001,
                         "guardrail_action": "block" if i % 20 == 0 else "allow"}


def test_a_prompt_version_change_with_shifted_tokens_is_reported_as_a_change_point() -> None:
    eng = Engine(config_from_dict({"models": [model()]}), clock=FakeClock(NOW))
    rng = np.random.default_rng(4)
    out = eng.process(events(rng, 0, 10, llm=llm("p-1", 100)) + events(rng, 10, 10, llm=llm("p-1", 100))
                      + events(rng, 20, 10, llm=llm("p-2", 180)) + events(rng, 30, 10, llm=llm("p-2", 180))
                      + events(rng, 40, 0.1, llm=llm("p-2", 180)))
    reports = {r.window_start: r for r in out.reports}
    changed = reports[START + timedelta(seconds=20)]
    assert [(c["field"], c["from"], c["to"]) for c in changed.change_points] == [
        ("llm.prompt_version", ["p-1|idx-1"], ["p-2|idx-1"])]
    assert changed.operations["change.tokens_out_ks"] > 0.9 and changed.operations["tokens_out_mean"] > 170
    assert changed.operations["refusal_rate"] == pytest.approx(0.05)
    assert changed.operations["cost_per_request_usd"] == pytest.approx(0.001)
    assert all(not r.change_points for w, r in reports.items() if w != START + timedelta(seconds=20))
    cost = [a for a in out.alerts if a.kind == "cost"]
    assert [a.window_start for a in cost] == [START + timedelta(seconds=20)]
    assert cost[0].diagnosis is not None and cost[0].diagnosis.cause == "upstream_change"
    assert "p-1|idx-1 -> p-2|idx-1" in cost[0].diagnosis.summary
    # Drift of the token distribution against the LLM baseline (the first window with LLM traffic).
    assert reports[START + timedelta(seconds=10)].operations["tokens_out_ks"] < 0.1
    assert reports[START + timedelta(seconds=30)].operations["tokens_out_ks"] > 0.9


def test_a_version_change_without_a_shift_is_a_change_point_but_no_alert() -> None:
    eng = Engine(config_from_dict({"models": [model()]}), clock=FakeClock(NOW))
    rng = np.random.default_rng(5)
    out = eng.process(events(rng, 0, 10, llm=llm("p-1", 100)) + events(rng, 10, 10, llm=llm("p-2", 100))
                      + events(rng, 20, 0.1, llm=llm("p-2", 100)))
    assert out.reports[1].change_points and out.reports[1].operations["change.tokens_out_ks"] < 0.1
    assert not [a for a in out.alerts if a.kind == "cost"]


def test_a_silent_stream_raises_one_freshness_alert_within_one_tick_and_resolves() -> None:
    clock = FakeClock(NOW)
    eng = Engine(config_from_dict({"models": [model(freshness={"max_silence_seconds": 30,
                                                                "labels_max_silence_seconds": 60})]}), clock=clock)
    rng = np.random.default_rng(6)
    eng.process(events(rng, 0, 1))
    clock.now += timedelta(seconds=29)
    assert eng.tick().alerts == []
    clock.now += timedelta(seconds=2)
    fired = eng.tick().alerts
    assert [(a.kind, a.feature, a.status) for a in fired] == [("freshness", "predictions", "firing")]
    assert fired[0].value == pytest.approx(31) and fired[0].threshold == 30 and fired[0].model_version == "v1"
    clock.now += timedelta(seconds=5)
    assert eng.tick().alerts == [], "one alert per silence"
    clock.now += timedelta(seconds=30)  # 66 s since start: labels never seen
    labels = eng.tick().alerts
    assert [(a.feature, a.status, a.evidence["never_seen"]) for a in labels] == [("labels", "firing", True)]
    eng.process(events(rng, 1, 1))
    eng.process_labels([LabelEvent(event_id="e0-0", model_id="m", label=1, timestamp=START)])
    resolved = eng.tick().alerts
    assert sorted((a.feature, a.status) for a in resolved) == [("labels", "resolved"), ("predictions", "resolved")]
    assert {a.incident_id for a in resolved} == {fired[0].incident_id, labels[0].incident_id}
    gauges = {(m, s): (silence, age) for m, s, silence, age, _ in eng.freshness.gauges(clock.now)}
    assert gauges[("m", "predictions")][0] == 0.0

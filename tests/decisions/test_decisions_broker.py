"""Each retraining policy end to end on a real Kafka-protocol broker: events and labels in, decisions out.

The service runs in a thread on its own topics; decisions are read back from the
decisions topic. Schedules run on an injected clock that the test moves (no sleeping);
every wait is a poll with a deadline.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from decision_helpers import comparable
from helpers import wait_for
from prometheus_client import CollectorRegistry

from stream_monitor.cli import main
from stream_monitor.config import config_from_dict
from stream_monitor.contracts.decisions import DecisionEvent
from stream_monitor.service import MonitorService
from stream_monitor.sinks.decisions import read_audit_log
from stream_monitor.testing import consume_all, produce_all, unique_name

T0 = datetime(2026, 3, 2, tzinfo=UTC)
W = 10  # window seconds
NO_LABEL_GATES = {"min_label_coverage": None, "max_label_age_seconds": None, "max_violation_rate": None}

Message = tuple[bytes, bytes]


class ManualClock:
    """The service clock, moved by the test; counts its readings so a test can wait for ticks to happen."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.now

    def advance_to(self, when: datetime, ticks: int = 3, timeout: float = 20.0) -> None:
        """Set the time, then wait until the service has read the clock `ticks` more times (it ticks every poll)."""
        self.now = when
        seen = self.calls
        wait_for(lambda: self.calls >= seen + ticks, timeout, f"{ticks} ticks after {when}")



def events(model: str, version: str, window: int, n: int = 200, x: float = 0.0, score: float = 0.3,
           classes: list[str] | None = None, seed: int = 0) -> list[Message]:
    """n prediction events spread over window `window` (event ids shared across versions of a request)."""
    rng = np.random.default_rng(seed * 10_000 + window)
    out = []
    for i in range(n):
        ev: dict[str, Any] = {
            "event_id": f"{model}-{window}-{i}", "model_id": model, "model_version": version,
            "timestamp": (T0 + timedelta(seconds=window * W + i * W / n)).isoformat(),
            "features": {"x": float(rng.normal(x, 1.0))},
            "prediction": {"score": float(np.clip(rng.normal(score, 0.1), 0, 1))}, "latency_ms": 20.0}
        if classes is not None:
            ev["prediction"]["class"] = classes[i]
        out.append((model.encode(), orjson.dumps(ev)))
    return out


def labels(model: str, window: int, values: list[str], delay: float = 1.0) -> list[Message]:
    n = len(values)
    return [(model.encode(), orjson.dumps({
        "event_id": f"{model}-{window}-{i}", "model_id": model, "label": v,
        "timestamp": (T0 + timedelta(seconds=window * W + i * W / n + delay)).isoformat()}))
        for i, v in enumerate(values)]


def model_cfg(model_id: str, retraining: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model_id": model_id, "owner": "risk-ml-team", "features": [{"name": "x"}],
            "window": {"size_seconds": W}, "reference": {"from_stream_windows": 2},
            "rules": [{"id": "psi", "metric": "psi", "thresholds": {"warning": 0.1, "critical": 0.25},
                       "min_samples": 50}],
            "retraining": retraining, **extra}


@pytest.fixture
def topics(topic_factory: Callable[..., str]) -> dict[str, str]:
    return {"predictions": topic_factory("preds"), "labels": topic_factory("labels"),
            "alerts": topic_factory("alerts"), "dead_letter": topic_factory("dlq"),
            "decisions": topic_factory("decisions")}


def settings(bootstrap: str, topics: dict[str, str], models: list[dict[str, Any]], **service: Any) -> dict[str, Any]:
    kafka = {"bootstrap_servers": bootstrap, "group_id": unique_name("monitor"),
             "settings": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "max.poll.interval.ms": 20000}}
    return {"kafka": kafka, "topics": topics,
            "service": {"metrics_host": "127.0.0.1", "metrics_port": 0, "poll_timeout_seconds": 0.1,
                        "commit_interval_seconds": 0.2, "lag_refresh_seconds": 0.5, **service},
            "checkpoint": {"backend": "none"}, "models": models}


@contextmanager
def running(cfg: dict[str, Any], clock: Callable[[], datetime] | None = None) -> Iterator[MonitorService]:
    service = MonitorService(config_from_dict(cfg), registry=CollectorRegistry(), clock=clock)
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
    runner.start()
    try:
        yield service
    finally:
        stop.set()
        runner.join(30)
        assert not runner.is_alive()


def decisions_on(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[DecisionEvent]:
    msgs = consume_all(bootstrap, topic, expected=expected, timeout=timeout)
    out = [DecisionEvent.model_validate_json(m.value()) for m in msgs]
    assert all(m.key().decode() == d.decision_id for m, d in zip(msgs, out, strict=True))
    return out


def summaries(service: MonitorService, model: str, version: str) -> list[Any]:
    return list(service.engine.decisions.state[model].history.get(version, []))


# -- trigger: persistence, min interval, and replay determinism ---------------------------------------


def drift_stream() -> list[Message]:
    """Windows 0-1 reference, 2-3 calm, 4-12 drifted (x shifted by 1.5 sd), then 5 events to close them."""
    msgs: list[Message] = []
    for w in range(13):
        msgs += events("credit-risk", "v1", w, x=1.5 if w >= 4 else 0.0, seed=1)
    return msgs + events("credit-risk", "v1", 14, n=5, seed=1)


def test_trigger_fires_after_its_persistence_respects_the_min_interval_and_replays_identically(
        kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    retraining = {"triggers": [{"id": "x-drift", "on": "drift", "windows": 3, "features": ["x"]}],
                  "min_interval_seconds": 40, "daily_budget": 10, "gates": NO_LABEL_GATES}
    cfg = settings(kafka_bootstrap, topics, [model_cfg("credit-risk", retraining)],
                   audit_log=str(tmp_path / "audit.jsonl"))
    stream = drift_stream()
    produce_all(kafka_bootstrap, topics["predictions"], stream)
    with running(cfg) as service:
        got = decisions_on(kafka_bootstrap, topics["decisions"], expected=3)
        wait_for(lambda: len(service.pipeline.totals.reports) >= 13, 30, "13 closed windows")
        counted = {t: service.registry.get_sample_value("stream_monitor_decisions_total",
                                                        {"model_id": "credit-risk", "type": t})
                   for t in ("retrain", "hold")}
    # Drift from window 4: 3 windows of persistence -> retrain at the end of window 6 (T0+70s); the next
    # streak completes at window 9 (T0+100s), 30s later: held by the 40s min interval, once; at window 10
    # (T0+110s) the interval has passed: retrain.
    assert [(d.type, d.decided_at - T0) for d in got] == [
        ("retrain", timedelta(seconds=70)), ("hold", timedelta(seconds=100)), ("retrain", timedelta(seconds=110))]
    first = got[0]
    assert [w.start - T0 for w in first.evidence.windows] == [timedelta(seconds=s) for s in (40, 50, 60)]
    assert first.triggering_alerts and first.evidence.metrics["x.psi"] > 0.25
    assert got[1].evidence.details["held_by"] == "min_interval" and "min interval 40s" in got[1].reason
    assert counted == {"retrain": 2.0, "hold": 1.0}
    audit = list(read_audit_log(tmp_path / "audit.jsonl"))
    assert comparable(audit) == comparable(got), "the audit log holds the same decisions"

    # Replaying the same stream (twice) gives the same decisions, once each.
    config_path, input_path = tmp_path / "monitor.yaml", tmp_path / "events.jsonl"
    config_path.write_text(yaml.safe_dump(settings("unused:9092", topics, [model_cfg("credit-risk", retraining)])))
    input_path.write_bytes(b"".join(v + b"\n" for _, v in stream))
    for run in ("a", "b"):
        out = tmp_path / f"decisions-{run}.jsonl"
        assert main(["replay", "-c", str(config_path), "--input", str(input_path), "--decisions-out", str(out)]) == 0
        assert comparable(list(read_audit_log(out))) == comparable(got)
    assert len({d.decision_id for d in got}) == len(got) == len(consume_all(kafka_bootstrap, topics["decisions"]))

    # `stream-monitor decisions` lists them from the topic.
    live_config = tmp_path / "live.yaml"
    live_config.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert main(["decisions", "-c", str(live_config)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["decided_at", "model", "type", "policy", "versions", "reason", "id"]
    assert [r.split()[3] for r in rows[2:]] == ["retrain", "hold", "retrain"]
    assert all(r.split()[4] == "trigger/x-drift" for r in rows[2:])


# -- schedule on the injected clock ----------------------------------------------------------------


def test_schedule_fires_at_its_slots_on_the_injected_clock(kafka_bootstrap: str, topics: dict[str, str]) -> None:
    retraining = {"schedule": {"every_seconds": 3600}, "min_interval_seconds": 0, "daily_budget": 24,
                  "gates": NO_LABEL_GATES}
    cfg = settings(kafka_bootstrap, topics, [model_cfg("credit-risk", retraining)])
    produce_all(kafka_bootstrap, topics["predictions"],
                [m for w in range(3) for m in events("credit-risk", "v1", w)] + events("credit-risk", "v1", 4, n=5))
    clock = ManualClock(T0 + timedelta(minutes=10))
    with running(cfg, clock) as service:
        state = service.engine.decisions.state["credit-risk"]
        wait_for(lambda: len(state.history.get("v1", [])) >= 3 and state.schedule_last_slot is not None, 30,
                 "windows closed and the schedule armed")
        clock.advance_to(T0 + timedelta(minutes=59, seconds=59))
        assert service.pipeline.totals.decisions == [], "no slot reached yet"
        clock.advance_to(T0 + timedelta(hours=1))
        first = decisions_on(kafka_bootstrap, topics["decisions"], expected=1)
        clock.advance_to(T0 + timedelta(hours=1, minutes=30))
        clock.advance_to(T0 + timedelta(hours=3, minutes=30))
        got = decisions_on(kafka_bootstrap, topics["decisions"], expected=2)
    assert [(d.type, d.schedule_slot) for d in got] == [("retrain", T0 + timedelta(hours=1)),
                                                       ("retrain", T0 + timedelta(hours=3))]
    assert first[0].decision_id == got[0].decision_id and got[0].source == "schedule"
    assert got[1].evidence.metrics["skipped_slots"] == 1.0
    assert got[0].data_window is not None and got[0].data_window.end == T0 + timedelta(seconds=3 * W)


# -- freshness gate on a real label stream -----------------------------------------------------------


def test_stale_label_stream_blocks_the_retrain_and_names_the_gate(kafka_bootstrap: str,
                                                                   topics: dict[str, str]) -> None:
    retraining = {"schedule": {"every_seconds": 3600}, "min_interval_seconds": 0,
                  "gates": {"min_label_coverage": 0.5, "max_label_age_seconds": 86_400, "max_violation_rate": None}}
    model = model_cfg("credit-risk", retraining, performance={"min_label_coverage": 0.5})
    cfg = settings(kafka_bootstrap, topics, [model])
    rng = np.random.default_rng(4)
    truth = {w: [str(int(v)) for v in rng.random(200) < 0.5] for w in range(3)}
    clock = ManualClock(T0 + timedelta(days=3, minutes=10))  # the labels (stamped ~T0) are three days old
    with running(cfg, clock) as service:
        produce_all(kafka_bootstrap, topics["predictions"],
                    [m for w in range(3) for m in events("credit-risk", "v1", w, classes=truth[w])]
                    + events("credit-risk", "v1", 4, n=5))
        wait_for(lambda: len(summaries(service, "credit-risk", "v1")) >= 3, 30, "three closed windows")
        produce_all(kafka_bootstrap, topics["labels"],
                    [m for w in range(3) for m in labels("credit-risk", w, truth[w])])
        wait_for(lambda: all(s.performance.get("label_coverage", 0) > 0.9
                             for s in summaries(service, "credit-risk", "v1")), 30, "labels joined")
        clock.advance_to(T0 + timedelta(days=3, hours=1))
        (d,) = decisions_on(kafka_bootstrap, topics["decisions"], expected=1)
    assert d.type == "blocked" and d.source == "schedule"
    failed = [g for g in d.gates if not g.passed]
    assert [g.gate for g in failed] == ["label_freshness"], d.gates
    assert failed[0].value is not None and failed[0].value > 3 * 86_400 - 120 and failed[0].limit == 86_400
    assert failed[0].unblock and "label" in failed[0].unblock
    coverage = next(g for g in d.gates if g.gate == "label_coverage")
    assert coverage.passed and coverage.value is not None and coverage.value > 0.9
    assert "blocked by label_freshness" in d.reason


# -- champion / challenger with joined labels ----------------------------------------------------------


def test_better_challenger_is_promoted_and_an_equal_one_held(kafka_bootstrap: str, topics: dict[str, str]) -> None:
    cc = {"enabled": True, "min_samples": 700, "margin": 0.0, "confidence": 0.95, "bootstrap_resamples": 1000}
    models = [model_cfg(mid, {"champion_challenger": cc, "probation": {"enabled": False}})
              for mid in ("m-better", "m-equal")]
    cfg = settings(kafka_bootstrap, topics, models)
    rng = np.random.default_rng(9)
    msgs: list[Message] = []
    truth: dict[tuple[str, int], list[str]] = {}
    for mid, p_chal in (("m-better", 0.90), ("m-equal", 0.75)):
        for w in range(4):
            y = [str(int(v)) for v in rng.random(200) < 0.5]
            u = rng.random(200)
            # The better challenger is right wherever the champion is, and more often; the equal one is
            # right as often, on other requests.
            v = u if mid == "m-better" else rng.random(200)
            flip = {"0": "1", "1": "0"}
            champion = [t if ui < 0.75 else flip[t] for t, ui in zip(y, u, strict=True)]
            challenger = [t if vi < p_chal else flip[t] for t, vi in zip(y, v, strict=True)]
            msgs += events(mid, "v1", w, classes=champion, seed=w) + events(mid, "v2", w, classes=challenger, seed=w)
            truth[(mid, w)] = y
    with running(cfg) as service:
        produce_all(kafka_bootstrap, topics["predictions"], msgs)
        wait_for(lambda: all(len(summaries(service, m, "v1")) >= 3 for m in ("m-better", "m-equal")), 30,
                 "windows 0-2 closed")
        produce_all(kafka_bootstrap, topics["labels"], [m for (mid, w), y in truth.items() for m in labels(mid, w, y)])
        pairs = service.engine.decisions.state

        def complete() -> bool:
            return all(len(pairs[m].pairs.pairs.get(("v1", "v2"), [])) == 800 for m in ("m-better", "m-equal"))

        wait_for(complete, 30, "800 labelled pairs per model")
        produce_all(kafka_bootstrap, topics["predictions"], events("m-better", "v1", 6, n=5) + events(
            "m-equal", "v1", 6, n=5))
        got = {d.model_id: d for d in decisions_on(kafka_bootstrap, topics["decisions"], expected=2)}
    better, equal = got["m-better"], got["m-equal"]
    assert better.type == "promote" and (better.versions.current, better.versions.challenger) == ("v1", "v2")
    assert equal.type == "hold" and "does not exceed the margin" in equal.reason
    for d in (better, equal):
        t, boot = d.evidence.uncertainty["accuracy.paired_t"], d.evidence.uncertainty["accuracy.bootstrap"]
        assert t.n == boot.n == 800 == d.evidence.sample_sizes["pairs"] and t.confidence == 0.95
        assert t.ci_low < t.estimate < t.ci_high and boot.ci_low < boot.ci_high
        assert "latency_ms.paired_t" in d.evidence.uncertainty
    assert better.evidence.uncertainty["accuracy.paired_t"].ci_low > 0.1
    assert equal.evidence.uncertainty["accuracy.paired_t"].ci_low < 0 < equal.evidence.uncertainty[
        "accuracy.paired_t"].ci_high


# -- probation and rollback ----------------------------------------------------------------------------


def test_regressing_new_version_is_rolled_back_to_the_previous_version(kafka_bootstrap: str,
                                                                        topics: dict[str, str]) -> None:
    retraining = {"probation": {"windows": 3, "max_drift_increase": 0.2, "regression_windows": 1}}
    cfg = settings(kafka_bootstrap, topics, [model_cfg("credit-risk", retraining)])
    msgs = [m for w in range(4) for m in events("credit-risk", "v1", w, score=0.3)]
    msgs += [m for w in range(4, 7) for m in events("credit-risk", "v2", w, score=0.6)]  # outputs shifted
    msgs += events("credit-risk", "v2", 8, n=5, score=0.6)
    produce_all(kafka_bootstrap, topics["predictions"], msgs)
    with running(cfg):
        (d,) = decisions_on(kafka_bootstrap, topics["decisions"], expected=1)
    assert d.type == "rollback" and d.source == "probation"
    assert (d.versions.current, d.versions.rollback_target) == ("v2", "v1")
    assert d.decided_at == T0 + timedelta(seconds=5 * W), "the new version's first window regresses"
    assert d.evidence.metrics["prediction.score.psi"] > 1.0 > d.evidence.metrics["prediction.score.psi.previous"]
    assert len(d.evidence.details["baseline_windows"]) == 3, "v1's last 3 windows (baseline_windows default)"

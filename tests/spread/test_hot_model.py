"""A hot model spread over 3 partitions, two `stream-monitor run` processes in one group, on the real broker.

The hot model's events go round-robin to every partition of the input topic; a cold
model stays keyed to partition 0. Whichever instance owns the partials partition merges
the hot model. The published windows and alerts must equal the single-owner oracle,
including the drift alert on the shifted features; and with the merger SIGKILLed
mid-stream and restarted, no window is lost and no alert id outside the oracle's appears.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faults.harness import (
    GradualProducer,
    ServiceProcess,
    Topics,
    committed_total,
    make_topics,
    read_json,
    read_windows,
    service_config,
    wait_until,
)
from faults.oracle import compare_alerts, compare_windows, run_oracle
from spread.scenario import DRIFTED, HOT, HotScenario

from stream_monitor.config import config_from_dict
from stream_monitor.testing import consume_all, unique_name


def _config(bootstrap: str, topics: Topics, models: list[dict[str, Any]], group: str, instance: str,
            partials: str) -> dict[str, Any]:
    cfg = service_config(bootstrap, topics, models, group=group, instance=instance)
    cfg["topics"]["partials"] = partials
    return cfg


def _assignment(proc: ServiceProcess) -> str | None:
    """The partitions the process holds now: its last assigned line, unless revoked or lost since."""
    last = None
    for line in proc.log_tail(1_000_000).splitlines():
        if "stream_monitor.sources.kafka: " in line and any(w in line for w in (" assigned ", " revoked ", " lost ")):
            last = line
    return last.split(" assigned ", 1)[1] if last is not None and " assigned " in last else None


def _merger(procs: dict[str, ServiceProcess], partials: str) -> str | None:
    owners = [n for n, p in procs.items() if f"{partials}[0]" in (_assignment(p) or "")]
    return owners[0] if len(owners) == 1 else None


def _hot_windows(bootstrap: str, topic: str, at_least: int) -> bool:
    msgs = consume_all(bootstrap, topic, timeout=5,
                       predicate=lambda ms: sum(1 for m in ms if m.headers() and
                                                (("sm.model_id", HOT.encode()) in m.headers())) >= at_least)
    return sum(1 for m in msgs if ("sm.model_id", HOT.encode()) in (m.headers() or [])) >= at_least


def _run(bootstrap: str, topic_factory: Any, workdir: Path, *, kill_merger: bool) -> None:
    scenario = HotScenario(events=6000)
    refs = scenario.references(workdir)
    models = scenario.models(refs)
    topics = make_topics(topic_factory, scenario.partitions)
    partials = unique_name("partials")
    group = unique_name("hot")
    configs = {n: _config(bootstrap, topics, models, group, n, partials) for n in ("a", "b")}
    parts = scenario.spread_partitions()
    total = sum(len(p) for p in parts)
    oracle_windows, oracle_alerts = run_oracle(config_from_dict(configs["a"]), scenario.oracle_partitions())
    assert any(w["model_id"] == HOT for w in oracle_windows.values())

    producer = GradualProducer(bootstrap, topics.predictions, parts, 24 if kill_merger else 12)
    procs = {n: ServiceProcess(configs[n], workdir, n).start() for n in ("a", "b")}
    producer.start()
    try:
        merger = wait_until(lambda: _merger(procs, partials) if all(_assignment(p) for p in procs.values())
                            else None, 60, "two instances sharing the partitions, one merging the hot model")
        if kill_merger:
            wait_until(lambda: _hot_windows(bootstrap, topics.windows, 5), 60, "the merger's first windows")
            procs[merger].kill()  # SIGKILL: no revoke, no final checkpoint
            procs[f"{merger}2"] = ServiceProcess(configs[merger], workdir, f"{merger}-restarted").start()
        producer.join(60)
        assert producer.error is None, producer.error
        wait_until(lambda: committed_total(bootstrap, group, topics.predictions, scenario.partitions) >= total,
                   90, "all input offsets committed")
        published = read_windows(bootstrap, topics.windows, set(oracle_windows), timeout=60)
    finally:
        codes = {n: p.stop() for n, p in procs.items() if not (kill_merger and n == merger)}
    assert set(codes.values()) == {0}, {n: procs[n].log_tail() for n in codes}

    windows = compare_windows(published, oracle_windows)
    assert windows["problems"] == [], windows["problems"][:20]
    assert windows["missing"] == 0 and windows["windows"] == len(oracle_windows)
    alerts = read_json(bootstrap, topics.alerts)
    compared = compare_alerts(alerts, oracle_alerts)
    assert compared["problems"] == [], compared["problems"][:20]
    hot = [a for a in alerts if a["model_id"] == HOT and a["status"] == "firing"]
    assert hot and {f["feature"] for a in hot for f in a["findings"]} & DRIFTED, "drift alert on a shifted feature"
    logs = "".join(p.log_tail(1_000_000) for p in procs.values())
    assert "another configuration" not in logs and "Traceback" not in logs
    if kill_merger:  # the next merger took the merge state (and the hot model's policy state) back
        assert f"{partials}[0]: restored 1 model(s) from checkpoint" in logs


@pytest.mark.timeout(120)
def test_spread_hot_model_over_two_instances_equals_the_single_owner_oracle(kafka_bootstrap, topic_factory,
                                                                           tmp_path) -> None:
    _run(kafka_bootstrap, topic_factory, tmp_path, kill_merger=False)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigkilled_merger_restarts_without_losing_a_window_or_changing_an_alert_id(kafka_bootstrap, topic_factory,
                                                                                  tmp_path) -> None:
    _run(kafka_bootstrap, topic_factory, tmp_path, kill_merger=True)

"""Scale-out: instances join, leave cleanly and crash mid-stream in one group; every window equals the oracle.

One instance starts; a second and a third join (partitions and their checkpointed
model state move to them); the second stops with SIGTERM (revoke: checkpoint, commit,
release), the third is SIGKILLed (its partitions are lost and restored elsewhere from
the last checkpoint), and a fourth joins. Both the eager protocol (librdkafka's
default) and cooperative-sticky (only moved partitions are revoked) are exercised.
"""
from __future__ import annotations

import pytest
from faults.harness import (
    GradualProducer,
    Scenario,
    ServiceProcess,
    committed_total,
    make_topics,
    read_json,
    read_windows,
    service_config,
    wait_until,
)
from faults.oracle import compare_alerts, compare_windows, run_oracle

from stream_monitor.config import config_from_dict
from stream_monitor.testing import unique_name


def _joined(proc: ServiceProcess) -> bool:
    return any(line.split("assigned ", 1)[-1].strip() for line in proc.log_tail(200_000).splitlines()
               if "stream_monitor.sources.kafka: assigned" in line)


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("cooperative", [False, True], ids=["eager", "cooperative-sticky"])
def test_instances_joining_leaving_and_crashing_keep_every_window_equal_to_the_oracle(
        kafka_bootstrap, topic_factory, tmp_path, cooperative):
    scenario = Scenario(models=6, partitions=6, events_per_model=3000)
    refs = scenario.references(tmp_path)
    models = [scenario.model_config(m, refs[m]) for m in scenario.model_ids()]
    topics = make_topics(topic_factory, scenario.partitions)
    group = unique_name("scale")
    configs = {name: service_config(kafka_bootstrap, topics, models, group=group, instance=name,
                                    cooperative=cooperative) for name in "abcd"}
    parts = scenario.messages()
    total = sum(len(p) for p in parts)
    oracle_windows, oracle_alerts = run_oracle(config_from_dict(configs["a"]), parts)

    producer = GradualProducer(kafka_bootstrap, topics.predictions, parts, 40)
    producer.start()
    procs: dict[str, ServiceProcess] = {}
    try:
        for name in "abc":  # one, then two, then three instances
            procs[name] = ServiceProcess(configs[name], tmp_path, name).start()
            wait_until(lambda p=procs[name]: _joined(p), 90, f"instance {name} owning partitions")  # type: ignore[misc]
        assert procs["b"].stop() == 0, procs["b"].log_tail()  # clean leave: checkpoint on revoke
        wait_until(lambda: committed_total(kafka_bootstrap, group, topics.predictions, scenario.partitions)
                   > total // 3, 90, "progress after the clean leave")
        procs["c"].kill()  # crash: its partitions come back from their last checkpoints
        procs["d"] = ServiceProcess(configs["d"], tmp_path, "d").start()
        wait_until(lambda: _joined(procs["d"]), 90, "instance d owning partitions")
        producer.join(120)
        assert producer.error is None, producer.error
        wait_until(lambda: committed_total(kafka_bootstrap, group, topics.predictions, scenario.partitions)
                   >= total, 120, "all offsets committed")
        published = read_windows(kafka_bootstrap, topics.windows, set(oracle_windows), timeout=60)
    finally:
        codes = {name: p.stop() for name, p in procs.items() if name not in "bc"}
    assert codes == {"a": 0, "d": 0}, {n: procs[n].log_tail() for n in codes}

    windows = compare_windows(published, oracle_windows)
    assert windows["problems"] == [], windows["problems"][:20]
    alerts = compare_alerts(read_json(kafka_bootstrap, topics.alerts), oracle_alerts)
    assert alerts["problems"] == [], alerts["problems"][:20]
    logs = "".join(p.log_tail(1_000_000) for p in procs.values())
    assert "revoked" in logs and "from checkpoint at offset" in logs

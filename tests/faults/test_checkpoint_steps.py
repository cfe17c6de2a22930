"""A crash at each step of a checkpoint cycle: recovery gives the oracle's windows and the oracle's state.

The steps (stream_monitor/checkpoint/faults.py): before the state write, after the
state write but before the offset commit (the snapshot is then newer than the
committed offset), and after the commit. The process kills itself with SIGKILL at
the third checkpoint reaching that step, is restarted without the fault, and runs to
the end of the input; then its final checkpoints must equal the state of a fault-free
engine over the same input (exact parts: watermark, panes' counts and histograms,
window bookkeeping, reference, policy), and its windows the oracle's windows.
"""
from __future__ import annotations

import signal

import pytest
from faults.harness import (
    GradualProducer,
    Scenario,
    ServiceProcess,
    committed_total,
    make_topics,
    read_windows,
    service_config,
    wait_until,
)
from faults.oracle import compare_windows, run_oracle, state_digest

from stream_monitor import state
from stream_monitor.checkpoint.store import KafkaCheckpointStore
from stream_monitor.config import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.testing import unique_name


@pytest.mark.slow
@pytest.mark.parametrize(("step", "delivery"), [
    ("before_state_write", "at_least_once"),
    ("after_state_write", "at_least_once"),
    ("after_commit", "at_least_once"),
    ("after_state_write", "exactly_once"),
])
def test_crash_at_a_checkpoint_step_recovers_the_oracle_state(kafka_bootstrap, topic_factory, tmp_path, step,
                                                               delivery):
    scenario = Scenario(models=2, partitions=2, events_per_model=3000)
    refs = scenario.references(tmp_path)
    models = [scenario.model_config(m, refs[m]) for m in scenario.model_ids()]
    topics = make_topics(topic_factory, scenario.partitions)
    group = unique_name("steps")
    cfg = service_config(kafka_bootstrap, topics, models, group=group, delivery=delivery, batch_size=200,
                         commit_interval_seconds=0.05)
    parts = scenario.messages()
    total = sum(len(p) for p in parts)
    producer = GradualProducer(kafka_bootstrap, topics.predictions, parts, 0.0)
    producer.run()
    assert producer.error is None, producer.error
    config = config_from_dict(cfg)
    oracle_engine = Engine(config)
    oracle_windows, _ = run_oracle(config, parts, engine=oracle_engine)

    crashing = ServiceProcess(cfg, tmp_path, "crash", env={"STREAM_MONITOR_FAULT": f"{step}:3"}).start()
    rc = crashing.wait_exit(90)
    assert rc == -signal.SIGKILL, f"the fault did not fire (rc={rc}):\n{crashing.log_tail()}"
    done = committed_total(kafka_bootstrap, group, topics.predictions, scenario.partitions)
    assert done < total, "the crash happened before the end of the input"

    final = ServiceProcess(cfg, tmp_path, "final").start()
    try:
        wait_until(lambda: committed_total(kafka_bootstrap, group, topics.predictions, scenario.partitions) >= total,
                   120, f"all offsets committed after recovery:\n{final.log_tail()}")
    finally:
        assert final.stop() == 0, final.log_tail()
    assert "from checkpoint at offset" in final.log_tail(100_000)

    published = read_windows(kafka_bootstrap, topics.windows, set(oracle_windows))
    result = compare_windows(published, oracle_windows)
    assert result["problems"] == [], result["problems"][:20]

    store = KafkaCheckpointStore({"bootstrap.servers": kafka_bootstrap}, topics.checkpoints, None,  # type: ignore[arg-type]
                                 group_id=group)
    try:
        store.ensure_topic(scenario.partitions, create=False)
        found = store.read(group, [(topics.predictions, p) for p in range(scenario.partitions)])
    finally:
        store.close()
    assert {cp.offset for cp in found.values()} == {len(p) for p in parts}, "final checkpoints cover the input"
    recovered = {"models": {mid: m for cp in found.values() for mid, m in cp.state["models"].items()}}
    expected = state.snapshot_models(oracle_engine, scenario.model_ids())
    assert state_digest(recovered) == state_digest(expected)

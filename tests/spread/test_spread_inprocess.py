"""Shards and merger without a broker: a spread model's windows and alerts equal the single-owner run's.

Also what the broker tests cannot force at will: partials delivered twice and out of
order (a replay replaces, never adds), a merger restored from a snapshot mid-stream and
fed the partials after it again, the partial record format, and the config checks.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from faults.oracle import compare_alerts, compare_windows, run_oracle
from spread.scenario import DRIFTED, HOT, HotScenario, InProcess, windows_of

from stream_monitor import state
from stream_monitor.config import MonitorConfig, config_from_dict
from stream_monitor.errors import ConfigError
from stream_monitor.spread import PartialError, PartialRecord

CHUNK = 400


@pytest.fixture(scope="module")
def scenario() -> HotScenario:
    return HotScenario(events=4800)


@pytest.fixture(scope="module")
def config(scenario: HotScenario, tmp_path_factory: pytest.TempPathFactory) -> MonitorConfig:
    refs = scenario.references(Path(tmp_path_factory.mktemp("refs")))
    return config_from_dict({"models": scenario.models(refs)})


@pytest.fixture(scope="module")
def oracle(scenario: HotScenario, config: MonitorConfig):  # type: ignore[no-untyped-def]
    return run_oracle(config, scenario.oracle_partitions(), batch=CHUNK)


def _chunks(parts: list[list[bytes]]) -> list[tuple[int, int, list[bytes]]]:
    """(partition, offset, values): the partitions' chunks interleaved round-robin, as one consumer sees them."""
    out = []
    longest = max(len(p) for p in parts)
    for off in range(0, longest, CHUNK):
        for p, values in enumerate(parts):
            if values[off:off + CHUNK]:
                out.append((p, off, values[off:off + CHUNK]))
    return out


def _assert_like_oracle(windows, alerts, oracle) -> None:  # type: ignore[no-untyped-def]
    oracle_windows, oracle_alerts = oracle
    got = compare_windows(windows, oracle_windows)
    assert got["problems"] == [], got["problems"][:10]
    assert got["windows"] == len(oracle_windows) > 10
    got_alerts = compare_alerts([a.model_dump(mode="json") for a in alerts], oracle_alerts)
    assert got_alerts["problems"] == [], got_alerts["problems"][:10]


def test_spread_windows_and_alerts_equal_the_single_owner_run(scenario, config, oracle) -> None:
    run = InProcess.build(config, scenario.partitions)
    reports = []
    for p, off, values in _chunks(scenario.spread_partitions()):
        reports += run.shard(p, values, off)
        reports += run.merge(run.sink.take())
    assert {r.model_id for r in reports} == {HOT, "cold-model"}
    _assert_like_oracle(windows_of(reports), run.alerts.alerts, oracle)
    drift = [a for a in run.alerts.alerts if a.model_id == HOT and a.status == "firing"]
    assert drift and {f.feature for a in drift for f in a.findings} & DRIFTED, "the shifted features alert"
    # every shard published its panes and watermarks; the merger holds only the windows still open
    assert set(run.runtime.shards) == {(config.topics.predictions, p) for p in range(scenario.partitions)}
    merge = run.runtime.merges[(config.topics.partials, 0)][HOT]
    assert len(merge.watermarks) == scenario.partitions and len(merge.parts) <= 2


def test_replayed_and_reordered_partials_replace_and_never_add(scenario, config, oracle) -> None:
    """Every batch of partials twice, the sources interleaved at random (each keeps its order, as in Kafka)."""
    run = InProcess.build(config, scenario.partitions)
    rng = random.Random(3)
    reports = []
    for p, off, values in _chunks(scenario.spread_partitions()):
        reports += run.shard(p, values, off)
        batch = run.sink.take()
        queues = [[r for r in batch if r.source_partition == s] for s in range(scenario.partitions)]
        shuffled = []
        while any(queues):
            shuffled.append(rng.choice([q for q in queues if q]).pop(0))
        reports += run.merge(shuffled + batch)  # and an at-least-once replay of the whole batch
    _assert_like_oracle(windows_of(reports), run.alerts.alerts, oracle)
    results = run.runtime.metrics.partials
    assert results.labels(HOT, "replaced")._value.get() > 0


def test_a_merger_restored_mid_stream_and_fed_again_gives_the_same_windows(scenario, config, oracle) -> None:
    run = InProcess.build(config, scenario.partitions)
    partials_tp = (config.topics.partials, 0)
    chunks = _chunks(scenario.spread_partitions())
    cut = len(chunks) // 2
    reports, log = [], []
    snapshot = None
    for i, (p, off, values) in enumerate(chunks):
        reports += run.shard(p, values, off)
        batch = run.sink.take()
        log.extend(batch)
        reports += run.merge(batch)
        if i == cut:  # the merger's checkpoint: engine state of the model it merges plus its partials
            snapshot = (state.snapshot_models(run.engine, run.runtime.models_of(partials_tp)),
                        run.runtime.snapshot(partials_tp), len(log))
    assert snapshot is not None
    # a fresh instance restores the checkpoint and re-reads the partials topic from its offset
    fresh = InProcess.build(config, scenario.partitions)
    models, extras, offset = snapshot
    assert state.restore_models(fresh.engine, models) == [HOT]
    fresh.runtime.restore(partials_tp, extras)
    again = fresh.merge(log[offset:])
    before = {r.window_start for r in reports if r.model_id == HOT and
              r.window_start not in {x.window_start for x in again}}
    hot = [r for r in reports if r.model_id == HOT and r.window_start in before] + again
    want_windows, want_alerts = oracle
    got = compare_windows(windows_of(hot), {k: v for k, v in want_windows.items() if v["model_id"] == HOT})
    assert got["problems"] == [] and got["duplicated"] == 0, got["problems"][:10]
    firing = {a.alert_id for a in fresh.alerts.alerts}
    assert firing <= {a.alert_id for a in want_alerts}, "a restored merger publishes only the oracle's alert ids"


def test_a_shard_restored_from_an_older_checkpoint_republishes_without_double_counting(scenario, config,
                                                                                     oracle) -> None:
    """Partition 1's owner crashes: its shard comes back from a checkpoint and re-reads (and re-publishes) after it."""
    run = InProcess.build(config, scenario.partitions)
    tp1 = (config.topics.predictions, 1)
    chunks = _chunks(scenario.spread_partitions())
    reports, saved, replayed = [], None, False
    i = 0
    while i < len(chunks):
        p, off, values = chunks[i]
        reports += run.shard(p, values, off)
        reports += run.merge(run.sink.take())
        if p == 1 and saved is None and i > len(chunks) // 4:
            saved = (i, run.runtime.snapshot(tp1))
        if p == 1 and saved is not None and not replayed and i > len(chunks) // 2:
            replayed = True
            run.runtime.restore(tp1, saved[1])  # the crash: state back to the checkpoint, records re-read after it
            for q, qoff, qvalues in chunks[saved[0] + 1:i + 1]:
                if q == 1:
                    reports += run.shard(q, qvalues, qoff)
            reports += run.merge(run.sink.take())
        i += 1
    assert replayed
    results = run.runtime.metrics.partials
    assert results.labels(HOT, "stale")._value.get() > 0, "re-published panes of evaluated windows are dropped"
    _assert_like_oracle(windows_of(reports), run.alerts.alerts, oracle)


def test_partial_records_round_trip_and_refuse_garbage() -> None:
    rec = PartialRecord(kind="pane", model_id="m", source_topic="t", source_partition=2, watermark_ms=10,
                        fingerprint="f", reference_version="r", model_version="v1", pane_start_ms=0,
                        pane_end_ms=5, n_events=3, pane={"x": [1.0, float("inf")]}, outcomes={"ops": None})
    back = PartialRecord.decode(rec.encode())
    assert back == rec and back.partial_id == rec.partial_id and back.source == "t/2"
    hb = PartialRecord(kind="watermark", model_id="m", source_topic="t", source_partition=2, watermark_ms=10,
                       fingerprint="f", reference_version="r")
    assert hb.partial_id != rec.partial_id
    for bad in (None, b"", b"SMPRx", b"SMPR\x09abc", b"{}"):
        with pytest.raises(PartialError):
            PartialRecord.decode(bad)


@pytest.mark.parametrize("change, message", [
    ({"reference": {"from_stream_windows": 1}}, "needs reference.path"),
    ({"detectors": [{"id": "a", "type": "adwin", "signal": "income"}]}, "detectors"),
    ({"performance": {}}, "performance"),
])
def test_spread_refuses_state_that_does_not_merge(scenario, change, message) -> None:
    model = scenario.model_config(HOT, Path("ref.json"))
    model.update(change)
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"models": [model]})

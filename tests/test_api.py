"""The Python API is the service's engine: same alerts (ids), same rejections, any batching, any input form."""
from __future__ import annotations

import doctest
from collections import Counter
from pathlib import Path

import orjson
import pytest
import yaml
from helpers import drifted_stream, monitor_config, write_jsonl

from stream_monitor import Monitor
from stream_monitor.cli import main
from stream_monitor.config import config_from_dict
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.errors import ConfigError, EventRejected, StreamMonitorError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def messages() -> list[bytes]:
    return [v for _k, v in drifted_stream().messages]


def test_same_alert_ids_and_rejections_as_replay(tmp_path, messages):
    events, config, alerts_out, dead_out = (tmp_path / n for n in ("e.jsonl", "m.yaml", "a.jsonl", "d.jsonl"))
    write_jsonl(events, [(b"", m) for m in messages])
    config.write_text(yaml.safe_dump(monitor_config()))
    assert main(["replay", "-c", str(config), "--input", str(events), "--alerts-out", str(alerts_out),
                 "--dead-letter-out", str(dead_out), "--no-progress"]) == 0
    replayed = [orjson.loads(line) for line in alerts_out.read_text().splitlines()]
    dead = [orjson.loads(line) for line in dead_out.read_text().splitlines()]

    with Monitor.from_config(config) as monitor:
        monitor.observe_batch(messages)
    res = monitor.results()
    assert [a.alert_id for a in res.alerts] == [a["alert_id"] for a in replayed] != []
    assert Counter(r.reason for r in res.rejections) == Counter(d["reason"] for d in dead)
    # Replay numbers lines from 1; the API numbers events from 0.
    assert sorted((r.index + 1, r.detail) for r in res.rejections) == sorted((d["line"], d["error"]) for d in dead)
    assert res.processed == len(messages) - len(dead)


def test_batching_and_input_forms_do_not_change_results(messages):
    config = config_from_dict(monitor_config())
    one = Monitor(config)
    for m in messages:
        one.observe(m)
    one.close()
    mixed = Monitor.from_config(config)
    for i in range(0, len(messages), 997):
        chunk: list[object] = []
        for j, m in enumerate(messages[i:i + 997]):
            try:
                event = PredictionEvent.model_validate_json(m)
            except ValueError:
                chunk.append(m)  # malformed: bytes as they are
                continue
            chunk.append([event, orjson.loads(m), m.decode(), m][j % 4])
        mixed.observe_batch(chunk)  # type: ignore[arg-type]
    mixed.close()
    a, b = one.results(), mixed.results()
    assert [x.alert_id for x in a.alerts] == [x.alert_id for x in b.alerts]
    assert [(w.window_start, w.n_events) for w in a.windows] == [(w.window_start, w.n_events) for w in b.windows]
    assert a.rejections == b.rejections and a.processed == b.processed


def test_strict_mode_raises_and_processes_nothing_of_that_call(messages):
    monitor = Monitor.from_config(monitor_config(), strict=True)
    monitor.observe_batch(messages[:100])
    with pytest.raises(EventRejected) as err:
        monitor.observe_batch([messages[100], b"{broken", messages[101]])
    assert err.value.reason == "bad_json" and "event 101" in str(err.value)
    assert monitor.results().processed == 100
    with pytest.raises(EventRejected, match="bad_json: event 100: event is not JSON-serialisable"):
        monitor.observe({"event_id": {1, 2}})
    assert monitor.rejections() == []


def test_unwritable_dict_is_a_rejection_and_positions_count_every_event(messages):
    monitor = Monitor.from_config(monitor_config())
    monitor.observe_batch([messages[0], {"event_id": {1}}, messages[1]])
    monitor.observe(b"")
    assert [(r.index, r.reason) for r in monitor.rejections()] == [(1, "bad_json"), (3, "bad_json")]


def test_lifecycle_results_clear_and_config_errors(messages, tmp_path):
    monitor = Monitor.from_config(monitor_config())
    monitor.observe_batch(messages[:3000])
    first = monitor.results(clear=True)
    assert first.windows and monitor.results().windows == []
    assert monitor.close() == monitor.close() == []
    with pytest.raises(StreamMonitorError, match="closed"):
        monitor.observe(messages[0])
    bad = monitor_config()
    bad["models"][0]["window"] = {"size_seconds": -1}
    with pytest.raises(ConfigError, match=r"models\.0\.window\.size_seconds"):
        Monitor.from_config(bad)
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        Monitor.from_config(tmp_path / "missing.yaml")
    with pytest.raises(TypeError, match="a dict, a PredictionEvent"):
        Monitor.from_config(monitor_config()).observe(42)  # type: ignore[arg-type]


def test_python_api_page_runs_as_a_doctest():
    result = doctest.testfile(str(ROOT / "docs" / "python-api.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS)
    assert result.attempted > 15 and result.failed == 0

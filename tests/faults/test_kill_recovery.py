"""SIGKILL the monitor at random moments while events stream: no window lost, none different, no stray alert id.

CI runs reduced counts; ``STREAM_MONITOR_FULL_FAULTS=1`` (or ``python -m bench.faults``)
runs the full ones: 20 kills over 100,000 events.
"""
from __future__ import annotations

import os

import pytest
from faults.harness import Scenario, kill_run

FULL = os.environ.get("STREAM_MONITOR_FULL_FAULTS") == "1"


@pytest.mark.slow
@pytest.mark.timeout(900 if FULL else 300)
def test_random_sigkills_lose_no_window_and_publish_no_stray_alert(kafka_bootstrap, topic_factory, tmp_path):
    scenario = Scenario(models=4, partitions=4, events_per_model=25_000 if FULL else 5_000)
    report = kill_run(kafka_bootstrap, topic_factory, tmp_path, scenario, kills=20 if FULL else 5, seed=20261122,
                      produce_seconds=150 if FULL else 30)
    print(f"\nkill test: {report.kills} SIGKILLs, {report.restores} checkpoint restores, {report.events} events, "
          f"{report.seconds:.0f}s; windows {report.windows | {'problems': len(report.windows['problems'])}}; "
          f"alerts {report.alerts | {'problems': len(report.alerts['problems'])}}")
    assert report.windows["problems"] == [], report.windows["problems"][:20]
    assert report.alerts["problems"] == [], report.alerts["problems"][:20]
    assert report.windows["missing"] == 0 and report.windows["windows"] > 0
    assert report.restores >= 1, "at least one restart resumed from a checkpoint"

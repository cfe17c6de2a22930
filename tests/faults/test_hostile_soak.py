"""Hostile input never blocks a partition: every bad record is dead-lettered with its reason and position,
lag returns to zero, metric series stay bounded, memory stays flat, and no payload reaches the logs."""
from __future__ import annotations

import os

import pytest
from faults.soak import SERIES_CAP, run_soak, summary

FULL = os.environ.get("STREAM_MONITOR_FULL_FAULTS") == "1"


@pytest.mark.slow
@pytest.mark.timeout(900 if FULL else 300)
def test_hostile_soak(kafka_bootstrap, topic_factory, tmp_path):
    report = run_soak(kafka_bootstrap, topic_factory, tmp_path, valid=200_000 if FULL else 20_000,
                      unknown_models=10_000, big=20 if FULL else 5, produce_seconds=300 if FULL else 30)
    print("\nsoak:", summary(report))
    assert report.dead_letters == report.bad, "every bad record dead-lettered, under its reason"
    assert report.headers_ok, "each dead letter names topic, partition, offset, reason and error"
    assert {k: v for k, v in report.rejected_metric.items() if v} == {k: float(v) for k, v in report.bad.items()}
    assert report.lag_zero_after >= 0
    assert max(report.series_per_metric.values()) < SERIES_CAP
    assert report.unknown_ids_in_metrics == 0, "unknown model ids never become label values"
    assert not report.log_has_canary, "no payload value in the logs"
    rss = report.rss_summary()
    assert rss["settled_max_mb"] - rss["settled_min_mb"] < 100, rss

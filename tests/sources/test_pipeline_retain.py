"""A long-running service keeps only recent results in `Pipeline.totals`, while its counts stay exact.

The hostile soak traced its resident-memory growth to window reports (every statistic of
every feature, ~20 kB each) kept in `totals`; the service now retains
`service.RETAINED_RESULTS` of each kind, and the run-wide counts live beside them.
"""
from __future__ import annotations

from helpers import drifted_stream, monitor_config
from prometheus_client import CollectorRegistry

from stream_monitor.config import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.service import RETAINED_RESULTS
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.pipeline import Pipeline


class _Null:
    def publish(self, item: object) -> None: ...

    def send(self, record: object, error: object) -> None: ...

    def flush(self) -> int:
        return 0


def _run(retain: int | None) -> Pipeline:
    stream = drifted_stream()
    recs = [RawRecord(value=v, key=None, topic="p", partition=0, offset=i) for i, (_k, v) in enumerate(stream.messages)]
    cfg = monitor_config()
    cfg["models"][0]["renotify_windows"] = 1  # an alert per drifted window, so there are several
    p = Pipeline(Engine(config_from_dict(cfg)), MonitorMetrics(CollectorRegistry()), _Null(), _Null(), retain=retain)
    for start in range(0, len(recs), 500):
        p.handle(recs[start:start + 500])
    p.finish()
    return p


def test_retained_results_are_the_most_recent_and_counts_stay_exact():
    full, kept = _run(None), _run(2)
    assert len(full.totals.reports) > 2 and len(full.totals.alerts) > 2
    assert [r.window_start for r in kept.totals.reports] == [r.window_start for r in full.totals.reports[-2:]]
    assert [a.alert_id for a in kept.totals.alerts] == [a.alert_id for a in full.totals.alerts[-2:]]
    assert kept.windows_closed == full.windows_closed
    assert kept.windows_closed.total() == len(full.totals.reports)
    assert kept.alert_counts.total() == len(full.totals.alerts)
    assert kept.totals.processed == full.totals.processed


def test_the_service_bound_is_small():
    assert RETAINED_RESULTS <= 1000, "a report holds every statistic of every feature: keep few"

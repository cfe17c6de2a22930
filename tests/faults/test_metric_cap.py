"""The service's registry never exposes more than SERIES_CAP label sets per metric; counters keep their totals."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream_monitor.service import OVERFLOW_LABEL, CappedRegistry


def test_series_beyond_the_cap_fold_into_other_and_totals_are_kept() -> None:
    registry = CappedRegistry(cap=50)
    c = Counter("demo_events", "events", ["model_id"], registry=registry)
    g = Gauge("demo_value", "value", ["model_id"], registry=registry)
    h = Histogram("demo_seconds", "time", ["model_id"], registry=registry, buckets=(1, 5))
    for i in range(500):
        c.labels(f"m{i}").inc(2)
        g.labels(f"m{i}").set(i)
        h.labels(f"m{i}").observe(3)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    counter = [s for s in families["demo_events"].samples if s.name == "demo_events_total"]
    assert len(counter) == 51 and sum(s.value for s in counter) == 1000
    assert [s.value for s in counter if s.labels["model_id"] == OVERFLOW_LABEL] == [900]
    assert len(families["demo_value"].samples) == 50, "gauges do not add up: the overflow is dropped"
    count = [s for s in families["demo_seconds"].samples if s.name == "demo_seconds_count"]
    assert len(count) == 51 and sum(s.value for s in count) == 500
    small = CappedRegistry(cap=50)
    Counter("few", "few", ["x"], registry=small).labels("a").inc()
    assert b'few_total{x="a"} 1.0' in generate_latest(small)

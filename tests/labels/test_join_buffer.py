"""The join buffer: TTL by event time, a hard entry cap, counted evictions, bounded memory."""
from __future__ import annotations

import math
import tracemalloc

import pytest

from stream_monitor.labels.join import JoinBuffer, Pending, normalise_label

#: Measured ~410 bytes per waiting prediction with 22-character event ids (CPython 3.11); the documented bound.
BYTES_PER_ENTRY_BOUND = 512


def _p(ts: int) -> Pending:
    return Pending("v1", ts - ts % 10_000, ts, 0.25, None, -1.0)  # no NaN: tuples compare by value


def test_ttl_expires_by_event_time_and_counts_the_reason() -> None:
    buf = JoinBuffer(ttl_ms=60_000, max_entries=100)
    for i in range(10):
        buf.add(f"e{i}", _p(i * 10_000))
    assert buf.advance(90_000) == [_p(0), _p(10_000), _p(20_000)]  # older than 90 s - 60 s
    assert buf.evicted == {"ttl": 3} and len(buf) == 7
    assert buf.advance(80_000) == []  # the clock never goes back
    assert buf.take("e5") == _p(50_000) and buf.take("e5") is None


def test_capacity_drops_the_oldest_and_ignores_repeated_ids() -> None:
    buf = JoinBuffer(ttl_ms=10**9, max_entries=3)
    dropped = [d for i in range(5) for d in buf.add(f"e{i}", _p(i))]
    assert dropped == [_p(0), _p(1)] and buf.evicted == {"capacity": 2}
    assert buf.add("e4", _p(99)) == [] and buf.duplicates == 1 and buf.take("e4") == _p(4)


def test_memory_stays_under_the_cap_while_labels_are_pending() -> None:
    cap = 20_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        buf = JoinBuffer(ttl_ms=10**12, max_entries=cap)
        sizes = []
        for i in range(5 * cap):
            buf.add(f"credit-risk-7-{i:08d}", Pending("v1", 0, 1_700_000_000_000 + i, 0.5, "repaid", math.nan))
            if (i + 1) % cap == 0:
                sizes.append(tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()
    assert len(buf) == cap and buf.evicted["capacity"] == 4 * cap
    assert max(sizes) <= cap * BYTES_PER_ENTRY_BOUND
    # The hash table grows once more after the first evictions (deleted slots), then stays flat.
    assert max(sizes[1:]) - min(sizes[1:]) <= 0.01 * max(sizes), "flat once the cap is reached"


def test_snapshot_round_trip_and_configured_cap_wins() -> None:
    buf = JoinBuffer(ttl_ms=60_000, max_entries=10)
    for i in range(6):
        buf.add(f"e{i}", Pending("v2" if i % 2 else "v1", 0, i, 0.1 * i, "x" if i > 3 else None, float(i)))
    buf.advance(1)
    again = JoinBuffer.from_dict(buf.to_dict())
    assert again.clock_ms == 1 and [again.take(f"e{i}") for i in range(6)] == [buf.take(f"e{i}") for i in range(6)]
    smaller = JoinBuffer.from_dict(JoinBuffer.from_dict(again.to_dict()).to_dict(), max_entries=2)
    assert len(smaller) <= 2


@pytest.mark.parametrize(("label", "name"), [(True, "1"), (False, "0"), (1, "1"), (1.0, "1"), (0.0, "0"),
                                             ("1", "1"), ("default", "default"), (2.5, "2.5")])
def test_labels_are_normalised_to_one_spelling(label: object, name: str) -> None:
    assert normalise_label(label) == name

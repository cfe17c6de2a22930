"""Event-time tumbling windows and the watermark that closes them.

A window ``[start, end)`` closes once the watermark, ``max event time seen - allowed
lateness``, reaches ``end``. An event whose window has already closed is late: it is
counted (``stream_monitor_events_late_total``), never silently folded into the wrong window.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


def to_ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def window_start(ts_ms: int, size_ms: int) -> int:
    """Windows are aligned to the epoch, so every instance and a replay agree on the boundaries."""
    return ts_ms - ts_ms % size_ms


@dataclass
class Watermark:
    lateness_ms: int
    max_event_ms: int | None = None

    def observe(self, ts_ms: int) -> None:
        if self.max_event_ms is None or ts_ms > self.max_event_ms:
            self.max_event_ms = ts_ms

    @property
    def value(self) -> int | None:
        return None if self.max_event_ms is None else self.max_event_ms - self.lateness_ms

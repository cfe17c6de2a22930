"""File sinks for `replay`: alerts as JSON lines, dead letters as JSON lines of position and reason."""
from __future__ import annotations

from pathlib import Path
from typing import IO

import orjson

from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.errors import EventRejected
from stream_monitor.sinks.base import RawRecord


class _JsonlFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] = self.path.open("wb")

    def _write(self, obj: object) -> None:
        self._fh.write(orjson.dumps(obj) + b"\n")

    def flush(self) -> int:
        self._fh.flush()
        return 0

    def close(self) -> None:
        self._fh.close()


class JsonlAlertSink(_JsonlFile):
    def publish(self, alert: AlertEvent) -> None:
        self._write(alert.model_dump(mode="json"))


class JsonlDeadLetterSink(_JsonlFile):
    """The payload stays in the input file; this records where it is and why it was rejected."""

    def send(self, record: RawRecord, error: EventRejected) -> None:
        self._write({"source": record.topic, "line": record.offset, "reason": error.reason, "error": error.detail})


class CountingDeadLetterSink:
    """Counts rejections only (replay without --dead-letter-out); the metrics still say how many and why."""

    def __init__(self) -> None:
        self.count = 0

    def send(self, record: RawRecord, error: EventRejected) -> None:
        self.count += 1

    def flush(self) -> int:
        return 0

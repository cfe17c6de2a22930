"""The two sink roles the pipeline writes to, as small protocols (Kafka, file and console implement them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.errors import EventRejected


@dataclass(frozen=True)
class RawRecord:
    """One input message and where it came from (a Kafka position, or a file and line number)."""

    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None

    def position(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class AlertSink(Protocol):
    def publish(self, alert: AlertEvent) -> None: ...

    def flush(self) -> int:
        """Block until everything published so far is delivered; return the number of failed deliveries."""
        ...


class DeadLetterSink(Protocol):
    def send(self, record: RawRecord, error: EventRejected) -> None: ...

    def flush(self) -> int: ...


class FanoutAlertSink:
    """Publish every alert to several sinks (e.g. the Kafka topic and the demo's console)."""

    def __init__(self, *sinks: AlertSink) -> None:
        self.sinks = sinks

    def publish(self, alert: AlertEvent) -> None:
        for s in self.sinks:
            s.publish(alert)

    def flush(self) -> int:
        return sum(s.flush() for s in self.sinks)


class ConsoleAlertSink:
    """One readable line per alert, for the demo and for `replay` without --alerts-out."""

    def __init__(self, write: object = print) -> None:
        self.write = write

    def publish(self, alert: AlertEvent) -> None:
        self.write(alert.one_line())  # type: ignore[operator]

    def flush(self) -> int:
        return 0

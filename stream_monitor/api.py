"""In-process monitoring: the service's engine without Kafka, for teams that call it from their own code.

:class:`Monitor` wraps the same :class:`~stream_monitor.sources.pipeline.Pipeline`
that ``run`` and ``replay`` use: events go through the same decoder (so exactly
the same events are accepted and rejected, with the same reasons), the same
windows, statistics, rules and incidents, and alerts carry the same deterministic
ids as the service would publish for the same input.

Invalid events do not raise by default: like the service's dead-letter topic,
they are data (:class:`Rejection`, with the reason and detail, never the payload)
returned by :meth:`Monitor.rejections` and counted in the metrics. With
``strict=True`` a call that contains an invalid event raises
:class:`~stream_monitor.errors.EventRejected` and processes none of that call's
events.

A monitor is not thread-safe: call it from one thread (or hold a lock).
Example (docs/python-api.md has a fuller one, run by the test suite)::

    from stream_monitor import Monitor

    with Monitor.from_config("monitor.yaml") as monitor:
        for event in events:                 # dicts, PredictionEvent objects, or JSON bytes
            for alert in monitor.observe(event):
                print(alert.one_line())
    print(monitor.results().windows[-1].features["income"].stats["psi"])
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest

from stream_monitor.config import MonitorConfig, config_from_dict, load_config
from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.contracts.decisions import DecisionEvent
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.engine import Engine
from stream_monitor.engine_types import EngineOutput, WindowReport
from stream_monitor.errors import EventRejected, StreamMonitorError
from stream_monitor.reference import ReferenceProfile
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.pipeline import Pipeline

__all__ = ["Event", "Monitor", "Rejection", "Results"]

Event = Mapping[str, Any] | PredictionEvent | bytes | str
SOURCE = "api"


@dataclass(frozen=True)
class Rejection:
    """An invalid event: its 0-based position among all events this monitor was given, and why."""

    index: int
    reason: str
    detail: str


@dataclass
class Results:
    """What the monitor produced so far: closed windows (time order), alerts, rejections and counts."""

    windows: list[WindowReport]
    alerts: list[AlertEvent]
    rejections: list[Rejection]
    processed: int
    late: int
    decisions: list[DecisionEvent]


class _AlertList:
    def __init__(self) -> None:
        self.items: list[AlertEvent] = []

    def publish(self, alert: AlertEvent) -> None:
        self.items.append(alert)

    def flush(self) -> int:
        return 0


class _DecisionList:
    def __init__(self) -> None:
        self.items: list[DecisionEvent] = []

    def publish(self, decision: DecisionEvent) -> None:
        self.items.append(decision)

    def flush(self) -> int:
        return 0


class _Rejections:
    def __init__(self) -> None:
        self.items: list[Rejection] = []

    def send(self, record: RawRecord, error: EventRejected) -> None:
        self.items.append(Rejection(index=record.offset, reason=error.reason, detail=error.detail))

    def flush(self) -> int:
        return 0


def _encode(event: Event) -> bytes:
    """Every form becomes the bytes the service would consume, so validation is the service's own."""
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return event.encode()
    if isinstance(event, PredictionEvent):
        return event.model_dump_json(by_alias=True).encode()
    if isinstance(event, Mapping):
        try:
            return orjson.dumps(event)
        except TypeError as exc:  # a value orjson cannot write: the service could never have received it
            raise EventRejected("bad_json", f"event is not JSON-serialisable ({exc})") from None
    raise TypeError(f"an event is a dict, a PredictionEvent, JSON bytes or a JSON str, not {type(event).__name__}")


class Monitor:
    """Drift monitoring in-process: ``observe`` events, read ``results`` and ``alerts``, ``close`` at the end."""

    def __init__(self, config: MonitorConfig, references: Mapping[str, ReferenceProfile] | None = None, *,
                 strict: bool = False, registry: CollectorRegistry | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.strict = strict
        self.engine = Engine(config, dict(references or {}), **({"clock": clock} if clock else {}))
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = MonitorMetrics(self.registry)
        self.metrics.attach(self.engine)
        self._alerts = _AlertList()
        self._rejections = _Rejections()
        self._decisions = _DecisionList()
        self.pipeline = Pipeline(self.engine, self.metrics, self._alerts, self._rejections, self._decisions)
        self._seen = 0
        self._closed = False

    @classmethod
    def from_config(cls, config: str | Path | Mapping[str, Any] | MonitorConfig,
                    references: Mapping[str, ReferenceProfile | str | Path] | None = None, *,
                    strict: bool = False, **kwargs: Any) -> Monitor:
        """A monitor from a YAML path, a dict shaped like the YAML, or a ``MonitorConfig``.

        `references` maps model ids to profiles (objects or paths of ``reference build``
        output) and wins over ``reference.path`` in the config. Kafka settings in the
        config are ignored: nothing here connects to a broker. Raises ``ConfigError``
        naming the field and the fix, exactly as ``check-config`` does.
        """
        if isinstance(config, MonitorConfig):
            cfg = config
        elif isinstance(config, Mapping):
            cfg = config_from_dict(dict(config), "Monitor.from_config")
        else:
            cfg = load_config(config)
        refs = {mid: r if isinstance(r, ReferenceProfile) else ReferenceProfile.load(r)
                for mid, r in (references or {}).items()}
        return cls(cfg, refs, strict=strict, **kwargs)

    # -- input ----------------------------------------------------------------------------

    def observe(self, event: Event) -> list[AlertEvent]:
        """Add one event; returns the alerts of the windows it closed (usually none)."""
        return self.observe_batch((event,))

    def observe_batch(self, events: Iterable[Event]) -> list[AlertEvent]:
        """Add events in order (faster than one by one); returns the alerts of the windows they closed."""
        if self._closed:
            raise StreamMonitorError("this Monitor is closed; create a new one to monitor more events")
        good: list[RawRecord] = []
        unwritable: list[Rejection] = []
        count = 0
        for count, event in enumerate(events, start=1):
            index = self._seen + count - 1
            try:
                good.append(RawRecord(value=_encode(event), key=None, topic=SOURCE, partition=0, offset=index))
            except EventRejected as err:
                if self.strict:
                    raise EventRejected(err.reason, f"event {index}: {err.detail}") from None
                unwritable.append(Rejection(index, err.reason, err.detail))
        if self.strict and good:
            decoded = self.pipeline.records.decode([r.value for r in good])
            if decoded.rejected:
                i, first = decoded.rejected[0]
                raise EventRejected(first.reason, f"event {good[i].offset}: {first.detail}")
        self._seen += count
        self._rejections.items.extend(unwritable)
        before = len(self._alerts.items)
        if good:
            self.pipeline.handle(good)
        return self._alerts.items[before:]

    def close(self) -> list[AlertEvent]:
        """Close every open window (the end of the input) and return their alerts. Idempotent."""
        if self._closed:
            return []
        self._closed = True
        before = len(self._alerts.items)
        self.pipeline.finish()
        return self._alerts.items[before:]

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- output ---------------------------------------------------------------------------

    def results(self, *, clear: bool = False) -> Results:
        """Everything so far. ``clear=True`` hands it over and forgets it (bounded memory in a long run)."""
        totals = self.pipeline.totals
        out = Results(windows=list(totals.reports), alerts=list(self._alerts.items),
                      rejections=list(self._rejections.items), processed=sum(totals.processed.values()),
                      late=sum(totals.late.values()), decisions=list(self._decisions.items))
        if clear:
            self.pipeline.totals = EngineOutput()
            self._alerts.items.clear()
            self._rejections.items.clear()
            self._decisions.items.clear()
        return out

    def alerts(self) -> list[AlertEvent]:
        return list(self._alerts.items)

    def rejections(self) -> list[Rejection]:
        return list(self._rejections.items)

    def decisions(self) -> list[DecisionEvent]:
        """Retrain / promote / hold / rollback / blocked decisions (models with a `retraining` section)."""
        return list(self._decisions.items)

    def metrics_text(self) -> str:
        """The Prometheus exposition the service would serve at /metrics for the same input."""
        return generate_latest(self.registry).decode()

    def report_html(self, model_id: str | None = None, *, start: datetime | None = None,
                    end: datetime | None = None) -> str:
        """The ``stream-monitor report`` page for one model (default: the first configured)."""
        from stream_monitor.report import collect, render_report

        mid = model_id or self.config.models[0].model_id
        if mid not in self.engine.models:
            raise StreamMonitorError(f"model {mid!r} is not configured; configured: {', '.join(self.engine.models)}")
        totals = self.pipeline.totals
        return render_report(collect(self.engine, mid, totals.reports, self._alerts.items, start, end,
                                     self._decisions.items))

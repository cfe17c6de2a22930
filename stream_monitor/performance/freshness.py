"""Freshness: how late events arrive, how old the newest one is, and whether a model's stream went silent.

Why processing time: event-time windows never close for a model that stops
sending, so silence is invisible to everything else in the engine. This tracker
remembers, per model and stream (``predictions``, ``labels``), when the last event
*arrived* (the engine's injectable clock) and the newest event time seen. The
source calls ``Engine.tick(now)`` on every poll; a stream silent for longer than its
configured limit raises one ``freshness`` alert per silence (its id is derived from
the model, the stream and the arrival time of the last event, so a repeated tick
never duplicates it), resolved when events arrive again. Before the first event of
a stream, silence counts from the tracker's start. Not checkpointed: after a
restart silence counts from the restart.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from stream_monitor.config import ModelConfig
from stream_monitor.contracts.alerts import AlertEvent, stable_id

STREAMS = ("predictions", "labels")


@dataclass
class StreamState:
    last_arrival: float | None = None  # processing time (epoch seconds) of the newest arrival
    newest_event_ms: int | None = None
    lag_seconds: float | None = None  # arrival time minus the newest event time, at the last arrival
    version: str | None = None
    incident: str | None = None  # open incident id
    incident_since: float | None = None


class FreshnessTracker:
    def __init__(self, models: list[ModelConfig], started: datetime) -> None:
        self.models = {m.model_id: m for m in models}
        self.started = started.timestamp()
        self.state: dict[tuple[str, str], StreamState] = {}

    def seen(self, model_id: str, stream: str, now: datetime, newest_event_ms: int, version: str | None = None) -> None:
        st = self.state.setdefault((model_id, stream), StreamState())
        t = now.timestamp()
        st.last_arrival = t
        if st.newest_event_ms is None or newest_event_ms > st.newest_event_ms:
            st.newest_event_ms = newest_event_ms
        st.lag_seconds = t - newest_event_ms / 1000.0
        if version is not None:
            st.version = version

    def limit(self, model_id: str, stream: str) -> float | None:
        f = self.models[model_id].freshness
        return f.max_silence_seconds if stream == "predictions" else f.labels_max_silence_seconds

    def gauges(self, now: datetime) -> list[tuple[str, str, float, float | None, float | None]]:
        """(model, stream, silence s, newest event age s, arrival lag s) per tracked or limited stream."""
        t = now.timestamp()
        out = []
        for model_id in self.models:
            for stream in STREAMS:
                st = self.state.get((model_id, stream))
                if st is None and self.limit(model_id, stream) is None:
                    continue
                st = st or StreamState()
                silence = t - (st.last_arrival if st.last_arrival is not None else self.started)
                age = t - st.newest_event_ms / 1000.0 if st.newest_event_ms is not None else None
                out.append((model_id, stream, silence, age, st.lag_seconds))
        return out

    def tick(self, now: datetime, reference_versions: dict[str, str]) -> list[AlertEvent]:
        """Firing alerts for streams silent beyond their limit, resolved ones for streams that spoke again."""
        t = now.timestamp()
        alerts: list[AlertEvent] = []
        for model_id, model in self.models.items():
            for stream in STREAMS:
                limit = self.limit(model_id, stream)
                if limit is None:
                    continue
                st = self.state.setdefault((model_id, stream), StreamState())
                since = st.last_arrival if st.last_arrival is not None else self.started
                silence = t - since
                if silence > limit and st.incident is None:
                    st.incident = stable_id(model_id, "freshness", stream, repr(since))
                    st.incident_since = since
                    alerts.append(self._alert(model, stream, st, "firing", since, now, silence, limit,
                                              reference_versions.get(model_id, "")))
                elif silence <= limit and st.incident is not None:
                    alerts.append(self._alert(model, stream, st, "resolved", st.incident_since or since, now,
                                              silence, limit, reference_versions.get(model_id, "")))
                    st.incident = None
                    st.incident_since = None
        return alerts

    def _alert(self, model: ModelConfig, stream: str, st: StreamState, status: str, since: float, now: datetime,
               silence: float, limit: float, reference_version: str) -> AlertEvent:
        f = model.freshness
        firing = status == "firing"
        return AlertEvent(
            alert_id=stable_id(st.incident, status, repr(since) if firing else repr(st.last_arrival)),
            incident_id=st.incident, status=status,  # type: ignore[arg-type]
            model_id=model.model_id, model_version=st.version or "-", kind="freshness",
            rule_id=f"freshness.{stream}", metric="silence_seconds", comparison=">", feature=stream, slice=None,
            window_start=datetime.fromtimestamp(since, tz=UTC), window_end=now, value=silence, threshold=limit,
            severity=f.severity if firing else "info", action=f.action if firing else "none", owner=model.owner,
            reference_version=reference_version,
            evidence={"stream": stream, "last_arrival": st.last_arrival, "newest_event_ms": st.newest_event_ms,
                      "arrival_lag_seconds": st.lag_seconds, "never_seen": st.last_arrival is None},
            created_at=now,
        )

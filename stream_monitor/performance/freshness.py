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

In a consumer group each instance reads some partitions, so each would see every
other instance's models as silent. An instance therefore speaks only for the streams
it owns (:meth:`FreshnessTracker.owns`): a model's stream is owned where it arrived on
a partition the instance still holds. A stream this instance has never seen may live
on another instance's partitions, so it is reported only by an instance that holds
every partition of the topic (alone in its group); with several instances, a model
that never sent anything since they started raises no freshness alert, and its
``stream_monitor_stream_silence_seconds`` series is absent everywhere (alert on
``absent()`` for that case). Alerts and the silence gauges follow ownership. Outside a
group (replay, the Python API) an instance owns everything.
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
        #: Partitions of each stream's topic this instance holds; None: it reads them all (replay, the API).
        self.assigned: dict[str, set[int]] | None = None
        #: Partitions each (model, stream) arrived on here.
        self.arrived: dict[tuple[str, str], set[int]] = {}
        #: How many partitions each stream's topic has (known once assigned).
        self.partitions: dict[str, int] = {}

    # -- ownership in a consumer group ---------------------------------------------------

    def join_group(self) -> None:
        """From now on this instance holds only the partitions it is assigned (the Kafka source calls it)."""
        self.assigned = {stream: set() for stream in STREAMS}

    def hold(self, stream: str, partitions: set[int], total: int) -> None:
        """This instance now holds `partitions` of the stream's topic, which has `total` partitions."""
        if self.assigned is not None:
            self.assigned[stream] = set(partitions)
            self.partitions[stream] = total

    def arrived_on(self, model_id: str, stream: str, partition: int) -> None:
        self.arrived.setdefault((model_id, stream), set()).add(partition)

    def owns(self, model_id: str, stream: str) -> bool:
        """Whether this instance speaks for the stream's freshness (see the module docstring)."""
        if self.assigned is None:
            return True
        held = self.assigned[stream]
        where = self.arrived.get((model_id, stream))
        if where:
            return bool(where & held)
        return bool(held) and len(held) >= self.partitions.get(stream, 0)  # never seen here: only if alone

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
                if (st is None and self.limit(model_id, stream) is None) or not self.owns(model_id, stream):
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
                if limit is None or not self.owns(model_id, stream):
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

"""Where the engine hands over to the outcome trackers; kept here so that engine.py only calls one line each.

The engine stays pure: labels and ticks come in as arguments (``Engine.process_labels``,
``Engine.tick(now)``), alerts and updated reports go out in :class:`EngineOutput`.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.engine_types import EngineOutput, WindowReport
from stream_monitor.errors import ConfigError
from stream_monitor.performance.freshness import FreshnessTracker
from stream_monitor.performance.tracker import ModelOutcomes
from stream_monitor.windows import to_ms

if TYPE_CHECKING:
    from stream_monitor.engine import Engine, ModelMonitor


def attach(engine: Engine) -> FreshnessTracker:
    """One :class:`ModelOutcomes` per model and the freshness tracker; contract features are checked here."""
    from stream_monitor.engine import feature_kinds

    for model_id, mm in engine.models.items():
        kinds = feature_kinds(mm.config, mm.reference)
        unknown = sorted(set(mm.config.quality.features) - set(kinds))
        if unknown:
            raise ConfigError(f"models.{model_id}.quality.features: {', '.join(unknown)} not among the model's "
                              f"features ({', '.join(sorted(kinds)) or 'none declared'}); declare them under "
                              "`features` or remove their contracts")
        for name in mm.config.quality.features:
            if kinds[name] == "embedding":
                raise ConfigError(f"models.{model_id}.quality.features.{name}: contracts apply to numeric and "
                                  "categorical features, not embeddings")
        mm.outcomes = ModelOutcomes(mm.config, kinds, mm.size_ms, mm.slide_ms)
    return FreshnessTracker([mm.config for mm in engine.models.values()], engine.clock())


def seen(engine: Engine, batches: Sequence[Any]) -> None:
    """Prediction arrivals, for freshness (processing time from the engine's clock)."""
    if not batches:
        return
    now = engine.clock()
    for b in batches:
        if len(b):
            engine.freshness.seen(b.model_id, "predictions", now, int(b.ts_ms.max()), b.versions[-1])


def collected(engine: Engine, out: EngineOutput) -> EngineOutput:
    """Move the trackers' join counters into ``out``."""
    for model_id, mm in engine.models.items():
        if mm.outcomes is None:
            continue
        joined, unmatched, expired = mm.outcomes.collect()
        if joined:
            out.labels_joined[model_id] += joined
        if unmatched:
            out.labels_unmatched[model_id] += unmatched
        for reason, n in expired.items():
            out.labels_expired[(model_id, reason)] += n
    return out


def on_close(engine: Engine, mm: ModelMonitor, report: WindowReport, start_ms: int) -> list[AlertEvent]:
    if mm.outcomes is None:
        return []
    return mm.outcomes.on_close(report, start_ms, engine.clock(), mm.reference)


def process_labels(engine: Engine, labels: Sequence[Any]) -> EngineOutput:
    """Join label events (``LabelEvent`` or anything with event_id, model_id, label, timestamp)."""
    out = EngineOutput()
    now = engine.clock()
    by_model: dict[str, list[tuple[str, object, int]]] = {}
    for lab in labels:
        if lab.model_id in engine.models:  # the label decoder rejects unknown models (unknown_model) before this
            by_model.setdefault(lab.model_id, []).append((lab.event_id, lab.label, to_ms(lab.timestamp)))
    for model_id, rows in by_model.items():
        mm = engine.models[model_id]
        engine.freshness.seen(model_id, "labels", now, max(t for _, _, t in rows))
        if mm.outcomes is None:
            continue
        changed, alerts = mm.outcomes.add_labels(rows, now, mm.reference)
        out.updates.extend(changed)
        out.alerts.extend(alerts)
    return collected(engine, out)


def tick(engine: Engine, now: datetime | None = None) -> EngineOutput:
    """Freshness check at processing time ``now`` (the engine's clock when not given)."""
    out = EngineOutput()
    refs = {mid: mm.reference.profile_id for mid, mm in engine.models.items() if mm.reference is not None}
    out.alerts.extend(engine.freshness.tick(now or engine.clock(), refs))
    return out


def finish(engine: Engine) -> EngineOutput:
    """End of a finite input: retained performance windows become final."""
    out = EngineOutput()
    now = engine.clock()
    for mm in engine.models.values():
        if mm.outcomes is not None:
            out.alerts.extend(mm.outcomes.finish(now, mm.reference))
    return collected(engine, out)

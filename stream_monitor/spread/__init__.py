"""Spreading a model too hot for one partition over several, with partial window sketches merged by one owner.

Scale-out is Kafka's: one model's events keyed to one partition live on one instance.
A model with ``spread.enabled`` may have its events on every partition. Each partition
owner builds the model's panes from its own events (:mod:`.shard`) and publishes every
finished pane as a *partial* (:mod:`.records`) to ``topics.partials``, keyed by the model
id; the instance owning that partition merges the partials of all source partitions
(:mod:`.merger`) and evaluates each window once the slowest source's watermark has
passed it, through the engine's ordinary window path. :mod:`.runtime` wires both sides
into the pipeline and the checkpoints (docs/guarantees.md, docs/operations.md).
"""
from __future__ import annotations

from stream_monitor.spread.merger import Merge
from stream_monitor.spread.records import PartialError, PartialRecord
from stream_monitor.spread.runtime import (
    KafkaPartialSink,
    ListPartialSink,
    PartialSink,
    SpreadRuntime,
    ensure_partials_topic,
)
from stream_monitor.spread.shard import Shard

__all__ = ["KafkaPartialSink", "ListPartialSink", "Merge", "PartialError", "PartialRecord", "PartialSink",
           "Shard", "SpreadRuntime", "ensure_partials_topic"]

"""Which models belong to which input partition, and moving their state with the partition.

The engine keeps state per model; the consumer group moves partitions. The link
is ownership: the first partition a model's events arrive on owns the model (the
producers key events by model id, so there is exactly one). The checkpoint of a
partition is the state of the models it owns plus the next offset; on revoke it is
written and the models are dropped, on assign it is read back and the partition
resumes at the checkpoint's own offset (docs/guarantees.md explains why the
checkpoint's offset, not the group's committed one, is authoritative).
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from threading import Lock
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream_monitor import state
from stream_monitor.checkpoint import faults
from stream_monitor.checkpoint.records import PartitionCheckpoint
from stream_monitor.checkpoint.store import CheckpointStore
from stream_monitor.engine import Engine
from stream_monitor.engine_types import EngineOutput

log = logging.getLogger(__name__)

TP = tuple[str, int]


class PartitionExtras(Protocol):
    """State kept per partition beside its models' (the spread models' shards and merges, stream_monitor.spread).

    It travels in the partition's checkpoint record (``state["extras"]``), so it moves
    and recovers with the partition exactly as the models' state does.
    """

    def models_of(self, tp: TP) -> list[str]:
        """Engine models whose state belongs to `tp` although no event of theirs was read from it."""
        ...

    def snapshot(self, tp: TP) -> dict[str, Any] | None: ...

    def restore(self, tp: TP, data: dict[str, Any] | None) -> None: ...

    def release(self, tps: Sequence[TP]) -> None: ...


class CheckpointMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram("stream_monitor_checkpoint_seconds", "Time to snapshot and durably write a "
                                 "checkpoint", registry=registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                                           0.5, 1, 2.5, 5, 10))
        self.bytes = Gauge("stream_monitor_checkpoint_bytes", "Size of the last checkpoint write (all partitions "
                           "in it, compressed)", registry=registry)
        self.writes = Counter("stream_monitor_checkpoints", "Checkpoint writes by result", ["result"],
                              registry=registry)
        self.restores = Counter("stream_monitor_checkpoint_restores", "Partitions assigned, by what was restored "
                                "(restored, empty, behind_commit, ahead_of_commit, refused)", ["result"],
                                registry=registry)
        self.rebalances = Counter("stream_monitor_rebalance_events", "Partitions assigned, revoked or lost",
                                  ["event"], registry=registry)
        self.owned_models = Gauge("stream_monitor_owned_models", "Models whose state this instance holds",
                                  registry=registry)
        self.conflicts = Counter("stream_monitor_model_partition_conflicts", "Events of a model on a partition "
                                 "other than the one that owns it (events not keyed by model id)",
                                 registry=registry)


class Checkpointer:
    """Snapshots and restores the engine per input partition; the Kafka source drives it."""

    def __init__(self, engine: Engine, store: CheckpointStore | None, *, group_id: str, writer: str,
                 lock: Lock, registry: CollectorRegistry, extras: PartitionExtras | None = None) -> None:
        self.engine = engine
        self.extras = extras
        self.store = store
        self.group_id = group_id
        self.writer = writer
        self.lock = lock
        self.metrics = CheckpointMetrics(registry)
        self.owner: dict[str, TP] = {}
        self.dirty: set[TP] = set()
        self._initial = {mid: mm.reference for mid, mm in engine.models.items()}
        self._pristine = {mid: state.snapshot_model(engine, mid) for mid in engine.models}  # fresh, to reset to
        self._warned_conflict: set[tuple[str, TP]] = set()
        missing = state.uncovered_fields()
        if missing and store is not None:
            log.error("engine state fields %s are not covered by stream_monitor/state.py: they reset on every "
                      "restore", sorted(missing))

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def models_of(self, tps: Iterable[TP]) -> dict[TP, list[str]]:
        wanted = set(tps)
        out: dict[TP, list[str]] = defaultdict(list)
        for mid, tp in self.owner.items():
            if tp in wanted:
                out[tp].append(mid)
        return out

    # -- processing -------------------------------------------------------------------------

    def observe(self, tp: TP, out: EngineOutput) -> None:
        """The records of `tp` just went through the engine: claim the models they touched."""
        self.dirty.add(tp)
        for mid in set(out.processed) | set(out.late):
            owner = self.owner.setdefault(mid, tp)
            if owner != tp:
                self.metrics.conflicts.inc()
                if (mid, tp) not in self._warned_conflict:
                    self._warned_conflict.add((mid, tp))
                    log.warning("model %s has events on %s[%d] but lives on %s[%d]; key events by model id, or "
                                "its state will not follow a rebalance correctly", mid, tp[0], tp[1], *owner)
        if self.extras is not None:
            for mid in self.extras.models_of(tp):
                self.owner.setdefault(mid, tp)
        self.metrics.owned_models.set(len(self.owner))

    # -- checkpoint -------------------------------------------------------------------------

    def snapshot(self, offsets: dict[TP, int]) -> list[PartitionCheckpoint]:
        """Checkpoint records for the dirty partitions among `offsets` (next offset per partition)."""
        owned = self.models_of(offsets)
        with self.lock:
            return [PartitionCheckpoint(self.group_id, tp[0], tp[1], offsets[tp], self._document(tp, owned.get(tp, [])),
                                        writer=self.writer)
                    for tp in sorted(offsets) if tp in self.dirty]

    def _document(self, tp: TP, models: list[str]) -> dict[str, Any]:
        doc = state.snapshot_models(self.engine, models)
        extra = self.extras.snapshot(tp) if self.extras is not None else None
        if extra is not None:
            doc["extras"] = extra
        return doc

    def write(self, checkpoints: Sequence[PartitionCheckpoint], *, in_transaction: bool = False) -> None:
        """Durably write (or add to the open transaction); raises CheckpointError, and then nothing is committed."""
        if self.store is None or not checkpoints:
            return
        started = time.perf_counter()
        faults.maybe_crash("before_state_write")
        try:
            size = self.store.write(checkpoints, in_transaction=in_transaction)
        except Exception:
            self.metrics.writes.labels("failed").inc()
            raise
        faults.maybe_crash("after_state_write")
        self.metrics.writes.labels("ok").inc()
        self.metrics.bytes.set(size)
        self.metrics.seconds.observe(time.perf_counter() - started)
        log.debug("checkpoint %s", ", ".join(f"{c.topic}[{c.partition}]@{c.offset}" for c in checkpoints))

    def written(self, checkpoints: Sequence[PartitionCheckpoint]) -> None:
        """The offsets of these checkpoints are committed too: they are clean until new records arrive."""
        faults.maybe_crash("after_commit")
        for c in checkpoints:
            self.dirty.discard((c.topic, c.partition))

    # -- rebalance --------------------------------------------------------------------------

    def restore(self, tps: Sequence[TP], committed: dict[TP, int]) -> dict[TP, int]:
        """Load the checkpoints of newly assigned partitions; return where each must resume.

        A partition with a checkpoint resumes at the checkpoint's offset, whatever the
        group committed (state and offset are one record, so they always agree). A
        partition without one resumes at the committed offset with empty state.
        """
        self.metrics.rebalances.labels("assigned").inc(len(tps))
        if self.store is None:
            return {}
        found = self.store.read(self.group_id, list(tps))
        start: dict[TP, int] = {}
        for tp in tps:
            cp = found.get(tp)
            c = committed.get(tp)
            if cp is None:
                self.metrics.restores.labels("empty").inc()
                log.info("%s[%d]: no checkpoint; resuming at the committed offset %s with empty state", *tp,
                         c if c is not None and c >= 0 else "(none: auto.offset.reset)")
                continue
            with self.lock:
                restored = state.restore_models(self.engine, cp.state, skip=[m for m, o in self.owner.items()
                                                                             if o != tp])
            for mid in restored:
                self.owner[mid] = tp
            if self.extras is not None:
                with self.lock:
                    self.extras.restore(tp, cp.state.get("extras"))
                for mid in self.extras.models_of(tp):
                    self.owner.setdefault(mid, tp)
            start[tp] = cp.offset
            result = "restored"
            if c is not None and c >= 0 and c != cp.offset:
                result = "behind_commit" if cp.offset < c else "ahead_of_commit"
                log.warning("%s[%d]: checkpoint covers offsets before %d, the group committed %d; resuming at %d "
                            "(the checkpoint's state belongs to that position)", tp[0], tp[1], cp.offset, c,
                            cp.offset)
            self.metrics.restores.labels(result).inc()
            log.info("%s[%d]: restored %d model(s) from checkpoint at offset %d written by %s", tp[0], tp[1],
                     len(restored), cp.offset, cp.writer or "?")
        self.metrics.owned_models.set(len(self.owner))
        return start

    def release(self, tps: Iterable[TP], event: str) -> None:
        """Drop the state of the models these partitions own (they now live elsewhere, or will be restored)."""
        gone = set(tps)
        self.metrics.rebalances.labels(event).inc(len(gone))
        with self.lock:
            for mid, tp in list(self.owner.items()):
                if tp in gone:
                    if self.store is not None:  # without a store, keeping the state is the lesser loss
                        state.reset_model(self.engine, mid, self._initial.get(mid), self._pristine[mid])
                    del self.owner[mid]
            if self.extras is not None and self.store is not None:
                self.extras.release(sorted(gone))
        self.dirty -= gone
        self.metrics.owned_models.set(len(self.owner))

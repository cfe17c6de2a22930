"""Crash-safe engine state: checkpoint records, their stores, and the partition-ownership coordinator.

See docs/guarantees.md for the promises and docs/operations.md for running it.
"""
from __future__ import annotations

from stream_monitor.checkpoint.coordinator import Checkpointer
from stream_monitor.checkpoint.records import CheckpointError, PartitionCheckpoint, checkpoint_key
from stream_monitor.checkpoint.store import CheckpointStore, DirectoryCheckpointStore, KafkaCheckpointStore

__all__ = ["CheckpointError", "CheckpointStore", "Checkpointer", "DirectoryCheckpointStore",
           "KafkaCheckpointStore", "PartitionCheckpoint", "checkpoint_key"]

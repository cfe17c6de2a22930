"""One checkpoint record: the state of the models of one input partition, and the offset it covers.

State and offset travel in one record on purpose: whatever store holds it, the
pair is written atomically, so a restore never applies state to a position it
does not describe (docs/guarantees.md, "Commit and snapshot").

Wire format: ``SMCP`` + one format byte + zlib(JSON). The JSON envelope names the
group, topic, partition and next offset; ``state`` is :mod:`stream_monitor.state`'s
document. Keys are ``<group>/<topic>/<partition>``.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream_monitor.errors import StreamMonitorError

MAGIC = b"SMCP"
RECORD_FORMAT = 1

TopicPartitionKey = tuple[str, int]


class CheckpointError(StreamMonitorError):
    """A checkpoint could not be written or read (the offsets it would cover are then not committed)."""


def frame(magic: bytes, record_format: int, body: Any, level: int = 6) -> bytes:
    """``magic`` + one format byte + zlib(JSON): the wire shape of checkpoint and partial records."""
    return magic + bytes([record_format]) + zlib.compress(json.dumps(body, separators=(",", ":"),
                                                                     allow_nan=True).encode(), level)


def unframe(data: bytes, magic: bytes, record_format: int, what: str, error: type[StreamMonitorError],
            where: str) -> Any:
    """The JSON body of a :func:`frame`; raises `error` naming `where` if it is not one, newer, or corrupt."""
    n = len(magic)
    if len(data) < n + 1 or data[:n] != magic:
        raise error(f"{where}: not a stream-monitor {what} record")
    if data[n] > record_format:
        raise error(f"{where}: {what} record format {data[n]} is newer than this version reads ({record_format})")
    try:
        return json.loads(zlib.decompress(data[n + 1:]))
    except (zlib.error, ValueError) as exc:
        raise error(f"{where}: corrupt {what} record ({type(exc).__name__})") from None


def checkpoint_key(group_id: str, topic: str, partition: int) -> str:
    return f"{group_id}/{topic}/{partition}"


@dataclass
class PartitionCheckpoint:
    """State of the models owned by one input partition, covering every record before `offset`."""

    group_id: str
    topic: str
    partition: int
    offset: int
    state: dict[str, Any]
    writer: str = ""
    written_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def key(self) -> str:
        return checkpoint_key(self.group_id, self.topic, self.partition)

    @property
    def models(self) -> list[str]:
        return sorted(self.state.get("models", {}))

    def encode(self, level: int = 6) -> bytes:
        envelope = {"group": self.group_id, "topic": self.topic, "partition": self.partition,
                    "offset": self.offset, "writer": self.writer, "written_at": self.written_at,
                    "state": self.state}
        return frame(MAGIC, RECORD_FORMAT, envelope, level)

    @classmethod
    def decode(cls, data: bytes, where: str = "checkpoint") -> PartitionCheckpoint:
        env = unframe(data, MAGIC, RECORD_FORMAT, "checkpoint", CheckpointError, where)
        return cls(group_id=str(env["group"]), topic=str(env["topic"]), partition=int(env["partition"]),
                   offset=int(env["offset"]), state=env["state"], writer=str(env.get("writer", "")),
                   written_at=str(env.get("written_at", "")))

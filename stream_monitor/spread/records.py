"""The record a shard publishes to the partials topic: one pane of one source partition, or a watermark.

Two kinds, one shape:

* ``pane``: the closed pane ``[pane_start_ms, pane_end_ms)`` of one model version as
  built from one source partition's events (every mergeable sketch, per slice, the
  versions seen, the operations and quality accumulators), with its event count;
* ``watermark``: the source partition's watermark, published after the panes it
  closed. Only these advance the merger's view of a source, so a consumer batch that
  ends between a pane and the watermark that closed it can never close a window early.

Ids are deterministic (model, version, pane, source partition; or model, source
partition, watermark): a shard replaying after a crash publishes the same ids, and the
merger replaces, never adds. Wire format: ``SMPR`` + one format byte + zlib(JSON),
like checkpoint records; the key is the model id, so one model's partials land in one
partition and one instance merges them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from stream_monitor.checkpoint.records import frame, unframe
from stream_monitor.contracts.alerts import stable_id
from stream_monitor.errors import StreamMonitorError

MAGIC = b"SMPR"
RECORD_FORMAT = 1

Kind = Literal["pane", "watermark"]


class PartialError(StreamMonitorError):
    """A partials-topic record cannot be read (not ours, newer format, corrupt)."""


def source_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


@dataclass
class PartialRecord:
    """One shard's contribution to a spread model (see the module docstring)."""

    kind: Kind
    model_id: str
    source_topic: str
    source_partition: int
    #: The source partition's watermark (newest event time minus allowed lateness) when this was published.
    watermark_ms: int
    #: :func:`stream_monitor.state.state_fingerprint` and reference version of the shard's model: a merger
    #: refuses partials built under another window / feature configuration or against another reference.
    fingerprint: str
    reference_version: str | None
    model_version: str = ""
    pane_start_ms: int = 0
    pane_end_ms: int = 0
    n_events: int = 0
    #: ``Pane.to_dict()`` of the pane, and the pane's operations / quality accumulators (``to_dict()``).
    pane: dict[str, Any] | None = None
    outcomes: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return source_key(self.source_topic, self.source_partition)

    @property
    def partial_id(self) -> str:
        if self.kind == "pane":
            return stable_id("pane", self.model_id, self.model_version, str(self.pane_start_ms), self.source_topic,
                             str(self.source_partition))
        return stable_id("watermark", self.model_id, self.source_topic, str(self.source_partition),
                         str(self.watermark_ms))

    def encode(self, level: int = 6) -> bytes:
        body = {"kind": self.kind, "id": self.partial_id, "model_id": self.model_id,
                "model_version": self.model_version, "pane_start_ms": self.pane_start_ms,
                "pane_end_ms": self.pane_end_ms, "source_topic": self.source_topic,
                "source_partition": self.source_partition, "watermark_ms": self.watermark_ms,
                "fingerprint": self.fingerprint, "reference_version": self.reference_version,
                "n_events": self.n_events, "pane": self.pane, "outcomes": self.outcomes}
        return frame(MAGIC, RECORD_FORMAT, body, level)

    @classmethod
    def decode(cls, data: bytes | None, where: str = "partial") -> PartialRecord:
        d = unframe(data or b"", MAGIC, RECORD_FORMAT, "partial", PartialError, where)  # None (no value): not ours
        try:
            kind = d["kind"]
            if kind not in ("pane", "watermark"):
                raise ValueError(kind)
            return cls(kind=kind, model_id=str(d["model_id"]), source_topic=str(d["source_topic"]),
                       source_partition=int(d["source_partition"]), watermark_ms=int(d["watermark_ms"]),
                       fingerprint=str(d["fingerprint"]), reference_version=d.get("reference_version"),
                       model_version=str(d.get("model_version", "")), pane_start_ms=int(d.get("pane_start_ms", 0)),
                       pane_end_ms=int(d.get("pane_end_ms", 0)), n_events=int(d.get("n_events", 0)),
                       pane=d.get("pane"), outcomes=dict(d.get("outcomes") or {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise PartialError(f"{where}: corrupt partial record ({type(exc).__name__})") from None

"""The shard side of a spread model: panes from one source partition's events, published when final.

A shard is the model's state as built from one input partition: its panes, its
watermark, its tracked slice values and its operations / quality accumulators. It
takes the engine's routing unchanged (lateness per row against the shard's own
watermark, one vector call per sketch), but never evaluates a window: a pane
``[p, p + slide)`` is final once the shard's watermark reaches ``p + size`` (no event
of it can be accepted any more, the same rule the engine's lateness check uses), and
is then published as a ``pane`` partial and dropped. A ``watermark`` partial follows
the panes each time the watermark crosses a pane boundary, so the merger can close
windows even when a partition got no event of the model in a pane.

The watermark of a shard is its partition's: it also advances with the event times of
the other models on the partition, so a partition that carries traffic keeps the
merger going even when the spread model is quiet on it.
"""
from __future__ import annotations

from typing import Any

from stream_monitor.columns import ColumnBatch
from stream_monitor.columns import _route as route_rows  # the engine's own routing: same lateness, panes, slices
from stream_monitor.engine import Engine, ModelMonitor
from stream_monitor.engine_types import EngineOutput
from stream_monitor.spread.records import PartialRecord
from stream_monitor.state import _panes_in, _panes_out, state_fingerprint
from stream_monitor.windows import Watermark


def shard_monitor(template: ModelMonitor) -> ModelMonitor:
    """A fresh, empty monitor with the model's configuration, feature lists and (file) reference."""
    mm = ModelMonitor(config=template.config, numeric_features=list(template.numeric_features),
                      categorical_features=list(template.categorical_features), reference=template.reference,
                      watermark=Watermark(template.watermark.lateness_ms),
                      embedding_features=list(template.embedding_features), spaces=dict(template.spaces))
    if template.outcomes is not None:
        mm.outcomes = template.outcomes.empty()
    return mm


class Shard:
    """One spread model on one source partition."""

    def __init__(self, template: ModelMonitor, topic: str, partition: int) -> None:
        self.mm = shard_monitor(template)
        self.topic, self.partition = topic, partition
        self.fingerprint = state_fingerprint(self.mm)
        #: The last watermark published (None: none yet); a new one goes out when a pane boundary is crossed.
        self.published_ms: int | None = None

    @property
    def model_id(self) -> str:
        return self.mm.config.model_id

    def process(self, engine: Engine, batch: ColumnBatch | None, newest_ms: int | None) -> EngineOutput:
        """Route the model's rows of one partition batch into panes; `newest_ms`: the partition's newest event time."""
        out = EngineOutput()
        if batch is not None and len(batch):
            route_rows(engine, self.mm, batch, out)
        if newest_ms is not None:
            self.mm.watermark.observe(newest_ms)
        return out

    def final(self) -> list[PartialRecord]:
        """Partials of the panes the watermark has finalised, then the watermark if it crossed a pane boundary."""
        wm = self.mm.watermark.value
        if wm is None:
            return []
        size, slide = self.mm.size_ms, self.mm.slide_ms
        ref = self.mm.reference.profile_id if self.mm.reference is not None else None
        out: list[PartialRecord] = []
        for key in sorted((k for k in self.mm.panes if k[1] + size <= wm), key=lambda k: (k[1], k[0])):
            pane = self.mm.panes.pop(key)
            outcomes: dict[str, Any] = {}
            if self.mm.outcomes is not None:
                ops = self.mm.outcomes.ops_panes.pop(key, None)
                quality = self.mm.outcomes.quality_panes.pop(key, None)
                outcomes = {"ops": ops.to_dict() if ops is not None else None,
                            "quality": quality.to_dict() if quality is not None else None}
            out.append(PartialRecord(kind="pane", model_id=self.model_id, source_topic=self.topic,
                                     source_partition=self.partition, watermark_ms=wm, fingerprint=self.fingerprint,
                                     reference_version=ref, model_version=key[0], pane_start_ms=key[1],
                                     pane_end_ms=pane.end_ms, n_events=pane.n_events, pane=pane.to_dict(),
                                     outcomes=outcomes))
        if out or self.published_ms is None or wm // slide > self.published_ms // slide:
            out.append(PartialRecord(kind="watermark", model_id=self.model_id, source_topic=self.topic,
                                     source_partition=self.partition, watermark_ms=wm, fingerprint=self.fingerprint,
                                     reference_version=ref))
            self.published_ms = wm
        return out

    # -- checkpoint ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        mm = self.mm
        return {"fingerprint": self.fingerprint, "max_event_ms": mm.watermark.max_event_ms,
                "published_ms": self.published_ms,
                "panes": _panes_out(mm.panes),
                "slice_values": {k: list(v) for k, v in mm.slice_values.items()},
                "outcomes": mm.outcomes.to_dict() if mm.outcomes is not None else None}

    def restore(self, data: dict[str, Any]) -> bool:
        """Put a snapshot back; False (shard left empty) if it was taken under another configuration."""
        if data.get("fingerprint") != self.fingerprint:
            return False
        mm = self.mm
        mm.watermark.max_event_ms = data["max_event_ms"]
        self.published_ms = data["published_ms"]
        mm.panes = _panes_in(mm, data["panes"])
        mm.slice_values = {k: list(v) for k, v in data["slice_values"].items()}
        if mm.outcomes is not None and data.get("outcomes"):
            mm.outcomes.restore(data["outcomes"])
        return True

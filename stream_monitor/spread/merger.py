"""The merger side of a spread model: partial panes of every source partition in, windows evaluated once.

The merger keeps, per (model version, pane), the newest partial of each source
partition (keyed by source, so a replayed partial replaces its earlier copy and never
adds to it), and each source's watermark (the highest seen: a replay cannot move it
back). The model's watermark is the *minimum* over all expected source partitions: a
window is evaluated only when every source has closed all of its panes, and by then
every pane partial of it has arrived, because a shard publishes a pane before the
watermark that finalised it on the same partition of the partials topic.

Evaluation is the engine's own: the merged panes (and their operations / quality
accumulators) are put in the model's monitor, the engine closes the due windows
exactly as for an unspread model (statistics, policy, alerts, decisions), and the
panes go back out. So the engine's model state (policy, incidents, window
bookkeeping) is checkpointed as any model's, and the partials as this module's state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from stream_monitor.engine import Engine, ModelMonitor
from stream_monitor.engine_types import EngineOutput
from stream_monitor.performance.operations import OperationsAccumulator
from stream_monitor.performance.quality import QualityAccumulator
from stream_monitor.performance.tracker import merged_into
from stream_monitor.spread.records import PartialRecord
from stream_monitor.state import state_fingerprint
from stream_monitor.window_state import Pane

Result = Literal["merged", "replaced", "stale", "refused", "watermark"]


@dataclass
class Part:
    """One source partition's pane."""

    partial_id: str
    pane: Pane
    outcomes: dict[str, Any]


class Merge:
    """The merge state of one spread model on the instance owning its partials partition."""

    def __init__(self, mm: ModelMonitor) -> None:
        self.mm = mm
        self.fingerprint = state_fingerprint(mm)
        self.watermarks: dict[str, int] = {}
        self.parts: dict[tuple[str, int], dict[str, Part]] = {}
        #: The model watermark up to which windows were evaluated (and their panes dropped).
        self.closed_ms: int | None = None

    @property
    def model_id(self) -> str:
        return self.mm.config.model_id

    def add(self, rec: PartialRecord) -> Result:
        ref = self.mm.reference.profile_id if self.mm.reference is not None else None
        if rec.fingerprint != self.fingerprint or rec.reference_version != ref:
            return "refused"
        if rec.kind == "watermark":
            self.watermarks[rec.source] = max(rec.watermark_ms, self.watermarks.get(rec.source, rec.watermark_ms))
            return "watermark"
        if rec.pane is None:
            return "refused"
        if self.closed_ms is not None and rec.pane_start_ms + self.mm.size_ms <= self.closed_ms:
            return "stale"  # a replay of a pane whose windows were already evaluated
        key = (rec.model_version, rec.pane_start_ms)
        parts = self.parts.setdefault(key, {})
        replaced = rec.source in parts
        parts[rec.source] = Part(rec.partial_id, Pane.from_dict(rec.pane, self.mm.embedding_spaces()), rec.outcomes)
        return "replaced" if replaced else "merged"

    def watermark(self, sources: list[str]) -> int | None:
        """The minimum watermark over `sources`; None while any of them has not reported one."""
        if not sources or any(s not in self.watermarks for s in sources):
            return None
        return min(self.watermarks[s] for s in sources)

    def evaluate(self, engine: Engine, sources: list[str]) -> EngineOutput:
        """Evaluate every window the minimum source watermark has passed, through the engine."""
        wm = self.watermark(sources)
        if wm is None or (self.closed_ms is not None and wm <= self.closed_ms):
            return EngineOutput()
        mm = self.mm
        mm.watermark.max_event_ms = wm + mm.watermark.lateness_ms
        due = {key: [parts[s] for s in sorted(parts)] for key, parts in self.parts.items() if key[1] < wm}
        mm.panes = {key: _merged([p.pane for p in parts]) for key, parts in sorted(due.items())}
        if mm.outcomes is not None:
            llm = mm.config.llm
            mm.outcomes.ops_panes = {
                key: merged_into([OperationsAccumulator.from_dict(llm, p.outcomes["ops"]) for p in parts
                                   if p.outcomes.get("ops")], OperationsAccumulator(llm))
                for key, parts in due.items()}
            mm.outcomes.quality_panes = {
                key: merged_into([QualityAccumulator.from_dict(p.outcomes["quality"]) for p in parts
                                   if p.outcomes.get("quality")], QualityAccumulator())
                for key, parts in due.items() if any(p.outcomes.get("quality") for p in parts)}
        try:
            out = engine.close_due(mm.config.model_id)
        finally:
            mm.panes = {}  # the partials are the state; the engine's copy would be checkpointed twice
            if mm.outcomes is not None:
                mm.outcomes.ops_panes, mm.outcomes.quality_panes = {}, {}
        for key in [k for k in self.parts if k[1] + mm.size_ms <= wm]:
            del self.parts[key]
        self.closed_ms = wm
        return out

    # -- checkpoint ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "watermarks": dict(sorted(self.watermarks.items())),
                "closed_ms": self.closed_ms,
                "parts": [[v, s, src, part.partial_id, part.pane.to_dict(), part.outcomes]
                          for (v, s), parts in sorted(self.parts.items()) for src, part in sorted(parts.items())]}

    def restore(self, data: dict[str, Any]) -> bool:
        if data.get("fingerprint") != self.fingerprint:
            return False
        self.watermarks = {str(k): int(v) for k, v in data["watermarks"].items()}
        self.closed_ms = data["closed_ms"]
        spaces = self.mm.embedding_spaces()
        self.parts = {}
        for v, s, src, pid, pane, outcomes in data["parts"]:
            self.parts.setdefault((str(v), int(s)), {})[str(src)] = Part(str(pid), Pane.from_dict(pane, spaces),
                                                                          dict(outcomes))
        return True


def _merged(panes: list[Pane]) -> Pane:
    """A new pane: the merge of `panes` in source order (the stored parts are never modified)."""
    merged = panes[0].copy()
    for p in panes[1:]:
        merged.merge(p)
    return merged

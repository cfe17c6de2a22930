"""What the engine keeps per pane: sketches per feature, per tracked slice, detections and versions seen.

A pane is the unit of state: a tumbling window is one pane, a sliding window the
merge of ``size / slide`` consecutive panes. Everything here merges, which is what
makes sliding windows, partial-state merges across instances, and restore cheap.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_monitor.sketches import CategoryCounts, NumericSketch
from stream_monitor.sketches.embedding import EmbeddingSketch, EmbeddingSpace

PREDICTION_SCORE = "prediction.score"
PREDICTION_CLASS = "prediction.class"
OTHER_SLICE = "other"

#: Version-like fields tracked per pane, so a diagnosis can say "the prompt changed inside this window".
VERSION_FIELDS = ("model_version", "llm.prompt_version", "llm.index_version")


def numeric_value(value: object) -> float:
    if value is None or isinstance(value, list | str):
        return np.nan
    return float(value)  # type: ignore[arg-type]


def category_value(value: object) -> str | None:
    if value is None or isinstance(value, list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class FeatureSketches:
    """One sketch per tracked feature: the overall window, or one slice of it."""

    numeric: dict[str, NumericSketch]
    categorical: dict[str, CategoryCounts]
    n_events: int = 0
    embedding: dict[str, EmbeddingSketch] = field(default_factory=dict)

    @classmethod
    def empty(cls, numeric: dict[str, np.ndarray | None], categorical: dict[str, list[str] | None],
              max_categories: int, embedding: dict[str, EmbeddingSketch] | None = None) -> FeatureSketches:
        return cls(
            numeric={name: NumericSketch(edges) for name, edges in numeric.items()},
            categorical={name: CategoryCounts(max_categories, known) for name, known in categorical.items()},
            embedding=dict(embedding or {}),
        )

    def merge(self, other: FeatureSketches) -> None:
        self.n_events += other.n_events
        for name, sketch in other.numeric.items():
            self.numeric[name].merge(sketch)
        for name, counts in other.categorical.items():
            self.categorical[name].merge(counts)
        for name, emb in other.embedding.items():
            if name in self.embedding:
                self.embedding[name].merge(emb)
            else:
                self.embedding[name] = EmbeddingSketch.from_dict(emb.to_dict(), emb.space)

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": {k: v.to_dict() for k, v in self.numeric.items()},
                "categorical": {k: v.to_dict() for k, v in self.categorical.items()},
                "embedding": {k: v.to_dict() for k, v in self.embedding.items()},
                "n_events": self.n_events}

    @classmethod
    def from_dict(cls, d: dict[str, Any], spaces: dict[str, EmbeddingSpace] | None = None) -> FeatureSketches:
        """Embedding sketches need their feature map (the model's `spaces`); it is not in the dict."""
        spaces = spaces or {}
        return cls(numeric={k: NumericSketch.from_dict(v) for k, v in d["numeric"].items()},
                   categorical={k: CategoryCounts.from_dict(v) for k, v in d["categorical"].items()},
                   embedding={k: EmbeddingSketch.from_dict(v, spaces.get(k))
                              for k, v in d.get("embedding", {}).items()},
                   n_events=int(d["n_events"]))

    def copy(self) -> FeatureSketches:
        spaces = {k: v.space for k, v in self.embedding.items()}
        return FeatureSketches.from_dict(self.to_dict(), spaces)


@dataclass
class Pane:
    """State of one model version over one slide interval [start_ms, end_ms) of event time."""

    model_version: str
    start_ms: int
    end_ms: int
    overall: FeatureSketches
    slices: dict[str, FeatureSketches] = field(default_factory=dict)
    detections: Counter[str] = field(default_factory=Counter)
    versions: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return self.overall.n_events

    # Kept for readers of the first engine: a tumbling window is one pane.
    @property
    def numeric(self) -> dict[str, NumericSketch]:
        return self.overall.numeric

    @property
    def categorical(self) -> dict[str, CategoryCounts]:
        return self.overall.categorical

    def merge(self, other: Pane) -> None:
        self.overall.merge(other.overall)
        for key, sk in other.slices.items():
            if key in self.slices:
                self.slices[key].merge(sk)
            else:
                self.slices[key] = sk.copy()
        self.detections.update(other.detections)
        for name, counts in other.versions.items():
            self.versions.setdefault(name, Counter()).update(counts)
        self.start_ms = min(self.start_ms, other.start_ms)
        self.end_ms = max(self.end_ms, other.end_ms)

    def to_dict(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "start_ms": self.start_ms, "end_ms": self.end_ms,
                "overall": self.overall.to_dict(), "slices": {k: v.to_dict() for k, v in self.slices.items()},
                "detections": dict(self.detections), "versions": {k: dict(v) for k, v in self.versions.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any], spaces: dict[str, EmbeddingSpace] | None = None) -> Pane:
        return cls(model_version=d["model_version"], start_ms=int(d["start_ms"]), end_ms=int(d["end_ms"]),
                   overall=FeatureSketches.from_dict(d["overall"], spaces),
                   slices={k: FeatureSketches.from_dict(v, spaces) for k, v in d["slices"].items()},
                   detections=Counter(d["detections"]),
                   versions={k: Counter(v) for k, v in d["versions"].items()})

    def copy(self) -> Pane:
        return Pane(model_version=self.model_version, start_ms=self.start_ms, end_ms=self.end_ms,
                    overall=self.overall.copy(), slices={k: v.copy() for k, v in self.slices.items()},
                    detections=Counter(self.detections), versions={k: Counter(v) for k, v in self.versions.items()})


WindowState = Pane  # the first engine's name for a tumbling window's state

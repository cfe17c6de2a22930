"""The core: route events -> update pane sketches and detectors -> close windows -> compare -> apply policy.

The engine does no I/O: events in, :class:`EngineOutput` out. The Kafka source and
the file replay feed it the same way, which is why ``replay`` gives the same alerts
(same ids) as ``run`` on the same input.

Per batch, events are grouped by (model, version, pane) and each feature becomes one
numpy column, so every sketch is updated with one vector call per group. Results do
not depend on how the input is cut into batches: lateness is decided per event
against the watermark, and windows close in event-time order.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from stream_monitor.columns import ColumnBatch, columns_from_events, process_columns, update_pane
from stream_monitor.config import ModelConfig, MonitorConfig
from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.contracts.events import LabelEvent, PredictionEvent
from stream_monitor.decisions.engine import DecisionEngine
from stream_monitor.detectors import RiverDetector, make_detector
from stream_monitor.engine_types import EngineOutput, FeatureResult, WindowReport
from stream_monitor.errors import ConfigError, ProfileError
from stream_monitor.performance import hooks as outcome_hooks
from stream_monitor.performance.freshness import FreshnessTracker
from stream_monitor.performance.tracker import ModelOutcomes
from stream_monitor.policy.engine import PolicyEngine
from stream_monitor.reference import (
    CategoricalReference,
    EmbeddingReference,
    FeatureReference,
    NumericReference,
    ReferenceProfile,
    build_profile,
)
from stream_monitor.sketches import CategoryCounts, NumericSketch
from stream_monitor.sketches.embedding import EmbeddingSketch, EmbeddingSpace, RandomFourierFeatures
from stream_monitor.stats.compare import compare_categorical, compare_embedding, compare_numeric
from stream_monitor.window_state import (
    OTHER_SLICE,
    PREDICTION_CLASS,
    PREDICTION_SCORE,
    FeatureSketches,
    Pane,
    WindowState,
)
from stream_monitor.windows import Watermark, from_ms, to_ms

__all__ = ["PREDICTION_CLASS", "PREDICTION_SCORE", "Engine", "ModelMonitor", "WindowState", "feature_kinds"]


EventSource = Iterable[PredictionEvent] | Callable[[], Iterable[PredictionEvent]]
MAX_VERSIONS = 3  # model versions per model whose latest window is exported


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ModelMonitor:
    """All state of one configured model: features, reference, open panes, watermark, detectors, slices."""

    config: ModelConfig
    numeric_features: list[str]
    categorical_features: list[str]
    reference: ReferenceProfile | None
    watermark: Watermark
    embedding_features: list[str] = field(default_factory=list)
    spaces: dict[str, EmbeddingSpace] = field(default_factory=dict)
    panes: dict[tuple[str, int], Pane] = field(default_factory=dict)
    next_close: dict[str, int] = field(default_factory=dict)
    reference_panes: dict[tuple[str, int], Pane] = field(default_factory=dict)
    reference_windows: int = 0
    slice_values: dict[str, list[str]] = field(default_factory=dict)
    detectors: dict[tuple[str, str], RiverDetector] = field(default_factory=dict)
    last_versions: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: Label join, performance, operations, quality and LLM state (stream_monitor.performance).
    outcomes: ModelOutcomes | None = None

    @property
    def size_ms(self) -> int:
        return int(self.config.window.size_seconds * 1000)

    @property
    def slide_ms(self) -> int:
        return int(self.config.window.slide * 1000)

    # Kept for readers of the first engine (tumbling: a window is a pane).
    @property
    def windows(self) -> dict[tuple[str, int], Pane]:
        return self.panes

    def _refs(self, slice_key: str | None) -> dict[str, FeatureReference]:
        if self.reference is None:
            return {}
        if slice_key is not None and slice_key in self.reference.slices:
            return self.reference.slices[slice_key]
        return self.reference.features

    def empty_sketches(self, slice_key: str | None = None) -> FeatureSketches:
        refs = self._refs(slice_key)
        numeric = {f: (r.edges if isinstance(r := refs.get(f), NumericReference) else None)
                   for f in self.numeric_features}
        categorical = {f: (r.categories if isinstance(r := refs.get(f), CategoricalReference) else None)
                       for f in self.categorical_features}
        return FeatureSketches.empty(numeric, categorical, self.config.reference.max_categories,
                                     {f: self.embedding_sketch(f) for f in self.embedding_features})

    def embedding_sketch(self, name: str) -> EmbeddingSketch:
        """In the reference's feature space once there is one; before, in the model's shared space, with
        second moments kept so the reference's principal components can be computed from the merge."""
        ref = self.reference.features.get(name) if self.reference is not None else None
        if isinstance(ref, EmbeddingReference):
            return ref.new_sketch()
        return EmbeddingSketch(self.spaces[name], track_covariance=True)

    def embedding_spaces(self) -> dict[str, EmbeddingSpace]:
        out = dict(self.spaces)
        if self.reference is not None:
            out.update({n: r.space() for n, r in self.reference.features.items() if isinstance(r, EmbeddingReference)})
        return out

    def new_pane(self, version: str, start_ms: int) -> Pane:
        return Pane(model_version=version, start_ms=start_ms, end_ms=start_ms + self.slide_ms,
                    overall=self.empty_sketches())

    # Kept for readers of the first engine.
    def new_window(self, version: str, start_ms: int) -> Pane:
        return self.new_pane(version, start_ms)

    def slice_of(self, key: str, value: str) -> str:
        """The tracked slice label for a tag value; values beyond the cap fold into 'other'."""
        tracked = self.slice_values.setdefault(key, [])
        if value not in tracked and len(tracked) < self.config.slices.max_values and value != OTHER_SLICE:
            tracked.append(value)
        return f"{key}={value if value in tracked else OTHER_SLICE}"


def feature_kinds(model: ModelConfig, reference: ReferenceProfile | None) -> dict[str, str]:
    """Declared features win; otherwise the reference profile's feature list is the schema."""
    kinds: dict[str, str] = {f.name: f.kind for f in model.features}
    if not kinds and reference is not None:
        kinds = {name: f.kind for name, f in reference.features.items() if not name.startswith("prediction.")}
    return kinds


class Engine:
    """Pure drift engine over prediction events for the configured models."""

    def __init__(
        self,
        config: MonitorConfig,
        references: dict[str, ReferenceProfile] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.config = config
        self.clock = clock
        self.models: dict[str, ModelMonitor] = {}
        self.latest: dict[tuple[str, str], WindowReport] = {}
        #: The last ``service.history_windows`` closed windows per (model, version) and alerts per model:
        #: bounded, for the status page and reports (docs/report.md); not checkpointed.
        self.history: dict[tuple[str, str], deque[WindowReport]] = {}
        self.alert_history: dict[str, deque[AlertEvent]] = {}
        self.policy = PolicyEngine()
        #: Retrain / promote / hold / rollback decisions (models with a `retraining` section).
        self.decisions = DecisionEngine(config)
        references = dict(references or {})
        for m in config.models:
            ref = references.get(m.model_id)
            if ref is None and m.reference.path is not None:
                ref = ReferenceProfile.load(m.reference.path)
            if ref is not None and ref.model_id != m.model_id:
                raise ProfileError(f"reference profile {ref.profile_id} is for model {ref.model_id!r}, "
                                   f"not {m.model_id!r}")
            kinds = feature_kinds(m, ref)
            numeric = [n for n, k in kinds.items() if k == "numeric"]
            categorical = [n for n, k in kinds.items() if k == "categorical"]
            embedding = [n for n, k in kinds.items() if k == "embedding"]
            if m.monitor_prediction:
                numeric.append(PREDICTION_SCORE)
                categorical.append(PREDICTION_CLASS)
            for d in m.detectors:
                if d.signal not in numeric:
                    raise ConfigError(f"models.{m.model_id}.detectors.{d.id}.signal: {d.signal!r} is not a numeric "
                                      f"feature of the model; choose from {', '.join(numeric)}")
                make_detector(d.type, d.params)  # validate parameters now, not at the first event
            self.models[m.model_id] = ModelMonitor(
                config=m, numeric_features=numeric, categorical_features=categorical, reference=ref,
                watermark=Watermark(int(m.window.allowed_lateness_seconds * 1000)),
                embedding_features=embedding,
                spaces={n: EmbeddingSpace(RandomFourierFeatures(
                    m.reference.embedding_frequencies, m.reference.embedding_seed, m.reference.embedding_bandwidth))
                    for n in embedding},
            )
        #: Performance, quality and freshness trackers (docs/performance-monitoring.md).
        self.freshness: FreshnessTracker = outcome_hooks.attach(self)

    def feature_kinds(self) -> dict[str, dict[str, str]]:
        """model_id -> feature name -> kind, for the decoder's type checks."""
        return {mid: feature_kinds(mm.config, mm.reference) for mid, mm in self.models.items()}

    # -- ingest -------------------------------------------------------------------------

    def process(self, events: Sequence[PredictionEvent]) -> EngineOutput:
        """Add a batch of valid events, then close every window the watermark has passed.

        Events become one column batch per model (arrival order kept) and take the
        same path as the decoders' columns: :meth:`process_columns`.
        """
        by_model: dict[str, list[PredictionEvent]] = defaultdict(list)
        for ev in events:
            by_model[ev.model_id].append(ev)
        return self.process_columns([self.columns(mid, evs) for mid, evs in by_model.items()])

    def columns(self, model_id: str, events: Sequence[PredictionEvent]) -> ColumnBatch:
        mm = self.models[model_id]
        return columns_from_events(model_id, mm.numeric_features, mm.categorical_features, events,
                                   mm.embedding_features)

    def _update(self, mm: ModelMonitor, pane: Pane, events: list[PredictionEvent]) -> None:
        update_pane(mm, pane, self.columns(mm.config.model_id, events))

    def process_columns(self, batches: Sequence[ColumnBatch]) -> EngineOutput:
        """The hot path: :meth:`process` for rows already decoded into columns (one batch per model).

        Same lateness, panes, slices, detectors and closes as ``process`` on the same rows
        in the same order (``tests/perf/test_columns_equivalence.py``), with numpy routing
        and one vector call per sketch instead of per-event Python.
        """
        outcome_hooks.seen(self, batches)
        if self.decisions.paired_models:
            self.decisions.observe_columns(batches)  # champion/challenger: answers of each request, by event_id
        return outcome_hooks.collected(self, process_columns(self, batches))

    def process_labels(self, labels: Sequence[LabelEvent]) -> EngineOutput:
        """Join delayed labels to their predictions; closed windows whose performance changed are in ``updates``."""
        out = outcome_hooks.process_labels(self, labels)
        self.decisions.observe_labels(labels, out.updates, self.clock())  # pairs; fresher gate figures
        return out

    def tick(self, now: datetime | None = None) -> EngineOutput:
        """Processing-time check (the source calls it every poll): freshness alerts for silent streams, and
        scheduled retraining decisions (stream_monitor.decisions; ``now`` is injected in tests)."""
        out = outcome_hooks.tick(self, now)
        out.decisions.extend(self.decisions.tick(now if now is not None else self.clock()))
        return out

    # -- close and evaluate ---------------------------------------------------------------

    def flush(self) -> EngineOutput:
        """Close every open window (end of a replayed file)."""
        out = EngineOutput()
        for mm in self.models.values():
            out.extend(self._close(mm, final=True))
        out.extend(outcome_hooks.finish(self))
        return out

    def close_due(self, model_id: str) -> EngineOutput:
        """Close the windows of one model that its watermark has passed.

        For state merged from elsewhere: the spread merger (:mod:`stream_monitor.spread`)
        puts the merged panes and the sources' common watermark in the model's monitor,
        then the windows take the same path as an unspread model's.
        """
        return self._close(self.models[model_id], final=False)

    def _close(self, mm: ModelMonitor, *, final: bool) -> EngineOutput:
        out = EngineOutput()
        wm = mm.watermark.value
        if not mm.panes or (wm is None and not final):
            return out
        size, slide = mm.size_ms, mm.slide_ms
        due: list[tuple[int, str]] = []
        for version in sorted({v for v, _ in mm.panes}):
            starts = [s for v, s in mm.panes if v == version]
            first = max(min(starts) - size + slide, mm.next_close.get(version, min(starts) - size + slide))
            last = max(starts) if final else (wm - size if wm is not None else None)
            if last is None:
                continue
            for s in range(first, last + 1, slide):
                if any(s <= p < s + size for p in starts):
                    due.append((s, version))
        for s, version in sorted(due):
            mm.next_close[version] = s + slide
            panes = [p for (v, start), p in sorted(mm.panes.items()) if v == version and s <= start < s + size]
            report = self._report(mm, version, s, panes)
            out.reports.append(report)
            self._keep_latest(report)
            alerts = self.policy.evaluate(mm.config, report, self.clock(), mm.reference)
            alerts += outcome_hooks.on_close(self, mm, report, s)
            self._remember(report, alerts)
            out.alerts.extend(alerts)
        if out.reports and self.decisions.enabled_for(mm.config.model_id):
            closed = [(r, [a for a in out.alerts
                           if a.model_version == r.model_version and a.window_end == r.window_end])
                      for r in out.reports]
            out.decisions.extend(self.decisions.evaluate_closed(mm.config, closed, self.clock()))
        horizon = None if final else wm
        for key in [k for k in mm.panes if horizon is None or k[1] + size <= horizon]:
            del mm.panes[key]
        return out

    def _remember(self, report: WindowReport, alerts: list[AlertEvent]) -> None:
        keep = self.config.service.history_windows
        self.history.setdefault((report.model_id, report.model_version), deque(maxlen=keep)).append(report)
        if alerts:
            self.alert_history.setdefault(report.model_id, deque(maxlen=keep)).extend(alerts)

    def _keep_latest(self, report: WindowReport) -> None:
        """Keep the latest report per model version, for the newest MAX_VERSIONS versions of each model only:
        a retired version's drift gauges must not be exported (and alerted on) forever."""
        self.latest[(report.model_id, report.model_version)] = report
        mine = sorted((r.window_end, v) for (m, v), r in self.latest.items() if m == report.model_id)
        for _end, version in mine[:-MAX_VERSIONS]:
            del self.latest[(report.model_id, version)]

    def _merged(self, panes: list[Pane]) -> Pane:
        if len(panes) == 1:
            return panes[0]
        merged = panes[0].copy()
        for p in panes[1:]:
            merged.merge(p)
        return merged

    def _report(self, mm: ModelMonitor, version: str, start_ms: int, panes: list[Pane]) -> WindowReport:
        window = self._merged(panes)
        report = WindowReport(
            model_id=mm.config.model_id, model_version=version,
            window_start=from_ms(start_ms), window_end=from_ms(start_ms + mm.size_ms),
            n_events=window.n_events, role="no_reference", reference_version=None,
            versions={k: dict(v) for k, v in window.versions.items()},
            previous_versions=mm.last_versions.get(version, {}),
        )
        mm.last_versions[version] = {k: sorted(v) for k, v in window.versions.items()}
        if mm.reference is None:
            report.role = "reference"
            for p in panes:
                mm.reference_panes[(p.model_version, p.start_ms)] = p
            mm.reference_windows += 1
            if mm.reference_windows >= mm.config.reference.from_stream_windows:
                mm.reference = self._reference_from(mm, list(mm.reference_panes.values()))
                mm.reference_panes = {}
            return report
        report.role = "evaluated"
        report.reference_version = mm.reference.profile_id
        report.features = dict(self._compare(mm.reference.features, window.overall))
        for label, sk in sorted(window.slices.items()):
            refs = mm.reference.slices.get(label, mm.reference.features)
            report.slices[label] = dict(self._compare(refs, sk))
        for d in mm.config.detectors:
            result = report.features.get(d.signal)
            if result is not None:
                result.stats[f"detections.{d.id}"] = float(window.detections.get(d.id, 0))
        report.detections = dict(window.detections)
        return report

    @staticmethod
    def _compare(refs: dict[str, FeatureReference], sketches: FeatureSketches) -> Iterable[tuple[str, FeatureResult]]:
        for name, sketch in sketches.numeric.items():
            nref = refs.get(name)
            if isinstance(nref, NumericReference):
                yield name, compare_numeric(name, nref, sketch)
        for name, counts in sketches.categorical.items():
            cref = refs.get(name)
            if isinstance(cref, CategoricalReference):
                yield name, compare_categorical(name, cref, counts)
        for name, emb in sketches.embedding.items():
            eref = refs.get(name)
            if isinstance(eref, EmbeddingReference):
                yield name, compare_embedding(name, eref, emb)

    # -- reference ------------------------------------------------------------------------

    def build_reference(self, model_id: str, events: EventSource, source: str, chunk: int = 10_000
                        ) -> ReferenceProfile:
        """A profile from a finite set of events (`reference build`): all of them count as one span.

        Given a callable that yields the events afresh (or a list), the build takes two
        passes so that reference bin counts are exact: the first finds the quantile
        edges, the second counts each bin (slices share the overall edges). A one-shot
        iterator gets one pass, with bin counts estimated from the KLL sketch.
        """
        if callable(events) or isinstance(events, list | tuple):
            again: Callable[[], Iterable[PredictionEvent]] = events if callable(events) else (lambda: events)
            first = self._one_pass(model_id, again(), source, chunk)
            mm = self.models[model_id]
            saved = mm.reference
            mm.reference = dataclasses.replace(first, slices={})
            try:
                edges = {name: f.edges for name, f in first.features.items() if isinstance(f, NumericReference)}
                return self._one_pass(model_id, again(), source, chunk, edges=edges)
            finally:
                mm.reference = saved
        return self._one_pass(model_id, events, source, chunk)

    def _one_pass(self, model_id: str, events: Iterable[PredictionEvent], source: str, chunk: int,
                  edges: dict[str, np.ndarray] | None = None) -> ReferenceProfile:
        mm = self.models[model_id]
        pane = mm.new_pane("reference", 0)
        first: int | None = None
        last: int | None = None
        buffer: list[PredictionEvent] = []
        for ev in events:
            ts = to_ms(ev.timestamp)
            first = ts if first is None else min(first, ts)
            last = ts if last is None else max(last, ts)
            buffer.append(ev)
            if len(buffer) >= chunk:
                self._update(mm, pane, buffer)
                buffer = []
        if buffer:
            self._update(mm, pane, buffer)
        if first is None or last is None:
            raise ProfileError(f"{source}: no valid events for model {model_id!r}; nothing to build a reference from")
        pane.start_ms, pane.end_ms = first, last
        return self._reference_from(mm, [pane], source=source, edges=edges)

    def _reference_from(self, mm: ModelMonitor, panes: list[Pane], source: str | None = None,
                        edges: dict[str, np.ndarray] | None = None) -> ReferenceProfile:
        cap = 10 * mm.config.reference.max_categories

        embedding = {f: EmbeddingSketch(mm.spaces[f], track_covariance=True) for f in mm.embedding_features}
        for p in panes:
            for f, e in p.overall.embedding.items():
                embedding[f].merge(e)

        def combined(parts: list[FeatureSketches]) -> tuple[dict[str, NumericSketch], dict[str, CategoryCounts]]:
            numeric = {f: NumericSketch() for f in mm.numeric_features}
            categorical = {f: CategoryCounts(cap) for f in mm.categorical_features}
            for part in parts:
                for f, s in part.numeric.items():
                    numeric[f].merge(s)
                for f, c in part.categorical.items():
                    categorical[f].merge(c)
            return ({f: s for f, s in numeric.items() if s.n > 0},
                    {f: c for f, c in categorical.items() if c.n > 0})

        labels = sorted({label for p in panes for label in p.slices})
        slices = {label: combined([p.slices[label] for p in panes if label in p.slices]) for label in labels}
        numeric, categorical = combined([p.overall for p in panes])
        panes = sorted(panes, key=lambda p: p.start_ms)
        return build_profile(
            mm.config.model_id, numeric, categorical,
            bins=mm.config.reference.bins, max_categories=mm.config.reference.max_categories,
            source=source or f"stream:first {mm.reference_windows} window(s)",
            row_count=sum(p.n_events for p in panes),
            time_span=(from_ms(panes[0].start_ms).isoformat(), from_ms(max(p.end_ms for p in panes)).isoformat()),
            version_basis="content" if source else "span",
            slices=slices,
            edges=dict(edges) if edges else None,  # type: ignore[arg-type]
            embedding={f: e for f, e in embedding.items() if e.n > 0},
            binning=mm.config.reference.binning,
            pca_components=mm.config.reference.pca_components,
        )


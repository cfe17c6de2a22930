"""The core: route events -> update window sketches -> close windows -> compare -> evaluate rules.

The engine does no I/O: events in, :class:`EngineOutput` out. The Kafka source and
the file replay feed it the same way, which is why ``replay`` gives the same alerts
(same ids) as ``run`` on the same input.

Per batch, events are grouped by (model, version, window) and each feature becomes
one numpy column, so every sketch is updated with one vector call per group.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from stream_monitor.config import ModelConfig, MonitorConfig
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.engine_types import EngineOutput, FeatureResult, WindowReport
from stream_monitor.errors import ProfileError
from stream_monitor.policy.rules import evaluate_rules
from stream_monitor.reference import CategoricalReference, NumericReference, ReferenceProfile, build_profile
from stream_monitor.sketches import CategoryCounts, NumericSketch
from stream_monitor.stats.compare import compare_categorical, compare_numeric
from stream_monitor.windows import Watermark, from_ms, to_ms, window_start

PREDICTION_SCORE = "prediction.score"
PREDICTION_CLASS = "prediction.class"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _numeric(value: object) -> float:
    if value is None or isinstance(value, list | str):
        return np.nan
    return float(value)  # type: ignore[arg-type]


def _category(value: object) -> str | None:
    if value is None or isinstance(value, list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class WindowState:
    model_version: str
    start_ms: int
    end_ms: int
    numeric: dict[str, NumericSketch]
    categorical: dict[str, CategoryCounts]
    n_events: int = 0


@dataclass
class ModelMonitor:
    """All state of one configured model: feature kinds, reference, open windows, watermark."""

    config: ModelConfig
    numeric_features: list[str]
    categorical_features: list[str]
    reference: ReferenceProfile | None
    watermark: Watermark
    windows: dict[tuple[str, int], WindowState] = field(default_factory=dict)
    reference_windows: list[WindowState] = field(default_factory=list)

    @property
    def size_ms(self) -> int:
        return int(self.config.window.size_seconds * 1000)

    def _edges(self, name: str) -> np.ndarray | None:
        if self.reference is None:
            return None
        ref = self.reference.features.get(name)
        return ref.edges if isinstance(ref, NumericReference) else None

    def _categories(self, name: str) -> list[str] | None:
        if self.reference is None:
            return None
        ref = self.reference.features.get(name)
        return ref.categories if isinstance(ref, CategoricalReference) else None

    def new_window(self, version: str, start_ms: int) -> WindowState:
        cap = self.config.reference.max_categories
        return WindowState(
            model_version=version,
            start_ms=start_ms,
            end_ms=start_ms + self.size_ms,
            numeric={f: NumericSketch(self._edges(f)) for f in self.numeric_features},
            categorical={f: CategoryCounts(cap, self._categories(f)) for f in self.categorical_features},
        )


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
            if m.monitor_prediction:
                numeric.append(PREDICTION_SCORE)
                categorical.append(PREDICTION_CLASS)
            self.models[m.model_id] = ModelMonitor(
                config=m, numeric_features=numeric, categorical_features=categorical, reference=ref,
                watermark=Watermark(int(m.window.allowed_lateness_seconds * 1000)),
            )

    def feature_kinds(self) -> dict[str, dict[str, str]]:
        """model_id -> feature name -> kind, for the decoder's type checks."""
        return {mid: feature_kinds(mm.config, mm.reference) for mid, mm in self.models.items()}

    # -- ingest -------------------------------------------------------------------------

    def process(self, events: Sequence[PredictionEvent]) -> EngineOutput:
        """Add a batch of valid events, then close every window the watermark has passed."""
        out = EngineOutput()
        groups: dict[tuple[str, str, int], list[PredictionEvent]] = defaultdict(list)
        for ev in events:
            mm = self.models[ev.model_id]
            ts = to_ms(ev.timestamp)
            start = window_start(ts, mm.size_ms)
            wm = mm.watermark.value
            if wm is not None and start + mm.size_ms <= wm:
                out.late[ev.model_id] += 1
                continue
            mm.watermark.observe(ts)
            groups[(ev.model_id, ev.model_version, start)].append(ev)
        for (model_id, version, start), group in groups.items():
            mm = self.models[model_id]
            key = (version, start)
            state = mm.windows.get(key)
            if state is None:
                state = mm.windows[key] = mm.new_window(version, start)
            self._update(mm, state, group)
            out.processed[model_id] += len(group)
        for mm in self.models.values():
            out.extend(self._close(mm, final=False))
        return out

    def _update(self, mm: ModelMonitor, state: WindowState, events: list[PredictionEvent]) -> None:
        state.n_events += len(events)
        count = len(events)
        for name, sketch in state.numeric.items():
            if name == PREDICTION_SCORE:
                col = np.fromiter((_numeric(e.prediction.score) for e in events), np.float64, count)
            else:
                col = np.fromiter((_numeric(e.features.get(name)) for e in events), np.float64, count)
            sketch.update(col)
        for name, counts in state.categorical.items():
            if name == PREDICTION_CLASS:
                values = [e.prediction.class_ for e in events]
            else:
                values = [_category(e.features.get(name)) for e in events]
            present = [v for v in values if v is not None]
            counts.missing += count - len(present)
            counts.update(present)

    # -- close and evaluate ---------------------------------------------------------------

    def flush(self) -> EngineOutput:
        """Close every open window (end of a replayed file)."""
        out = EngineOutput()
        for mm in self.models.values():
            out.extend(self._close(mm, final=True))
        return out

    def _close(self, mm: ModelMonitor, *, final: bool) -> EngineOutput:
        out = EngineOutput()
        wm = mm.watermark.value
        ready = sorted(
            (k for k, w in mm.windows.items() if final or (wm is not None and w.end_ms <= wm)),
            key=lambda k: (k[1], k[0]),
        )
        for key in ready:
            state = mm.windows.pop(key)
            report = self._report(mm, state)
            out.reports.append(report)
            self.latest[(mm.config.model_id, state.model_version)] = report
            out.alerts.extend(evaluate_rules(mm.config, report, self.clock()))
        return out

    def _report(self, mm: ModelMonitor, state: WindowState) -> WindowReport:
        report = WindowReport(
            model_id=mm.config.model_id, model_version=state.model_version,
            window_start=from_ms(state.start_ms), window_end=from_ms(state.end_ms),
            n_events=state.n_events, role="no_reference", reference_version=None,
        )
        if mm.reference is None:
            mm.reference_windows.append(state)
            report.role = "reference"
            if len(mm.reference_windows) >= mm.config.reference.from_stream_windows:
                mm.reference = self._reference_from(mm, mm.reference_windows)
                mm.reference_windows = []
            return report
        report.role = "evaluated"
        report.reference_version = mm.reference.profile_id
        report.features = dict(self._compare(mm.reference, state))
        return report

    @staticmethod
    def _compare(ref: ReferenceProfile, state: WindowState) -> Iterable[tuple[str, FeatureResult]]:
        for name, sketch in state.numeric.items():
            nref = ref.features.get(name)
            if isinstance(nref, NumericReference):
                yield name, compare_numeric(name, nref, sketch)
        for name, counts in state.categorical.items():
            cref = ref.features.get(name)
            if isinstance(cref, CategoricalReference):
                yield name, compare_categorical(name, cref, counts)

    def build_reference(self, model_id: str, events: Iterable[PredictionEvent], source: str,
                        chunk: int = 10_000) -> ReferenceProfile:
        """A profile from a finite set of events (`reference build`): all of them count as one span."""
        mm = self.models[model_id]
        state = mm.new_window("reference", 0)
        first: int | None = None
        last: int | None = None
        buffer: list[PredictionEvent] = []
        for ev in events:
            ts = to_ms(ev.timestamp)
            first = ts if first is None else min(first, ts)
            last = ts if last is None else max(last, ts)
            buffer.append(ev)
            if len(buffer) >= chunk:
                self._update(mm, state, buffer)
                buffer = []
        if buffer:
            self._update(mm, state, buffer)
        if first is None or last is None:
            raise ProfileError(f"{source}: no valid events for model {model_id!r}; nothing to build a reference from")
        state.start_ms, state.end_ms = first, last
        return self._reference_from(mm, [state], source=source)

    def _reference_from(self, mm: ModelMonitor, windows: list[WindowState], source: str | None = None
                        ) -> ReferenceProfile:
        numeric = {f: NumericSketch() for f in mm.numeric_features}
        categorical = {f: CategoryCounts(10 * mm.config.reference.max_categories) for f in mm.categorical_features}
        for w in windows:
            for f, s in w.numeric.items():
                numeric[f].merge(s)
            for f, c in w.categorical.items():
                categorical[f].merge(c)
        numeric = {f: s for f, s in numeric.items() if s.n > 0}
        categorical = {f: c for f, c in categorical.items() if c.n > 0}
        return build_profile(
            mm.config.model_id, numeric, categorical,
            bins=mm.config.reference.bins, max_categories=mm.config.reference.max_categories,
            source=source or f"stream:first {len(windows)} window(s)",
            row_count=sum(w.n_events for w in windows),
            time_span=(from_ms(windows[0].start_ms).isoformat(), from_ms(windows[-1].end_ms).isoformat()),
            version_basis="content" if source else "span",
        )

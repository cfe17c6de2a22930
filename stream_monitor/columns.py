"""Columns of one model's events: the form every sketch update takes, built once per batch.

Why: per-event Python work is what limits a Python stream processor. Decoders
(per-event JSON, the batched JSON encoding, Arrow IPC) produce a :class:`ColumnBatch`
per model, the engine routes rows to panes with numpy (``Engine.process_columns``)
and every sketch takes one vector call per pane. Values follow the engine's
per-event rules exactly (:func:`numeric_value`, :func:`category_value`): NaN marks a
missing number, None a missing category, bools count as 1/0 or "true"/"false".
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter, methodcaller
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from stream_monitor.coded_column import CodedColumn, concat_categories
from stream_monitor.detectors import make_detector
from stream_monitor.engine_types import EngineOutput
from stream_monitor.sketches.numeric_block import update_block
from stream_monitor.window_state import (
    PREDICTION_CLASS,
    PREDICTION_SCORE,
    VERSION_FIELDS,
    FeatureSketches,
    Pane,
    category_value,
    numeric_value,
)
from stream_monitor.windows import to_ms

if TYPE_CHECKING:
    from stream_monitor.engine import Engine, ModelMonitor

__all__ = ["ColumnBatch", "columns_from_events", "columns_from_rows", "process_columns", "update_pane",
           "update_sketches"]

_NUMERIC_OK = frozenset({float, bool, type(None)})
_CATEGORY_OK = frozenset({str, type(None)})


@dataclass
class ColumnBatch:
    """Rows of one model in arrival order, as columns.

    ``numeric`` holds float64 arrays (NaN = missing) and ``categorical`` sequences of
    ``str | None`` (lists, or :class:`~stream_monitor.coded_column.CodedColumn` from Arrow),
    both keyed by the engine's feature names (``prediction.score`` and
    ``prediction.class`` included). ``slices`` and ``llm`` are per-row objects, kept
    only when some row has them (slice statistics and version tracking need them).
    """

    model_id: str
    ts_ms: np.ndarray
    versions: Sequence[str]  # a list, or a CodedColumn (one version per batch message)
    numeric: Mapping[str, np.ndarray]
    categorical: Mapping[str, Sequence[str | None]]
    slices: list[Mapping[str, str] | None] | None = None
    llm: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    embedding: dict[str, list[Any]] = field(default_factory=dict)  # name -> per-row list of floats or None
    #: Per-row event ids, latency_ms and prediction.value (NaN = absent): what the label join, latency
    #: quantiles and regression performance need (stream_monitor.performance). None when not decoded.
    event_ids: list[str | None] | None = None
    latency_ms: np.ndarray | None = None
    values: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ts_ms.size)

    def take(self, idx: np.ndarray) -> ColumnBatch:
        """The rows at ``idx``, in that order, as a new batch (``self`` when ``idx`` is every row in order)."""
        if idx.size and idx[-1] - idx[0] + 1 == idx.size and bool(np.all(np.diff(idx) == 1)):
            if idx.size == len(self):
                return self
            return self._range(int(idx[0]), int(idx[-1]) + 1)  # a pane's rows usually are one run: views
        pick = itemgetter(*idx.tolist()) if idx.size else None

        def rows(values: Sequence[Any]) -> list[Any]:
            if pick is None:
                return []
            got = pick(values)
            return list(got) if idx.size > 1 else [got]

        return ColumnBatch(
            model_id=self.model_id, ts_ms=self.ts_ms[idx],
            versions=cast("Sequence[str]", self.versions.take(idx)) if isinstance(self.versions, CodedColumn)
            else rows(self.versions),
            numeric={k: v[idx] for k, v in self.numeric.items()},
            categorical={k: v.take(idx) if isinstance(v, CodedColumn) else rows(v)
                         for k, v in self.categorical.items()},
            slices=rows(self.slices) if self.slices is not None else None,
            llm=rows(self.llm) if self.llm is not None else None,
            embedding={k: rows(v) for k, v in self.embedding.items()},
            event_ids=rows(self.event_ids) if self.event_ids is not None else None,
            latency_ms=self.latency_ms[idx] if self.latency_ms is not None else None,
            values=self.values[idx] if self.values is not None else None,
        )

    def _range(self, a: int, b: int) -> ColumnBatch:
        """Rows ``a .. b``: numpy views and list slices."""
        sl = slice(a, b)
        return ColumnBatch(
            model_id=self.model_id, ts_ms=self.ts_ms[sl],
            versions=cast("Sequence[str]", self.versions.take(sl)) if isinstance(self.versions, CodedColumn)
            else self.versions[sl],
            numeric=self.numeric.range(a, b) if isinstance(self.numeric, _Joined) else {
                k: v[sl] for k, v in self.numeric.items()},
            categorical={k: v.take(sl) if isinstance(v, CodedColumn) else list(v[sl])
                         for k, v in self.categorical.items()},
            slices=self.slices[sl] if self.slices is not None else None,
            llm=self.llm[sl] if self.llm is not None else None,
            embedding={k: v[sl] for k, v in self.embedding.items()},
            event_ids=self.event_ids[sl] if self.event_ids is not None else None,
            latency_ms=self.latency_ms[sl] if self.latency_ms is not None else None,
            values=self.values[sl] if self.values is not None else None,
        )

    @staticmethod
    def concat(parts: Sequence[ColumnBatch]) -> ColumnBatch:
        """One batch of the rows of ``parts`` in order (all of one model, with the same feature names)."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        n = [len(p) for p in parts]

        def rows(get: Any) -> list[Any] | None:
            got = [get(p) for p in parts]
            if all(g is None for g in got):
                return None
            return list(chain.from_iterable(g if g is not None else [None] * k for g, k in zip(got, n, strict=True)))

        return ColumnBatch(
            model_id=first.model_id, ts_ms=np.concatenate([p.ts_ms for p in parts]),
            versions=concat_categories([p.versions for p in parts]),  # type: ignore[arg-type]
            numeric=_Joined([p.numeric for p in parts], n),
            categorical={k: concat_categories([p.categorical[k] for p in parts]) for k in first.categorical},
            slices=rows(lambda p: p.slices), llm=rows(lambda p: p.llm),
            embedding={k: list(chain.from_iterable(p.embedding.get(k, [None] * len(p)) for p in parts))
                       for k in first.embedding},
            event_ids=rows(lambda p: p.event_ids), latency_ms=_floats(parts, "latency_ms"),
            values=_floats(parts, "values"),
        )


class _Joined(Mapping[str, np.ndarray]):
    """Numeric columns of several batches, joined only where they are read.

    Why: a consumer batch of Arrow messages holds millions of rows, and joining 20
    columns of them into fresh arrays cost more than decoding them (new memory is
    slow to touch). Routing reads one pane's rows at a time (:meth:`range`), which
    joins a pane's worth; reading a whole column joins it once and keeps it.
    """

    def __init__(self, parts: Sequence[Mapping[str, np.ndarray]], sizes: Sequence[int]) -> None:
        self._parts = list(parts)
        self._bounds = np.cumsum([0, *sizes])
        self._keys = list(parts[0])
        self._names = set(self._keys)
        self._whole: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        got = self._whole.get(name)
        if got is None:
            if name not in self._names:
                raise KeyError(name)
            got = self._whole[name] = np.concatenate([p[name] for p in self._parts])
        return got

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def range(self, a: int, b: int) -> dict[str, np.ndarray]:
        """Rows ``a .. b`` of every column: views when they lie in one part."""
        bounds = self._bounds
        first = int(np.searchsorted(bounds, a, side="right")) - 1
        last = int(np.searchsorted(bounds, b, side="left"))
        pieces = [(self._parts[i], max(a - int(bounds[i]), 0), min(b, int(bounds[i + 1])) - int(bounds[i]))
                  for i in range(first, last)]
        if len(pieces) == 1:
            part, lo, hi = pieces[0]
            return {k: part[k][lo:hi] for k in self._keys}
        return {k: np.concatenate([part[k][lo:hi] for part, lo, hi in pieces]) for k in self._keys}


def _floats(parts: Sequence[ColumnBatch], name: str) -> np.ndarray | None:
    """An optional float column of ``parts`` concatenated, NaN where a part lacks it."""
    got = [getattr(p, name) for p in parts]
    if all(g is None for g in got):
        return None
    return np.concatenate([g if g is not None else np.full(len(p), np.nan) for g, p in zip(got, parts, strict=True)])


def numeric_column(values: list[Any]) -> np.ndarray:
    """float64 column with :func:`numeric_value` semantics; one C-level conversion in the common case."""
    if {*map(type, values)} <= _NUMERIC_OK | {int}:
        return np.array(values, dtype=np.float64)
    return np.fromiter(map(numeric_value, values), np.float64, len(values))


def category_column(values: list[Any]) -> list[str | None]:
    """``str | None`` list with :func:`category_value` semantics; the list itself when already so."""
    if {*map(type, values)} <= _CATEGORY_OK:
        return values
    return [category_value(v) for v in values]


def _numeric_matrix(feats: list[dict[str, Any]], names: list[str]) -> dict[str, np.ndarray]:
    """All numeric features at once: one tuple per row, one numpy conversion, one transpose."""
    if not names:
        return {}
    if not feats:
        return {n: np.empty(0) for n in names}
    getter = itemgetter(*names)
    try:
        rows = list(map(getter, feats))
    except KeyError:  # some row lacks a feature: it is missing there
        return {n: numeric_column(list(map(methodcaller("get", n), feats))) for n in names}
    if len(names) == 1:
        return {names[0]: numeric_column(rows)}
    if not {*map(type, chain.from_iterable(rows))} <= _NUMERIC_OK | {int}:
        return {n: numeric_column([r[j] for r in rows]) for j, n in enumerate(names)}
    matrix = np.array(rows, dtype=np.float64).T.copy()
    return dict(zip(names, matrix, strict=True))


def columns_from_rows(
    model_id: str, numeric_names: list[str], categorical_names: list[str], *,
    feats: list[dict[str, Any]], ts_ms: np.ndarray, versions: list[str],
    scores: list[float | None], classes: list[str | None],
    slices: list[Mapping[str, str] | None] | None = None, llm: list[Any] | None = None,
    embedding_names: Sequence[str] = (),
    event_ids: list[str | None] | None = None, latency: list[Any] | None = None, values: list[Any] | None = None,
    numeric_matrix: np.ndarray | None = None,
) -> ColumnBatch:
    """A batch from per-row features dicts and prediction fields (the decoded JSON of each event).

    ``numeric_matrix``: the numeric features (all but ``prediction.score``, in order) as a
    (rows, features) float64 array the caller has already built and checked (the batch
    decoder gets it from its kind check), so they are not extracted and checked twice.
    """
    plain_num = [n for n in numeric_names if n != PREDICTION_SCORE]
    if numeric_matrix is not None and numeric_matrix.shape == (len(feats), len(plain_num)):
        numeric = dict(zip(plain_num, numeric_matrix.T.copy(), strict=True))
    else:
        numeric = _numeric_matrix(feats, plain_num)
    if PREDICTION_SCORE in numeric_names:
        numeric[PREDICTION_SCORE] = numeric_column(scores)
    numeric = {n: numeric[n] for n in numeric_names}
    categorical: dict[str, list[str | None]] = {}
    for name in categorical_names:
        if name == PREDICTION_CLASS:
            categorical[name] = classes
        else:
            categorical[name] = category_column(list(map(methodcaller("get", name), feats)))
    if slices is not None and slices.count(None) == len(slices):
        slices = None
    if llm is not None and llm.count(None) == len(llm):
        llm = None
    embedding = {name: list(map(methodcaller("get", name), feats)) for name in embedding_names}
    return ColumnBatch(model_id=model_id, ts_ms=ts_ms, versions=versions, numeric=numeric,
                       categorical=categorical, slices=slices, llm=llm, embedding=embedding, event_ids=event_ids,
                       latency_ms=optional_numbers(latency), values=optional_numbers(values))


def optional_numbers(values: list[Any] | None) -> np.ndarray | None:
    """A float column (NaN = None), or None when no row has a value."""
    if values is None or values.count(None) == len(values):
        return None
    return numeric_column(values)


def columns_from_events(model_id: str, numeric_names: list[str], categorical_names: list[str],
                        events: Sequence[Any], embedding_names: Sequence[str] = ()) -> ColumnBatch:
    """A batch from event objects (pydantic :class:`PredictionEvent` or anything with its attributes)."""
    return columns_from_rows(
        model_id, numeric_names, categorical_names,
        feats=[e.features for e in events],
        ts_ms=np.fromiter((to_ms(e.timestamp) for e in events), np.int64, len(events)),
        versions=[e.model_version for e in events],
        scores=[e.prediction.score for e in events], classes=[e.prediction.class_ for e in events],
        slices=[e.slice for e in events], llm=[e.llm for e in events], embedding_names=embedding_names,
        event_ids=[e.event_id for e in events], latency=[e.latency_ms for e in events],
        values=[e.prediction.value for e in events],
    )


def update_sketches(sketches: FeatureSketches, batch: ColumnBatch) -> Mapping[str, np.ndarray]:
    """``FeatureSketches.update`` from columns: one vector call per sketch; returns the numeric columns."""
    sketches.n_events += len(batch)
    if sketches.numeric:  # all numeric features in one (features, rows) matrix: numeric_block.update_block
        update_block(list(sketches.numeric.values()),
                     np.stack([batch.numeric[name] for name in sketches.numeric]), owned=True)
    for name, counts in sketches.categorical.items():
        col = batch.categorical[name]
        if isinstance(col, CodedColumn):  # Arrow: one bincount of the codes
            coded, missing = col.tally()
            counts.missing += missing
            counts.update_counts(coded)
            continue
        tally: Counter[Any] = Counter(col)
        counts.missing += tally.pop(None, 0)
        counts.update_counts(tally)
    for name, emb in sketches.embedding.items():
        rows = batch.embedding.get(name)
        emb.update_rows([v if isinstance(v, list) else None for v in rows] if rows is not None else [None] * len(batch))
    return batch.numeric


def distinct_in_order(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


# -- routing: Engine.process on columns -----------------------------------------------------------


def process_columns(engine: Engine, batches: Sequence[ColumnBatch]) -> EngineOutput:
    """``Engine.process`` for rows given as columns: the same lateness, panes, detectors, slices and closes.

    Lateness is decided per row against the watermark as it stood before that row,
    which is the running maximum of the earlier rows' event times (a late row can
    never raise it: its time is below the watermark). Rows are grouped by (version,
    pane) in order of first appearance, as ``process`` does.
    """
    out = EngineOutput()
    for batch in batches:
        if len(batch):
            _route(engine, engine.models[batch.model_id], batch, out)
    for mm in engine.models.values():
        out.extend(engine._close(mm, final=False))
    return out


def _route(engine: Engine, mm: ModelMonitor, batch: ColumnBatch, out: EngineOutput) -> None:
    model_id = batch.model_id
    ts = batch.ts_ms
    n = ts.size
    starts = ts - ts % mm.slide_ms
    before = np.empty(n, dtype=np.int64)
    before[1:] = np.maximum.accumulate(ts)[:-1]
    prior = mm.watermark.max_event_ms
    known = np.ones(n, dtype=bool)
    if prior is None:
        before[0], known[0] = 0, False
    else:
        before[0] = prior
        np.maximum(before, prior, out=before)
    late = known & (starts + mm.size_ms <= before - mm.watermark.lateness_ms)
    n_late = int(late.sum())
    if n_late:
        out.late[model_id] += n_late
        if n_late == n:
            return
    kept = np.flatnonzero(~late)
    mm.watermark.observe(int(ts[kept].max()))
    kept_starts = starts[kept]
    versions = batch.versions
    groups: list[tuple[str, int, np.ndarray]] = []
    if _single(versions):  # one version (the usual case)
        uniq, first = np.unique(kept_starts, return_index=True)
        for k in np.argsort(first):
            groups.append((versions[0], int(uniq[k]), kept[kept_starts == uniq[k]]))
    else:
        rows: dict[tuple[str, int], list[int]] = {}
        for j, start in zip(kept.tolist(), kept_starts.tolist(), strict=True):
            rows.setdefault((versions[j], start), []).append(j)
        groups = [(v, s, np.asarray(r)) for (v, s), r in rows.items()]
    for version, start, idx in groups:
        pane = mm.panes.get((version, start))
        if pane is None:
            pane = mm.panes[(version, start)] = mm.new_pane(version, start)
        part = batch.take(idx)
        update_pane(mm, pane, part)
        if mm.outcomes is not None:  # label join, latency / LLM and quality-contract accumulators
            mm.outcomes.observe(version, start, part, mm.reference)
        out.processed[model_id] += int(idx.size)


def _single(values: Sequence[Any]) -> bool:
    """Every row holds the same value (a batch of one model version)."""
    if isinstance(values, CodedColumn):
        return values.single()[0]
    return values.count(values[0]) == len(values)


def update_pane(mm: ModelMonitor, pane: Pane, batch: ColumnBatch) -> None:
    """One pane's update from columns: overall sketches, versions seen, tracked slices, detectors."""
    columns = update_sketches(pane.overall, batch)
    for name in VERSION_FIELDS:
        if name == "model_version":
            values: Sequence[Any] = batch.versions
        elif batch.llm is None:
            continue
        else:
            attr = name.split(".", 1)[1]
            values = [getattr(x, attr) for x in batch.llm if x is not None]
        if values and values[0] is not None and _single(values):
            # One version in the whole batch (the usual case): no per-row hashing.
            seen = pane.versions.setdefault(name, Counter())
            seen[values[0]] += len(values)
            continue
        present = [v for v in values if v is not None]
        if present:
            pane.versions.setdefault(name, Counter()).update(present)
    if batch.slices is not None:
        for key in mm.config.slices.keys:
            by_slice: dict[str, list[int]] = {}
            for j, tags in enumerate(batch.slices):
                if tags is not None and key in tags:
                    by_slice.setdefault(mm.slice_of(key, tags[key]), []).append(j)
            for label, rows in by_slice.items():
                sk = pane.slices.get(label)
                if sk is None:
                    sk = pane.slices[label] = mm.empty_sketches(label)
                update_sketches(sk, batch.take(np.asarray(rows)))
    for d in mm.config.detectors:
        det = mm.detectors.get((pane.model_version, d.id))
        if det is None:
            det = mm.detectors[(pane.model_version, d.id)] = make_detector(d.type, d.params)
        hits = det.update(columns[d.signal])
        if hits:
            pane.detections[d.id] += len(hits)

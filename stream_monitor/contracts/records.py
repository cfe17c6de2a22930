"""A consumed batch of raw messages -> per-model columns, checked column by column.

Why: the per-event fast path (:mod:`stream_monitor.contracts.fastdecode`) still pays
Python bytecode for every field of every event. Here each check runs once over a
whole column of the batch at C speed (type sets, ``min``/``max`` of lengths, one
regex over all timestamps). Only when a check fails are its rows looked at one by
one; the failing rows take the per-event path (``FastDecoder.decode``, then
pydantic), which decides and explains. So a row is accepted here only if the
contract surely accepts it, and every rejection comes from the same code as
``EventDecoder``'s (``tests/perf/test_records_equivalence.py``).

The batched encoding (an object whose only key is ``prediction_batch``, or an Arrow
IPC stream) is recognised here and handed to :mod:`stream_monitor.contracts.batch`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, compress
from operator import itemgetter, methodcaller
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from stream_monitor.columns import ColumnBatch, columns_from_events, columns_from_rows, distinct_in_order
from stream_monitor.contracts.decode import check_kinds
from stream_monitor.contracts.fastdecode import (
    _MAX_CACHED_IDS,
    _MODEL_ID,
    _PLAIN,
    _PRED_KEYS,
    _TIMESTAMP,
    _TOP_KEYS,
    _TS_ALL,
    FastDecoder,
    _features,
    _llm,
    epoch_ms,
)
from stream_monitor.contracts.typed import TypedDecoder
from stream_monitor.errors import EventRejected
from stream_monitor.window_state import PREDICTION_SCORE

if TYPE_CHECKING:
    from stream_monitor.engine import Engine

__all__ = ["ARROW_MAGIC", "BATCH_KEY", "DecodedRecords", "RecordDecoder"]

BATCH_KEY = "prediction_batch"


@dataclass
class DecodedRecords:
    """The outcome of one consumed batch: columns per model, rejections by record index, batch messages."""

    batches: list[ColumnBatch] = field(default_factory=list)
    rejected: list[tuple[int, EventRejected]] = field(default_factory=list)
    batch_messages: list[int] = field(default_factory=list)
    #: The parsed ``prediction_batch`` object of each JSON batch message, so it is parsed once.
    batch_bodies: dict[int, Any] = field(default_factory=dict)
    valid: int = 0
    newest_ms: int | None = None


class _Rows:
    """Parallel per-row lists that the batch checks narrow down; rows that fail a check become doubtful."""

    def __init__(self, objs: list[dict[str, Any]], pos: list[int], doubt: list[int]) -> None:
        self.cols: dict[str, list[Any]] = {"obj": objs, "pos": pos}
        self.doubt = doubt
        #: True when every kept row's features are plain values (no lists, no ints): set by the feature check.
        self.plain = False

    def keep(self, mask: list[bool]) -> None:
        if all(mask):
            return
        self.doubt.extend(compress(self.cols["pos"], [not m for m in mask]))
        for k, v in self.cols.items():
            self.cols[k] = list(compress(v, mask))

    def check(self, name: str, ok_all: Callable[[list[Any]], bool], ok_one: Callable[[Any], bool]) -> None:
        """Keep the rows whose ``name`` value passes; ``ok_all`` is the C-speed test of the whole column."""
        values = self.cols[name]
        if values and not ok_all(values):
            self.keep([ok_one(v) for v in values])


def _str_ok(lo: int, hi: int) -> tuple[Callable[[list[Any]], bool], Callable[[Any], bool]]:
    def all_ok(v: list[Any]) -> bool:
        return {*map(type, v)} == {str} and min(map(len, v)) >= lo and max(map(len, v)) <= hi

    def one_ok(x: Any) -> bool:
        return type(x) is str and lo <= len(x) <= hi

    return all_ok, one_ok


_ID_OK = _str_ok(1, 256)
_REQUIRED = itemgetter("event_id", "model_id", "model_version", "timestamp", "features", "prediction")
_OPT_NUMBER = frozenset({float, int, type(None)})
_VALUE = methodcaller("get", "value")
ARROW_MAGIC = b"\xff\xff\xff\xff"


def _nonneg_numbers(values: list[Any]) -> bool:
    if not {*map(type, values)} <= _OPT_NUMBER:
        return False
    present = [v for v in values if v is not None] if None in values else values
    return not present or min(present) >= 0


def _as_floats(values: list[Any]) -> list[Any]:
    return [float(v) if type(v) is int else v for v in values] if int in {*map(type, values)} else values


class RecordDecoder:
    """Decodes a consumed batch of raw messages into per-model columns, with batch-wide checks.

    Each check runs over a whole column of the batch at C speed (type sets, ``min`` /
    ``max`` of lengths, one regex over all timestamps); only when a check fails are
    its rows looked at one by one, and the failing ones take the per-event path
    (:meth:`FastDecoder.decode`, then pydantic), which decides and explains.
    ``batch_decoder`` handles the batched encoding (objects whose only key is
    ``prediction_batch``, and Arrow IPC streams).
    """

    def __init__(self, fast: FastDecoder, features: dict[str, tuple[list[str], list[str]]],
                 batch_decoder: Callable[[bytes, Any, Any], ColumnBatch] | None = None,
                 embedding_features: dict[str, list[str]] | None = None, typed: bool = True) -> None:
        self.fast = fast
        self.features = features
        self.batch_decoder = batch_decoder
        self.embedding_features = embedding_features or {}
        #: The one-pass typed path (:mod:`.typed`) tried first on every batch; None to use only the general path.
        self.typed: TypedDecoder | None = None
        if typed:
            self.typed = TypedDecoder(
                {mid: (num, cat, self.embedding_features.get(mid, []), fast.feature_kinds.get(mid, {}))
                 for mid, (num, cat) in features.items()}, fast.max_bytes)

    @classmethod
    def for_engine(cls, engine: Engine) -> RecordDecoder:
        """The decoder for ``engine``'s models, with the batched encoding enabled."""
        from stream_monitor.contracts.batch import decode_batch_message

        fast = FastDecoder(engine.config, engine.feature_kinds())
        features = {mid: (list(mm.numeric_features), list(mm.categorical_features))
                    for mid, mm in engine.models.items()}
        embedding = {mid: list(mm.embedding_features) for mid, mm in engine.models.items()}
        return cls(fast, features, batch_decoder=decode_batch_message, embedding_features=embedding)

    def decode_each(self, values: Sequence[bytes | None]) -> DecodedRecords:
        """The plain path, one record at a time (used when a batch-level step fails unexpectedly)."""
        out = DecodedRecords()
        accepted: dict[str, list[tuple[int, Any]]] = {}
        for i, raw in enumerate(values):
            try:
                ev = self.fast.slow.decode(raw)
            except EventRejected as err:
                out.rejected.append((i, err))
            except Exception as exc:  # noqa: BLE001 - the process never dies on data
                out.rejected.append((i, EventRejected("schema", f"unexpected {type(exc).__name__} while decoding")))
            else:
                accepted.setdefault(ev.model_id, []).append((i, ev))
        for model_id, events in accepted.items():
            numeric, categorical = self.features[model_id]
            batch = columns_from_events(model_id, numeric, categorical, [ev for _, ev in events],
                                        self.embedding_features.get(model_id, ()))
            out.batches.append(batch)
            out.valid += len(batch)
            newest = int(batch.ts_ms.max())
            out.newest_ms = newest if out.newest_ms is None else max(out.newest_ms, newest)
        return out

    def _parse(self, values: Sequence[bytes | None], doubt: list[int], out: DecodedRecords
               ) -> tuple[list[dict[str, Any]], list[int]]:
        limit = self.fast.max_bytes
        loads = orjson.loads
        if values and None not in values and max(map(len, values)) <= limit:  # type: ignore[arg-type]
            # The common batch: every record is one JSON event object (2+ keys). Anything
            # else (a batch message, Arrow, bad JSON, a non-object) takes the loop below.
            try:
                parsed: list[Any] | None = list(map(loads, values))  # type: ignore[arg-type]
            except orjson.JSONDecodeError:
                parsed = None
            if parsed is not None and {*map(type, parsed)} == {dict} and min(map(len, parsed)) > 1:
                return parsed, list(range(len(values)))
        else:
            parsed = None
        objs: list[dict[str, Any]] = []
        pos: list[int] = []
        for i, raw in enumerate(values):
            if raw is None or len(raw) > limit:
                doubt.append(i)
                continue
            if parsed is not None:  # already parsed above (each record is parsed once)
                o = parsed[i]
            else:
                try:
                    o = loads(raw)
                except orjson.JSONDecodeError:
                    (out.batch_messages if raw[:4] == ARROW_MAGIC else doubt).append(i)
                    continue
            if type(o) is not dict:
                doubt.append(i)
            elif len(o) == 1 and BATCH_KEY in o:
                out.batch_messages.append(i)
                out.batch_bodies[i] = o[BATCH_KEY]
            else:
                objs.append(o)
                pos.append(i)
        return objs, pos

    def decode(self, values: Sequence[bytes | None]) -> DecodedRecords:
        out = DecodedRecords()
        segments: list[tuple[np.ndarray, ColumnBatch]] = []
        rest: Sequence[int] | None = None
        if self.typed is not None:
            segments, rest = self.typed.decode(values)
        if rest is None or len(rest) == len(values):
            segments += self._general(values, out)
        elif rest:
            at = np.asarray(rest)
            sub = DecodedRecords()
            segments += [(at[pos], b) for pos, b in self._general([values[i] for i in rest], sub)]
            out.rejected = [(rest[i], err) for i, err in sub.rejected]
        by_model: dict[str, list[tuple[np.ndarray, ColumnBatch]]] = {}
        for at, b in segments:
            if len(b):
                by_model.setdefault(b.model_id, []).append((at, b))
        for parts in by_model.values():
            batch = ColumnBatch.concat([b for _, b in parts])
            if len(parts) > 1:
                at = np.concatenate([a for a, _ in parts])
                if np.any(np.diff(at) < 0):
                    batch = batch.take(np.argsort(at, kind="stable"))
            out.batches.append(batch)
            out.valid += len(batch)
            newest = int(batch.ts_ms.max())
            out.newest_ms = newest if out.newest_ms is None else max(out.newest_ms, newest)
        out.rejected.sort(key=itemgetter(0))
        return out

    def _general(self, values: Sequence[bytes | None], out: DecodedRecords) -> list[tuple[np.ndarray, ColumnBatch]]:
        """Every record shape: orjson, the batch-wide checks, the per-event path for doubtful rows, batch messages.

        Rejections go to ``out.rejected``; returns the column batches with each row's index in ``values``.
        """
        doubt: list[int] = []
        objs, pos = self._parse(values, doubt, out)
        rows = _Rows(objs, pos, doubt)
        if objs:
            self._check(rows)
        accepted: dict[str, list[tuple[int, Any]]] = {}
        for i in doubt:
            try:
                ev = self.fast.decode(values[i])
            except EventRejected as err:
                out.rejected.append((i, err))
            else:
                accepted.setdefault(ev.model_id, []).append((i, ev))
        segments = self._columns(rows, accepted, out)
        for i in out.batch_messages:
            raw = values[i]
            if self.batch_decoder is None or raw is None:
                out.rejected.append((i, EventRejected("schema", "the batched encoding is not enabled here")))
                continue
            try:
                b = self.batch_decoder(raw, self, out.batch_bodies.get(i))
            except EventRejected as err:
                out.rejected.append((i, err))
            else:
                segments.append((np.full(len(b), i), b))
        return segments

    def _check(self, rows: _Rows) -> None:
        """Narrow ``rows`` to those that surely satisfy the contract; the rest become doubtful."""
        keys = set(chain.from_iterable(rows.cols["obj"]))
        if not keys <= _TOP_KEYS:
            rows.keep([o.keys() <= _TOP_KEYS for o in rows.cols["obj"]])
        try:
            req = list(map(_REQUIRED, rows.cols["obj"]))
        except KeyError:
            rows.keep([all(k in o for k in _REQUIRED_NAMES) for o in rows.cols["obj"]])
            req = list(map(_REQUIRED, rows.cols["obj"]))
        if not req:
            return
        for name, col in zip(("id", "model", "version", "ts", "feats", "pred"), zip(*req, strict=True), strict=True):
            rows.cols[name] = list(col)
        if "schema_version" in keys:
            rows.check("obj", lambda v: False, lambda o: o.get("schema_version", "1") == "1"
                       and type(o.get("schema_version", "1")) is str)
        rows.check("id", *_ID_OK)
        rows.check("version", *_ID_OK)
        rows.check("model", lambda v: {*map(type, v)} == {str} and all(map(self._model_ok, set(v))),
                   lambda x: type(x) is str and self._model_ok(x))
        rows.check("ts", lambda v: {*map(type, v)} == {str} and _TS_ALL.fullmatch("\n".join(v)) is not None,
                   lambda x: type(x) is str and _TIMESTAMP.fullmatch(x) is not None)
        try:
            rows.cols["when"] = list(map(datetime.fromisoformat, rows.cols["ts"]))
        except ValueError:
            rows.keep([_iso_ok(x) for x in rows.cols["ts"]])
            rows.cols["when"] = list(map(datetime.fromisoformat, rows.cols["ts"]))
        rows.plain = True

        def all_plain(v: list[Any]) -> bool:
            rows.plain = {*map(type, v)} == {dict} and _feature_values_plain(v)
            return rows.plain

        rows.check("feats", all_plain, lambda d: type(d) is dict and _features(d) is not None)
        if rows.cols["feats"] and not rows.plain:
            rows.cols["feats"] = [_features(d) for d in rows.cols["feats"]]
        rows.check("pred", _predictions_ok, lambda p: _predictions_ok([p]))
        if "latency_ms" in keys:
            rows.check("obj", lambda v: _nonneg_numbers([o.get("latency_ms") for o in v]),
                       lambda o: _nonneg_numbers([o.get("latency_ms")]))
        if "slice" in keys:
            rows.check("obj", lambda v: _slices_ok([o.get("slice") for o in v]),
                       lambda o: _slices_ok([o.get("slice")]))
        if "llm" in keys:
            rows.cols["llm"] = [_llm(o.get("llm")) for o in rows.cols["obj"]]
            rows.check("llm", lambda v: False not in v, lambda x: x is not False)

    def _model_ok(self, model_id: str) -> bool:
        known = self.fast._model_ids
        if model_id in known:
            return True
        if len(model_id) > 128 or _MODEL_ID.fullmatch(model_id) is None:
            return False
        if len(known) < _MAX_CACHED_IDS:
            known.add(model_id)
        return True

    def _columns(self, rows: _Rows, accepted: dict[str, list[tuple[int, Any]]], out: DecodedRecords
                 ) -> list[tuple[np.ndarray, ColumnBatch]]:
        """Unknown models and wrong kinds are rejected here; the rest become one ColumnBatch per model."""
        cols = rows.cols
        segments: list[tuple[np.ndarray, ColumnBatch]] = []
        if cols.get("model"):
            models = distinct_in_order(cols["model"])
            for model_id in models:
                idx = list(range(len(cols["model"]))) if len(models) == 1 else \
                    [j for j, m in enumerate(cols["model"]) if m == model_id]
                segments.extend(self._model_columns(model_id, idx, cols, out, plain=rows.plain))
        for model_id, events in accepted.items():
            numeric, categorical = self.features[model_id]
            batch = columns_from_events(model_id, numeric, categorical, [ev for _, ev in events],
                                        self.embedding_features.get(model_id, ()))
            segments.append((np.array([i for i, _ in events]), batch))
        return segments

    def _model_columns(self, model_id: str, idx: list[int], cols: dict[str, list[Any]], out: DecodedRecords,
                       plain: bool = False) -> list[tuple[np.ndarray, ColumnBatch]]:
        every = len(idx) == len(cols["pos"])

        def pick(name: str) -> list[Any]:
            return cols[name] if every else [cols[name][j] for j in idx]

        pos = pick("pos")
        kinds = self.fast.feature_kinds.get(model_id)
        if kinds is None:
            err = EventRejected("unknown_model", f"model_id {model_id!r} is not configured")
            out.rejected.extend((i, err) for i in pos)
            return []
        feats = pick("feats")
        numeric, categorical = self.features[model_id]
        plain_numeric = [n for n in numeric if n != PREDICTION_SCORE]
        rows = _numeric_rows(feats, plain_numeric, kinds) if plain else None
        if rows is None and not _kinds_ok(feats, kinds):
            keep = []
            for i, d in zip(pos, feats, strict=True):
                try:
                    check_kinds(d, kinds)
                    keep.append(True)
                except EventRejected as err:
                    out.rejected.append((i, err))
                    keep.append(False)
            idx = list(compress(idx, keep))
            every = False
            rows = None
            pos, feats = pick("pos"), pick("feats")
            if not idx:
                return []
        whens = pick("when")
        ts_ms = epoch_ms(whens)
        preds = pick("pred")
        objs = pick("obj")
        batch = columns_from_rows(
            model_id, numeric, categorical, feats=feats, ts_ms=ts_ms, versions=pick("version"),
            scores=list(map(_SCORE, preds)), classes=list(map(_CLASS, preds)),
            slices=list(map(_SLICE, objs)), llm=pick("llm") if "llm" in cols else None,
            embedding_names=self.embedding_features.get(model_id, ()), numeric_matrix=rows,
            event_ids=pick("id"), latency=list(map(_LATENCY, objs)), values=list(map(_VALUE, preds)),
        )
        return [(np.asarray(pos), batch)]


_REQUIRED_NAMES = ("event_id", "model_id", "model_version", "timestamp", "features", "prediction")
_SCORE = methodcaller("get", "score")
_CLASS = methodcaller("get", "class")
_SLICE = methodcaller("get", "slice")
_LATENCY = methodcaller("get", "latency_ms")
_KIND_NUMERIC_OK = frozenset({float, int, bool, type(None)})


def _iso_ok(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _feature_values_plain(feats: list[Any]) -> bool:
    keys = set(chain.from_iterable(feats))
    if keys and (min(map(len, keys)) < 1 or max(map(len, keys)) > 128):
        return False
    return {*map(type, chain.from_iterable(map(dict.values, feats)))} <= _PLAIN


def _predictions_ok(preds: list[Any]) -> bool:
    if {*map(type, preds)} != {dict} or not set(chain.from_iterable(preds)) <= _PRED_KEYS:
        return False
    scores, classes, values = list(map(_SCORE, preds)), list(map(_CLASS, preds)), list(map(_VALUE, preds))
    if not ({*map(type, scores)} <= _OPT_NUMBER and {*map(type, values)} <= _OPT_NUMBER
            and {*map(type, classes)} <= {str, type(None)}):
        return False
    named = [c for c in classes if c is not None] if None in classes else classes
    if named and max(map(len, named)) > 256:
        return False
    if None in scores:
        return all(s is not None or c is not None or v is not None
                   for s, c, v in zip(scores, classes, values, strict=True))
    return True


def _slices_ok(tags: list[Any]) -> bool:
    if not {*map(type, tags)} <= {dict, type(None)}:
        return False
    present = [t for t in tags if t]
    if not present:
        return True
    keys = list(chain.from_iterable(present))
    values = list(chain.from_iterable(map(dict.values, present)))
    return (min(map(len, keys)) >= 1 and max(map(len, keys)) <= 128 and {*map(type, values)} == {str}
            and max(map(len, values)) <= 256)


def _numeric_rows(feats: list[dict[str, Any]], names: list[str], kinds: dict[str, str]) -> np.ndarray | None:
    """For plain rows (no lists, no ints): the (rows, features) float64 matrix of the numeric features, kinds checked.

    One ``itemgetter`` pass and one numpy conversion give both the kind check and the
    matrix the columns are built from (``columns_from_rows(numeric_matrix=...)``):
    numpy infers float64 from plain rows only when every value is a float or a bool
    (a string gives a unicode array, a None an object array). Plain rows hold no
    lists, so categorical kinds hold too. None (then :func:`_kinds_ok` decides, as
    before) when a row lacks a numeric feature, a value is None or of the wrong kind,
    or the model has embedding features.
    """
    declared = {n for n, k in kinds.items() if k == "numeric"}
    if len(names) < 2 or declared != set(names) or len(declared) + sum(k == "categorical" for k in kinds.values()) \
            != len(kinds):
        return None
    try:
        matrix = np.array(list(map(itemgetter(*names), feats)))
    except (KeyError, ValueError):
        return None
    return matrix if matrix.dtype == np.float64 and matrix.ndim == 2 else None


def _kinds_ok(feats: list[dict[str, Any]], kinds: dict[str, str]) -> bool:
    """True when no declared feature has a value of the wrong kind, checked column by column."""
    for name, kind in kinds.items():
        types = {*map(type, map(methodcaller("get", name), feats))}
        if kind == "numeric" and not types <= _KIND_NUMERIC_OK:
            return False
        if kind == "categorical" and list in types:
            return False
        if kind == "embedding" and not types <= {list, type(None)}:
            return False
    return True

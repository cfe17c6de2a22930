"""The batched encoding: one message carrying many predictions of one model, in columns.

Why: at a few microseconds per event, parsing one JSON object per prediction is the
floor of any Python consumer. A producer that already holds a batch (a micro-batch
of requests, a batch-scoring job) can send it as columns instead: JSON columns
(``{"prediction_batch": {...}}``, contract :class:`PredictionBatchMessage`, schema
``schemas/prediction_batch.schema.json``) or an Arrow IPC stream with the same
columns (needs ``pyarrow``). Row ``i`` means exactly the prediction event made of the
``i``-th entry of every column, with ``timestamp = timestamp_ms[i]`` (UTC).

A batch message is accepted or rejected whole (one dead letter, one reason), so a
producer learns about a bug at once rather than through a trickle of partial loss.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import numpy as np
import orjson
from pydantic import Field, StrictInt, ValidationError, model_validator

from stream_monitor.coded_column import CodedColumn
from stream_monitor.columns import ColumnBatch, category_column, numeric_column
from stream_monitor.contracts.decode import _describe
from stream_monitor.contracts.events import FeatureName, FeatureValue, Identifier, ModelId, _Strict
from stream_monitor.errors import EventRejected
from stream_monitor.window_state import PREDICTION_CLASS, PREDICTION_SCORE

if TYPE_CHECKING:
    from stream_monitor.contracts.records import RecordDecoder

__all__ = ["MAX_ROWS", "BatchPrediction", "PredictionBatch", "PredictionBatchMessage", "decode_batch_message",
           "encode_arrow", "encode_json"]

#: Rows per message; with 25 features this stays well under Kafka's default 1 MiB message size in Arrow.
MAX_ROWS = 100_000
#: 9999-12-31T23:59:59.999Z, the last instant an ISO timestamp can name.
MAX_TIMESTAMP_MS = 253_402_300_799_999
TimestampMs = Annotated[StrictInt, Field(ge=0, le=MAX_TIMESTAMP_MS)]
ClassName = Annotated[str, Field(max_length=256)]


class BatchPrediction(_Strict):
    """Per-row prediction columns; each row needs at least one of score, class or value."""

    score: list[float | None] | None = None
    class_: Annotated[list[ClassName | None] | None, Field(alias="class")] = None
    value: list[float | None] | None = None


class PredictionBatch(_Strict):
    """Columns of many predictions of one model version; every list has one entry per row."""

    schema_version: Literal["1"] = "1"
    model_id: ModelId
    model_version: Identifier
    event_id: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_ROWS)]
    timestamp_ms: list[TimestampMs] = Field(description="Event time per row, milliseconds since the epoch (UTC).")
    features: dict[FeatureName, list[FeatureValue]]
    prediction: BatchPrediction
    latency_ms: list[Annotated[float, Field(ge=0)] | None] | None = None
    slice: dict[FeatureName, list[Annotated[str, Field(max_length=256)] | None]] | None = Field(
        default=None, description="Segment tag columns; null = the row has no such tag.")

    @model_validator(mode="after")
    def _rows(self) -> PredictionBatch:
        n = len(self.event_id)
        columns: dict[str, list[Any] | None] = {
            "timestamp_ms": self.timestamp_ms, "latency_ms": self.latency_ms, "prediction.score": self.prediction.score,
            "prediction.class": self.prediction.class_, "prediction.value": self.prediction.value,
            **{f"features.{k}": v for k, v in self.features.items()},
            **{f"slice.{k}": v for k, v in (self.slice or {}).items()},
        }
        for name, col in columns.items():
            if col is not None and len(col) != n:
                raise ValueError(f"column {name} has {len(col)} rows, event_id has {n}")
        p = self.prediction
        for i in range(n):
            if all(c is None or c[i] is None for c in (p.score, p.class_, p.value)):
                raise ValueError(f"row {i}: prediction needs at least one of 'score', 'class' or 'value'")
        return self


class PredictionBatchMessage(_Strict):
    """The JSON batched encoding: an object whose only key is ``prediction_batch``."""

    prediction_batch: PredictionBatch


def encode_json(batch: dict[str, Any]) -> bytes:
    """The message for a batch given as a dict of columns (the fields of :class:`PredictionBatch`)."""
    return orjson.dumps({"prediction_batch": batch}, option=orjson.OPT_SERIALIZE_NUMPY)


def decode_batch_message(raw: bytes, decoder: RecordDecoder, body: Any = None) -> ColumnBatch:
    """JSON or Arrow batch -> columns for the engine, or :class:`EventRejected` for the whole message.

    ``body``: the message's ``prediction_batch`` object when the caller has parsed it already.
    """
    if raw[:4] == b"\xff\xff\xff\xff":
        from stream_monitor.contracts.arrow import arrow_batch

        return arrow_batch(raw, decoder)
    if body is None:
        try:
            body = orjson.loads(raw)["prediction_batch"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            body = None
    batch = _fast(body, decoder) if type(body) is dict else None
    if batch is None:
        try:
            model = PredictionBatchMessage.model_validate_json(raw).prediction_batch
        except ValidationError as exc:
            raise EventRejected(*_describe(exc)) from None
        batch = _from_model(model, decoder)
    return batch


_BATCH_KEYS = frozenset(PredictionBatch.model_fields)
_NUMBERS = frozenset({float, int, type(None)})
_STRINGS = frozenset({str, type(None)})


def _fast(b: dict[str, Any], decoder: RecordDecoder) -> ColumnBatch | None:
    """Columns when the common shape surely satisfies the contract; None hands the message to pydantic."""
    if not b.keys() <= _BATCH_KEYS or b.get("schema_version", "1") != "1" or b.get("slice") is not None:
        return None
    ids, ts, feats, pred = b.get("event_id"), b.get("timestamp_ms"), b.get("features"), b.get("prediction")
    model_id, version = b.get("model_id"), b.get("model_version")
    if (type(ids) is not list or type(ts) is not list or type(feats) is not dict or type(pred) is not dict
            or type(model_id) is not str or not decoder._model_ok(model_id) or type(version) is not str
            or not 0 < len(version) <= 256 or not pred.keys() <= {"score", "class", "value"}):
        return None
    n = len(ids)
    if (not 1 <= n <= MAX_ROWS or len(ts) != n or {*map(type, ids)} != {str} or min(map(len, ids)) < 1
            or max(map(len, ids)) > 256 or {*map(type, ts)} != {int}):
        return None
    try:
        ts_ms = np.array(ts, dtype=np.int64)
    except OverflowError:
        return None
    if ts_ms.min() < 0 or ts_ms.max() > MAX_TIMESTAMP_MS:
        return None
    if feats and (min(map(len, feats)) < 1 or max(map(len, feats)) > 128):
        return None
    numbers: dict[str, np.ndarray] = {}
    strings: dict[str, list[Any]] = {}
    for name, col in feats.items():
        if type(col) is not list or len(col) != n:
            return None
        types = {*map(type, col)}
        if types <= _NUMBERS:
            numbers[name] = np.array(col, dtype=np.float64)
        elif types <= _STRINGS:
            strings[name] = col
        else:
            return None  # bools, embeddings, mixed columns: pydantic decides and converts
    present = np.zeros(n, dtype=bool)
    score = _number_column(pred.get("score"), n, present)
    value = _number_column(pred.get("value"), n, present)
    classes = pred.get("class")
    if score is False or value is False:
        return None
    if classes is not None:
        if type(classes) is not list or len(classes) != n or not {*map(type, classes)} <= _STRINGS:
            return None
        named = [c for c in classes if c is not None]
        if named and max(map(len, named)) > 256:
            return None
        present |= np.array([c is not None for c in classes], dtype=bool)
    if not present.all():
        return None
    latency = b.get("latency_ms")
    lat = None
    if latency is not None:
        lat = _number_column(latency, n, np.zeros(n, dtype=bool))
        if lat is False or (lat is not None and bool(np.nanmin(lat, initial=0.0) < 0)):
            return None
    out = _assemble(decoder, model_id, version, ts_ms, numbers, strings,
                    score if score is not None else np.full(n, np.nan),
                    classes if classes is not None else [None] * n)
    out.event_ids, out.values = ids, value  # label join, regression performance
    out.latency_ms = lat if isinstance(lat, np.ndarray) else None
    return out


def _number_column(col: Any, n: int, present: np.ndarray) -> np.ndarray | None | Literal[False]:
    if col is None:
        return None
    if type(col) is not list or len(col) != n or not {*map(type, col)} <= _NUMBERS:
        return False
    arr = np.array(col, dtype=np.float64)
    if not np.isfinite(arr[~np.isnan(arr)]).all():
        return False
    present |= ~np.isnan(arr)
    return arr


def _assemble(decoder: RecordDecoder, model_id: str, version: str, ts_ms: np.ndarray,
              numbers: dict[str, np.ndarray], strings: Mapping[str, Sequence[Any]], score: np.ndarray,
              classes: Sequence[Any]) -> ColumnBatch:
    """Kind checks (whole message) and the engine's columns, missing features as NaN / None."""
    kinds = decoder.fast.feature_kinds.get(model_id)
    if kinds is None:
        raise EventRejected("unknown_model", f"model_id {model_id!r} is not configured")
    for name, kind in kinds.items():
        if kind == "numeric" and name in strings:
            kind_got = next(type(v).__name__ for v in strings[name] if v is not None)
            raise EventRejected("wrong_type", f"feature {name!r} is numeric, got {kind_got}")
        if kind == "embedding" and (name in strings or name in numbers):
            col: Sequence[Any] = strings[name] if name in strings else numbers[name].tolist()
            emb_got = next((type(v).__name__ for v in col if v is not None and v == v), None)
            if emb_got is not None:
                raise EventRejected("wrong_type", f"feature {name!r} is an embedding, got {emb_got}")
    n = ts_ms.size
    numeric_names, categorical_names = decoder.features[model_id]
    numeric: dict[str, np.ndarray] = {}
    for name in numeric_names:
        numeric[name] = score if name == PREDICTION_SCORE else (
            numbers[name] if name in numbers else np.full(n, np.nan))
    categorical: dict[str, Sequence[str | None]] = {}
    for name in categorical_names:
        if name == PREDICTION_CLASS:
            categorical[name] = classes
        elif name in strings:
            categorical[name] = strings[name]
        elif name in numbers:
            categorical[name] = [None if math.isnan(v) else str(v) for v in numbers[name].tolist()]
        else:
            categorical[name] = [None] * n
    versions = cast("Sequence[str]", CodedColumn.constant(version, n))  # one version: no list of n references
    return ColumnBatch(model_id=model_id, ts_ms=ts_ms, versions=versions, numeric=numeric, categorical=categorical)


def _from_model(model: PredictionBatch, decoder: RecordDecoder) -> ColumnBatch:
    """Columns from a pydantic-validated batch (the unusual shapes: bools, embeddings, slices)."""
    kinds = decoder.fast.feature_kinds.get(model.model_id)
    if kinds is None:
        raise EventRejected("unknown_model", f"model_id {model.model_id!r} is not configured")
    from stream_monitor.contracts.decode import check_kinds

    n = len(model.event_id)
    for i in range(n):
        check_kinds({k: v[i] for k, v in model.features.items()}, kinds)
    numeric_names, categorical_names = decoder.features[model.model_id]
    p = model.prediction
    numeric = {name: numeric_column(p.score if p.score is not None else [None] * n) if name == PREDICTION_SCORE
               else numeric_column(model.features.get(name, [None] * n)) for name in numeric_names}
    categorical: dict[str, list[str | None]] = {
        name: (list(p.class_) if p.class_ is not None else [None] * n) if name == PREDICTION_CLASS
        else category_column(list(model.features.get(name, [None] * n))) for name in categorical_names}
    slices: list[Mapping[str, str] | None] | None = None
    if model.slice:
        tags = model.slice
        slices = [{k: v[i] for k, v in tags.items() if v[i] is not None} or None for i in range(n)]  # type: ignore[misc]
    return ColumnBatch(model_id=model.model_id, ts_ms=np.array(model.timestamp_ms, dtype=np.int64),
                       versions=[model.model_version] * n, numeric=numeric, categorical=categorical, slices=slices,
                       event_ids=list(model.event_id),
                       latency_ms=numeric_column(model.latency_ms) if model.latency_ms is not None else None,
                       values=numeric_column(p.value) if p.value is not None else None)


def encode_arrow(batch: dict[str, Any]) -> bytes:
    """An Arrow IPC stream for a batch given as a dict of columns (needs pyarrow)."""
    from stream_monitor.contracts.arrow import to_arrow

    return to_arrow(batch)

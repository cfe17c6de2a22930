"""Arrow IPC for the batched encoding: the columns of :class:`PredictionBatch` as one record batch.

Why Arrow: numeric columns arrive as little-endian float64 buffers, so decoding a
million values is a memory copy, not a million float parses. Layout: one Arrow IPC
*stream*; schema metadata ``model_id``, ``model_version`` (and optionally
``schema_version`` = ``1``); columns ``event_id`` (utf8), ``timestamp_ms`` (integer),
``prediction.score`` / ``prediction.value`` (numbers), ``prediction.class`` (utf8),
``latency_ms`` (numbers), ``features.<name>`` (numbers, bools or utf8). Nulls are
missing values. The row rules are the JSON batch's (and so the per-event contract's):
finite numbers, ids of 1-256 characters, at least one of score/class/value per row.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_monitor.coded_column import CodedColumn
from stream_monitor.contracts.batch import MAX_ROWS, MAX_TIMESTAMP_MS, _assemble
from stream_monitor.errors import EventRejected

if TYPE_CHECKING:
    from stream_monitor.columns import ColumnBatch
    from stream_monitor.contracts.records import RecordDecoder

_FIXED = {"event_id", "timestamp_ms", "prediction.score", "prediction.value", "prediction.class", "latency_ms"}


def _pa() -> Any:
    try:
        import pyarrow as pa
    except ImportError:
        raise EventRejected("schema", "Arrow IPC batches need pyarrow: pip install 'stream-monitor[arrow]'") from None
    return pa


def to_arrow(batch: dict[str, Any]) -> bytes:
    """IPC stream bytes for a dict with the JSON batch's fields (columns as lists or numpy arrays)."""
    pa = _pa()
    cols: dict[str, Any] = {"event_id": pa.array(batch["event_id"], pa.string()),
                            "timestamp_ms": pa.array(batch["timestamp_ms"], pa.int64())}
    for k, v in batch.get("prediction", {}).items():
        cols[f"prediction.{k}"] = pa.array(v, pa.string() if k == "class" else pa.float64())
    if batch.get("latency_ms") is not None:
        cols["latency_ms"] = pa.array(batch["latency_ms"], pa.float64())
    for k, v in batch["features"].items():
        cols[f"features.{k}"] = pa.array(v)
    meta = {"model_id": batch["model_id"], "model_version": batch["model_version"], "schema_version": "1"}
    table = pa.table(cols).replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _numbers(pa: Any, col: Any, name: str) -> np.ndarray:
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        raise EventRejected("schema", f"{name}: expected numbers, got Arrow type {col.type}")
    if col.null_count == 0 and pa.types.is_float64(col.type):  # the usual column: its buffer, no copy
        chunk = col.chunk(0) if isinstance(col, pa.ChunkedArray) and col.num_chunks == 1 else col
        arr = np.asarray(chunk.to_numpy(zero_copy_only=False), dtype=np.float64)
        if not np.isfinite(arr).all():
            raise EventRejected("non_finite", f"NaN or infinity in {name}")
        return arr
    arr = np.asarray(col.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
    valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if not np.isfinite(arr[valid]).all():
        raise EventRejected("non_finite", f"NaN or infinity in {name}")
    return arr


def _strings(pa: Any, col: Any, name: str, limit: int | None = None) -> CodedColumn:
    """A string column as dictionary codes (:class:`CodedColumn`): Arrow's own dictionary when it has one."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_null(col.type):
        return CodedColumn.constant(None, len(col))
    value_type = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    if not (pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
        raise EventRejected("schema", f"{name}: expected strings, got Arrow type {col.type}")
    encoded = col if pa.types.is_dictionary(col.type) else col.dictionary_encode()
    if limit is not None and len(col):  # a dictionary of our own lists only used entries; Arrow's may not
        plain = col.cast(value_type) if encoded is col else encoded.dictionary
        if (_max_len(pa, plain) or 0) > limit:
            raise EventRejected("schema", f"{name}: String should have at most {limit} characters")
    codes = encoded.indices
    if codes.null_count:
        codes = codes.cast(pa.int32()).fill_null(-1)
    return CodedColumn(np.asarray(codes.to_numpy(zero_copy_only=False)), encoded.dictionary.to_pylist())


def _max_len(pa: Any, col: Any) -> int | None:
    import pyarrow.compute as pc

    return pc.max(pc.utf8_length(col)).as_py()  # type: ignore[no-any-return]


def arrow_batch(raw: bytes, decoder: RecordDecoder) -> ColumnBatch:
    """Validate an Arrow IPC batch and turn it into the engine's columns (the whole message or nothing)."""
    pa = _pa()
    import pyarrow.compute as pc

    try:
        table = pa.ipc.open_stream(raw).read_all().combine_chunks()
    except (pa.ArrowInvalid, OSError):
        raise EventRejected("schema", "not a valid Arrow IPC stream") from None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    model_id, version = meta.get("model_id"), meta.get("model_version")
    if meta.get("schema_version", "1") != "1" or not model_id or not decoder._model_ok(model_id) \
            or not version or len(version) > 256:
        raise EventRejected("schema", "metadata needs model_id (pattern [A-Za-z0-9._:/-], <= 128) and "
                                      "model_version (1-256 characters); schema_version must be 1")
    names = set(table.column_names)
    unknown = sorted(n for n in names - _FIXED if not n.startswith("features.") or len(n) in (9,) or len(n) > 137)
    if unknown or "event_id" not in names or "timestamp_ms" not in names:
        raise EventRejected("schema", f"unknown columns {unknown[:5]} or missing event_id / timestamp_ms")
    n = table.num_rows
    if not 1 <= n <= MAX_ROWS:
        raise EventRejected("schema", f"a batch carries 1 to {MAX_ROWS} rows, got {n}")
    ids, ts = table.column("event_id"), table.column("timestamp_ms")
    if ids.null_count or ts.null_count or not pa.types.is_integer(ts.type):
        raise EventRejected("schema", "event_id and timestamp_ms must be non-null; timestamp_ms an integer")
    lengths = pc.utf8_length(ids.cast(pa.string()))
    if pc.min(lengths).as_py() < 1 or pc.max(lengths).as_py() > 256:
        raise EventRejected("schema", "event_id: 1 to 256 characters")
    ts_ms = np.asarray(ts.cast(pa.int64()).to_numpy(), dtype=np.int64)
    if ts_ms.min() < 0 or ts_ms.max() > MAX_TIMESTAMP_MS:
        raise EventRejected("schema", f"timestamp_ms must be within 0..{MAX_TIMESTAMP_MS}")
    present = np.zeros(n, dtype=bool)
    score = np.full(n, np.nan)
    classes: Sequence[Any] = [None] * n
    if "prediction.score" in names:
        score = _numbers(pa, table.column("prediction.score"), "prediction.score")
        present |= ~np.isnan(score)
    values = None
    if "prediction.value" in names:
        values = _numbers(pa, table.column("prediction.value"), "prediction.value")
        present |= ~np.isnan(values)
    if "prediction.class" in names:
        col = table.column("prediction.class")
        classes = _strings(pa, col, "prediction.class", 256)
        present |= ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if not present.all():
        row = int(np.flatnonzero(~present)[0])
        raise EventRejected("schema", f"row {row}: prediction needs at least one of 'score', 'class' or 'value'")
    lat = None
    if "latency_ms" in names:
        lat = _numbers(pa, table.column("latency_ms"), "latency_ms")
        if bool(np.nanmin(lat, initial=0.0) < 0):
            raise EventRejected("schema", "latency_ms: Input should be greater than or equal to 0")
    kinds = decoder.fast.feature_kinds.get(model_id, {})
    numbers: dict[str, np.ndarray] = {}
    strings: dict[str, Sequence[Any]] = {}
    for col_name in sorted(n for n in names if n.startswith("features.")):
        name, col = col_name[9:], table.column(col_name)
        if pa.types.is_null(col.type):  # every row missing (what pyarrow infers for a column of None)
            continue
        if pa.types.is_boolean(col.type):
            values = col.to_pylist()
            if kinds.get(name) == "categorical":
                strings[name] = [None if v is None else ("true" if v else "false") for v in values]
            else:
                numbers[name] = np.array([np.nan if v is None else float(v) for v in values])
        elif pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
            numbers[name] = _numbers(pa, col, col_name)
        else:
            strings[name] = _strings(pa, col, col_name)
    out = _assemble(decoder, model_id, version, ts_ms, numbers, strings, score, classes)
    out.event_ids, out.latency_ms, out.values = ids.to_pylist(), lat, values  # label join, latency, regression
    return out

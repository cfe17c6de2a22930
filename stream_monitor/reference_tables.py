"""Reference profiles from tables: JSON lines, CSV, or Parquet (with pyarrow), in bounded memory.

A table is read in chunks of rows, one list per column, so a file of any size is
profiled with the same sketches the stream uses. Two passes: the first builds the
sketches and fixes the numeric bin edges; the second counts every numeric column on
those edges exactly, so the reference's bin counts are exact rather than estimated
from KLL (a stream-built reference has only one pass and estimates them).

Rows may be flat (``{"income": 52000, "channel": "web", ...}``) or prediction events
(``{"features": {...}, "prediction": {"score": ...}, "timestamp": ...}``), which are
flattened to the feature names plus ``prediction.score`` / ``prediction.class`` /
``prediction.value``. In CSV an embedding cell is a JSON array (``"[0.1, 0.2]"``)
and an empty cell is missing.
"""
from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from stream_monitor.errors import ProfileError
from stream_monitor.reference import ReferenceProfile, build_profile
from stream_monitor.sketches import CategoryCounts, EmbeddingSketch, EmbeddingSpace, NumericSketch
from stream_monitor.sketches.embedding import RandomFourierFeatures
from stream_monitor.sketches.histogram import BinningStrategy, FixedEdgeHistogram, make_edges

Columns = dict[str, list[Any]]
FORMATS = ("jsonl", "csv", "parquet")
#: Columns that describe the row, not the model's inputs; never profiled unless asked for.
META_COLUMNS = frozenset({"timestamp", "event_id", "model_id", "model_version", "schema_version", "latency_ms"})


def table_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".parquet"):
        return suffix[1:]
    raise ProfileError(f"{path}: cannot tell the table format from {suffix!r}; valid: .jsonl, .csv, .parquet")


def read_table(path: str | Path, chunk_rows: int = 50_000, fmt: str | None = None) -> Iterator[Columns]:
    """Chunks of at most `chunk_rows` rows, as column name -> list of values (None when absent)."""
    fmt = fmt or table_format(path)
    if fmt not in FORMATS:
        raise ProfileError(f"unknown table format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "parquet":
        yield from _parquet_chunks(Path(path), chunk_rows)
        return
    with Path(path).open(newline="" if fmt == "csv" else None) as fh:
        rows: Iterator[dict[str, Any]]
        if fmt == "csv":
            rows = ({k: (v if v != "" else None) for k, v in r.items()} for r in csv.DictReader(fh))
        else:
            rows = (_flatten(json.loads(line)) for line in fh if line.strip())
        while chunk := list(islice(rows, chunk_rows)):
            yield _columns(chunk)


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[Columns]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ProfileError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        data = batch.to_pydict()
        if any(isinstance(v, dict) for col in data.values() for v in col[:1]):
            yield _columns([_flatten(dict(zip(data, row, strict=True))) for row in zip(*data.values(), strict=True)])
        else:
            yield data


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    """A prediction event becomes its features plus prediction.*; a flat row is returned as is."""
    if not isinstance(row.get("features"), dict):
        return row
    flat = {k: v for k, v in row.items() if k not in ("features", "prediction", "slice", "llm")}
    flat.update(row["features"])
    for key, value in (row.get("prediction") or {}).items():
        flat[f"prediction.{'class' if key == 'class_' else key}"] = value
    return flat


def _columns(rows: list[dict[str, Any]]) -> Columns:
    names = list(dict.fromkeys(k for r in rows for k in r))
    return {name: [r.get(name) for r in rows] for name in names}


def infer_kinds(columns: Columns) -> dict[str, str]:
    """numeric, categorical or embedding per column, from the values of one chunk (meta columns skipped)."""
    kinds: dict[str, str] = {}
    for name, values in columns.items():
        present = [v for v in values if v is not None]
        if name in META_COLUMNS or not present:
            continue
        if all(isinstance(v, list) or (isinstance(v, str) and v.lstrip().startswith("[")) for v in present):
            kinds[name] = "embedding"
        elif all(_is_number(v) for v in present):
            kinds[name] = "numeric"
        else:
            kinds[name] = "categorical"
    return kinds


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int | float):
        return True
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def numeric_column(values: list[Any]) -> np.ndarray:
    """Floats, NaN for missing or unparsable cells (they count as missing, as in the stream)."""
    try:
        out = np.asarray(values, dtype=np.float64)  # fast path: numbers, numeric strings and None
    except (TypeError, ValueError):
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            if v is not None and not isinstance(v, list | dict):
                with contextlib.suppress(TypeError, ValueError):
                    out[i] = float(v)
    if out.ndim != 1:
        return numeric_column([None if isinstance(v, list | dict) else v for v in values])
    out[~np.isfinite(out)] = np.nan
    return out


def categorical_column(values: list[Any]) -> tuple[list[str], int]:
    """The present values as strings (booleans as "true"/"false", like the engine) and the missing count."""
    present = ["true" if v is True else "false" if v is False else str(v)
               for v in values if v is not None and not isinstance(v, list | dict)]
    return present, len(values) - len(present)


def embedding_rows(values: list[Any]) -> list[list[float] | None]:
    return [json.loads(v) if isinstance(v, str) else v for v in values]


def build_profile_from_table(
    path: str | Path,
    model_id: str,
    *,
    kinds: dict[str, str] | None = None,
    bins: int = 10,
    max_categories: int = 50,
    binning: BinningStrategy = "quantile",
    pca_components: int = 10,
    rff: RandomFourierFeatures | None = None,
    chunk_rows: int = 50_000,
    fmt: str | None = None,
) -> ReferenceProfile:
    """A sealed profile of the table at `path` (see the module docstring).

    `kinds` (feature name -> "numeric" | "categorical" | "embedding") selects and
    types the columns, e.g. the model's configured features plus
    ``{"prediction.score": "numeric", "prediction.class": "categorical"}``; without
    it every non-meta column of the first chunk is profiled with an inferred kind.
    """
    chunks = read_table(path, chunk_rows, fmt)
    first = next(chunks, None)
    if first is None:
        raise ProfileError(f"{path}: the table has no rows; nothing to build a reference from")
    kinds = dict(kinds) if kinds is not None else infer_kinds(first)
    numeric = {f: NumericSketch() for f, k in kinds.items() if k == "numeric"}
    categorical = {f: CategoryCounts(10 * max_categories) for f, k in kinds.items() if k == "categorical"}
    embedding = {f: EmbeddingSketch(EmbeddingSpace(rff if rff is not None else RandomFourierFeatures()),
                                    track_covariance=True) for f, k in kinds.items() if k == "embedding"}
    rows = 0
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    for chunk in _chain(first, chunks):
        n = len(next(iter(chunk.values()), []))
        rows += n
        for f, s in numeric.items():
            s.update(numeric_column(chunk.get(f, [None] * n)))
        for f, c in categorical.items():
            present, missing = categorical_column(chunk.get(f, [None] * n))
            c.missing += missing
            c.update(present)
        for f, es in embedding.items():
            es.update_rows(embedding_rows(chunk.get(f, [None] * n)))
        first_ts, last_ts = _span(chunk.get("timestamp"), first_ts, last_ts)
    edges = {f: make_edges(s.quantiles, bins, binning) for f, s in numeric.items() if s.n}
    for f, e in edges.items():  # second pass: exact counts on the final edges
        numeric[f].histogram = FixedEdgeHistogram(e)
    for chunk in read_table(path, chunk_rows, fmt) if edges else ():
        n = len(next(iter(chunk.values()), []))
        for f in edges:
            col = numeric_column(chunk.get(f, [None] * n))
            numeric[f].histogram.update(col[~np.isnan(col)])  # type: ignore[union-attr]
    return build_profile(
        model_id, {f: s for f, s in numeric.items() if s.n}, {f: c for f, c in categorical.items() if c.n},
        bins=bins, max_categories=max_categories, source=f"file:{Path(path).name}", row_count=rows,
        time_span=(first_ts.isoformat() if first_ts else None, last_ts.isoformat() if last_ts else None),
        embedding={f: es for f, es in embedding.items() if es.n >= 2},
        edges={f: e.tolist() for f, e in edges.items()}, pca_components=pca_components,
    )


def _chain(first: Columns, rest: Iterator[Columns]) -> Iterator[Columns]:
    yield first
    yield from rest


def _span(values: list[Any] | None, lo: datetime | None, hi: datetime | None
          ) -> tuple[datetime | None, datetime | None]:
    """Earliest and latest timestamp seen so far; naive times are taken as UTC, unparsable ones skipped."""
    for v in values or ():
        try:
            ts = v if isinstance(v, datetime) else datetime.fromisoformat(str(v))
        except ValueError:
            continue
        ts = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
        lo = ts if lo is None or ts < lo else lo
        hi = ts if hi is None or ts > hi else hi
    return lo, hi

"""Per-request answers for champion/challenger pairing, read from the engine's column batches.

Column batches carry each row's ``event_id``, version, ``prediction.score`` /
``prediction.class`` (when ``monitor_prediction`` is on), ``prediction.value``,
``latency_ms`` and the ``llm`` block (cost). Only models running a comparison are
read, so the others cost nothing.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from stream_monitor.decisions.challenger import Answer
from stream_monitor.window_state import PREDICTION_CLASS, PREDICTION_SCORE


def _num(column: np.ndarray | None, i: int) -> float | None:
    if column is None:
        return None
    v = float(column[i])
    return v if math.isfinite(v) else None


def _cost(llm: Any) -> float | None:
    cost = llm.get("cost_usd") if isinstance(llm, dict) else getattr(llm, "cost_usd", None)
    return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None


def answers_from_columns(batch: Any) -> Iterator[tuple[str, str, Answer]]:
    """(event_id, model_version, answer) for every row of a :class:`~stream_monitor.columns.ColumnBatch`."""
    ids = getattr(batch, "event_ids", None)
    if ids is None:
        return
    scores = batch.numeric.get(PREDICTION_SCORE)
    classes = batch.categorical.get(PREDICTION_CLASS)
    values, latency, llm = getattr(batch, "values", None), getattr(batch, "latency_ms", None), batch.llm
    for i, eid in enumerate(ids):
        if eid is None:
            continue
        yield eid, batch.versions[i], Answer(
            score=_num(scores, i), class_=classes[i] if classes is not None else None, value=_num(values, i),
            latency_ms=_num(latency, i), cost_usd=_cost(llm[i]) if llm is not None else None)

"""Per-request answers for champion/challenger pairing, read from accepted prediction records.

The engine's column batches carry no ``event_id`` (windows need none), so for the
models that run a champion/challenger comparison the pipeline hands the *accepted*
raw records here as well; only those models' records are read (one ``orjson.loads``
each), so models without a comparison cost nothing. Single prediction events and
``prediction_batch`` messages are understood; Arrow batches are not paired (their
columns would need a second decoder; docs/retraining.md).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from stream_monitor.decisions.challenger import Answer


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _cls(x: Any) -> str | None:
    if x is None:
        return None
    if isinstance(x, bool):
        return "true" if x else "false"
    return str(x)


def _answer(pred: Any, latency: Any, llm: Any) -> Answer:
    pred = pred if isinstance(pred, dict) else {}
    cost = llm.get("cost_usd") if isinstance(llm, dict) else None
    return Answer(score=_num(pred.get("score")), class_=_cls(pred.get("class")), value=_num(pred.get("value")),
                  latency_ms=_num(latency), cost_usd=_num(cost))


def answers_from_records(values: Sequence[bytes | None], models: frozenset[str]
                         ) -> Iterator[tuple[str, str, str, Answer]]:
    """(model_id, event_id, model_version, answer) for every request of `models` in the records."""
    for raw in values:
        if raw is None or not raw.startswith(b"{"):
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        batch = obj.get("prediction_batch")
        if isinstance(batch, dict):
            yield from _batch_answers(batch, models)
            continue
        model_id, event_id, version = obj.get("model_id"), obj.get("event_id"), obj.get("model_version")
        if model_id in models and isinstance(event_id, str) and isinstance(version, str):
            yield model_id, event_id, version, _answer(obj.get("prediction"), obj.get("latency_ms"), obj.get("llm"))


def _batch_answers(batch: dict[str, Any], models: frozenset[str]) -> Iterable[tuple[str, str, str, Answer]]:
    model_id, version, ids = batch.get("model_id"), batch.get("model_version"), batch.get("event_id")
    if model_id not in models or not isinstance(version, str) or not isinstance(ids, list):
        return
    pred = batch.get("prediction") if isinstance(batch.get("prediction"), dict) else {}
    n = len(ids)

    def column(values: Any) -> list[Any]:
        return values if isinstance(values, list) and len(values) == n else [None] * n

    scores, classes, vals = column(pred.get("score")), column(pred.get("class")), column(pred.get("value"))
    latency = column(batch.get("latency_ms"))
    for i, eid in enumerate(ids):
        if isinstance(eid, str):
            yield model_id, eid, version, Answer(score=_num(scores[i]), class_=_cls(classes[i]),
                                                 value=_num(vals[i]), latency_ms=_num(latency[i]))

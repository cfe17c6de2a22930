"""Sections 1 and 2: the decode floor, and the engine in-process (the replay path) on the same events."""
from __future__ import annotations

import gc
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from bench import stream
from bench.timing import measure, measure_pair, ratio
from stream_monitor.engine import Engine
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.pipeline import Pipeline

BATCH = 1000  # service.batch_size default: the consumer hands the pipeline this many records at a time


class _Null:
    """Alert and dead-letter sink that keeps nothing: the benchmark measures the engine, not a sink."""

    def publish(self, alert: Any) -> None: ...

    def send(self, record: Any, error: Any) -> None: ...

    def flush(self) -> int:
        return 0


def pipeline(window_seconds: float) -> Pipeline:
    engine = Engine(stream.config(window_seconds))
    return Pipeline(engine, MonitorMetrics(CollectorRegistry()), _Null(), _Null())


def records(messages: list[bytes]) -> list[list[RawRecord]]:
    recs = [RawRecord(value=m, key=None, topic="bench", partition=0, offset=i) for i, m in enumerate(messages)]
    return [recs[i : i + BATCH] for i in range(0, len(recs), BATCH)]


def floor(messages: list[bytes]) -> None:
    """orjson.loads alone, a batch at a time (the parsed batch is dropped as the engine drops it)."""
    loads = orjson.loads
    for i in range(0, len(messages), BATCH):
        [loads(m) for m in messages[i : i + BATCH]]


def floor_columns(messages: list[bytes]) -> None:
    """orjson.loads plus the move to columns: the numeric matrix and the categorical lists, per batch."""
    loads = orjson.loads
    num = itemgetter(*stream.NUMERIC)
    for i in range(0, len(messages), BATCH):
        feats = [loads(m)["features"] for m in messages[i : i + BATCH]]
        np.array(list(map(num, feats)), dtype=np.float64)
        for c in stream.CATEGORICAL:
            [f.get(c) for f in feats]


def run(n_events: int, n_batched: int, runs: int, window_seconds: float) -> dict[str, Any]:
    blk = stream.block(0, n_events, n_events)
    messages = stream.json_messages(blk)
    batches = records(messages)
    gc.collect()
    res: dict[str, Any] = {"events": n_events, "bytes_per_event": sum(map(len, messages)) / len(messages),
                           "features": len(stream.NUMERIC) + len(stream.CATEGORICAL),
                           "window_events": int(window_seconds * stream.RATE)}
    res["orjson_decode"] = measure(lambda: floor(messages), runs, n_events)

    def engine_json() -> None:
        p = pipeline(window_seconds)
        for b in batches:
            p.handle(b)
        p.finish()

    # Floor and engine run alternately, so the ratio compares runs made under the same load.
    res["engine_json"], res["floor_decode_columns"], pair = measure_pair(
        engine_json, lambda: floor_columns(messages), runs, n_events)
    res["engine_json_vs_floor"] = pair["median"]
    res["engine_json_vs_floor_range"] = [pair["min"], pair["max"]]
    res["engine_json_vs_floor_cpu"] = pair["cpu_median"]
    rows = 10_000
    for fmt in ("json", "arrow"):
        msgs = [stream.batch_message(stream.block(i, min(rows, n_batched - i), n_batched), fmt)
                for i in range(0, n_batched, rows)]
        recs = records(msgs)

        def engine_batched(recs: list[list[RawRecord]] = recs) -> None:
            p = pipeline(window_seconds)
            for b in recs:
                p.handle(b)
            p.finish()
            assert p.rejected == 0

        res[f"engine_batched_{fmt}"] = measure(engine_batched, runs, n_batched)
        res[f"engine_batched_{fmt}_bytes_per_event"] = sum(map(len, msgs)) / n_batched
        res[f"engine_batched_{fmt}_vs_engine_json"] = ratio(res[f"engine_batched_{fmt}"], res["engine_json"])
    return res

"""``python -m bench.spread [--events N] [--quick]``: what spreading a hot model costs.

Two figures for a model with 25 numeric features (plus the prediction's score and class):

1. **Partial size per pane**: the compressed record a shard publishes when a pane closes
   (every sketch of the pane: KLL, t-digest, HLL, fixed-edge histogram, moments, per
   feature), for panes of 1,000 to 100,000 events of one source partition. KLL and
   t-digest are bounded, so the size flattens as panes grow.
2. **Shard throughput, 1 vs 2 shards**: the in-process pipeline (decode, validate,
   route into panes, publish partials) over N events, by one worker holding every
   partition, and by two worker processes each holding half the partitions running at
   the same time (what two instances in one group do, without the broker). The
   unspread engine over the same events and the merger's time per window are given
   for comparison. On a machine with fewer free cores than workers the two-worker
   figure cannot scale: the report states the CPU count.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from stream_monitor.config import MonitorConfig, config_from_dict
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.engine import Engine
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.pipeline import Pipeline
from stream_monitor.spread import ListPartialSink, PartialRecord, SpreadRuntime

MODEL_ID = "hot-bench"
FEATURES = [f"feature_{i:02d}" for i in range(25)]
START = datetime(2026, 1, 1, tzinfo=UTC)
RATE = 1000  # events per second of event time
BATCH = 1000
TOPIC = "predictions"


class _Null:
    def publish(self, alert: Any) -> None: ...

    def send(self, record: Any, error: Any) -> None: ...

    def flush(self) -> int:
        return 0


def messages(first: int, n: int, step: int = 1, seed: int = 0) -> list[bytes]:
    """Events ``first, first + step, ...`` (n of them) of the stream: 25 normal features, 1 ms apart."""
    idx = first + step * np.arange(n)
    rng = np.random.default_rng([seed, first + 10**9, step])
    values = rng.normal(100.0, 15.0, size=(n, len(FEATURES))).round(4).tolist()
    out = []
    for i, row in zip(idx.tolist(), values, strict=True):
        ts = START + timedelta(milliseconds=i * 1000 // RATE)
        score = 1.0 / (1.0 + np.exp(-(row[0] - 100.0) / 15.0))
        out.append(orjson.dumps({
            "event_id": f"e{i}", "model_id": MODEL_ID, "model_version": "v1",
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "features": dict(zip(FEATURES, row, strict=True)),
            "prediction": {"score": round(float(score), 6), "class": "yes" if score >= 0.5 else "no"}}))
    return out


def config(reference: Path, window_seconds: float, spread: bool) -> MonitorConfig:
    model = {"model_id": MODEL_ID, "features": [{"name": n, "kind": "numeric"} for n in FEATURES],
             "window": {"size_seconds": window_seconds}, "reference": {"path": str(reference)},
             "spread": {"enabled": spread}}
    return config_from_dict({"service": {"metrics_port": 0, "max_event_bytes": 1 << 20}, "models": [model]})


def build_reference(directory: Path) -> Path:
    path = directory / "reference.json"
    cfg = config_from_dict({"models": [{"model_id": MODEL_ID, "features": [{"name": n} for n in FEATURES]}]})
    events = [PredictionEvent.model_validate_json(m) for m in messages(-50_000, 20_000, seed=1)]
    Engine(cfg).build_reference(MODEL_ID, events, source="file:reference.json").save(path)
    return path


def _run(cfg: MonitorConfig, partitions: int) -> tuple[Pipeline, SpreadRuntime, ListPartialSink]:
    engine = Engine(cfg)
    sink = ListPartialSink()
    runtime = SpreadRuntime(engine, sink, CollectorRegistry())
    runtime.source_partitions = partitions
    pipeline = Pipeline(engine, MonitorMetrics(CollectorRegistry()), _Null(), _Null())  # type: ignore[arg-type]
    pipeline.spread = runtime
    return pipeline, runtime, sink


def _feed(pipeline: Pipeline, values: list[bytes], partition: int, topic: str = TOPIC) -> None:
    for i in range(0, len(values), BATCH):
        pipeline.handle([RawRecord(value=v, key=None, topic=topic, partition=partition, offset=i + j)
                         for j, v in enumerate(values[i:i + BATCH])])


def partial_sizes(reference: Path, panes: list[int]) -> list[dict[str, Any]]:
    """Encoded size of one pane partial of n events (the pane spans the n events; one later event closes it)."""
    out = []
    for n in panes:
        cfg = config(reference, window_seconds=n / RATE, spread=True)
        pipeline, _runtime, sink = _run(cfg, 1)
        _feed(pipeline, messages(0, n) + messages(2 * n, 1), 0)
        pane = next(r for r in sink.records if r.kind == "pane")
        body = json.dumps({"pane": pane.pane, "outcomes": pane.outcomes}, allow_nan=True).encode()
        hb = next(r for r in sink.records if r.kind == "watermark")
        out.append({"pane_events": pane.n_events, "partial_bytes": len(pane.encode()), "json_bytes": len(body),
                    "watermark_bytes": len(hb.encode()), "features": len(FEATURES) + 1})
    return out


def _worker(args: tuple[str, float, int, int, int, bool, Any]) -> dict[str, Any]:
    """One shard instance: its partitions' events (generated first), then timed through the pipeline."""
    ref, window, total, workers, me, spread, barrier = args
    cfg = config(Path(ref), window, spread)
    pipeline, runtime, sink = _run(cfg, workers)
    if not spread:
        pipeline.spread = None
    mine = messages(me, total // workers, step=workers)
    if barrier is not None:
        barrier.wait()
    t0, c0 = time.time(), time.process_time()
    _feed(pipeline, mine, me)
    t1, c1 = time.time(), time.process_time()
    return {"events": len(mine), "start": t0, "end": t1, "cpu": c1 - c0,
            "partials": [r.encode() for r in sink.records]}


def throughput(reference: Path, total: int, window: float, runs: int) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    one, two, unspread, merge_ms = [], [], [], []
    cpu: dict[str, list[float]] = {"unspread": [], "one": [], "two": []}
    for _ in range(runs):
        base = _worker((str(reference), window, total, 1, 0, False, None))
        unspread.append(base["events"] / (base["end"] - base["start"]))
        cpu["unspread"].append(base["cpu"] / base["events"] * 1e6)
        solo = _worker((str(reference), window, total, 1, 0, True, None))
        one.append(solo["events"] / (solo["end"] - solo["start"]))
        cpu["one"].append(solo["cpu"] / solo["events"] * 1e6)
        barrier = ctx.Manager().Barrier(2)
        with ctx.Pool(2) as pool:
            parts = pool.map(_worker, [(str(reference), window, total, 2, w, True, barrier) for w in range(2)])
        two.append(sum(p["events"] for p in parts) / (max(p["end"] for p in parts) - min(p["start"] for p in parts)))
        cpu["two"].extend(p["cpu"] / p["events"] * 1e6 for p in parts)
        # the merger: every partial of both shards, in one partials partition
        cfg = config(reference, window, True)
        pipeline, _runtime, _sink = _run(cfg, 2)
        records = [PartialRecord.decode(v) for p in parts for v in p["partials"]]
        windows = len({r.pane_start_ms for r in records if r.kind == "pane"})
        t = time.perf_counter()
        values = [r.encode() for r in records]
        _feed(pipeline, values, 0, topic=cfg.topics.partials)
        merge_ms.append((time.perf_counter() - t) * 1000 / max(1, windows))

    def med(xs: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(xs)), "min": round(min(xs)), "max": round(max(xs))}

    return {"events": total, "window_seconds": window, "runs": runs, "cpus": os.cpu_count(),
            "unspread_events_per_s": med(unspread), "one_shard_events_per_s": med(one),
            "two_shards_events_per_s": med(two), "merge_ms_per_window": round(statistics.median(merge_ms), 1),
            "cpu_us_per_event": {k: round(statistics.median(v), 1) for k, v in cpu.items()},
            "load_average": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.spread", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000, help="events through the shards (default 200,000)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window-seconds", type=float, default=10.0, help="window size (events 1 ms apart)")
    ap.add_argument("--quick", action="store_true", help="small counts, one run (smoke run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.runs = 20_000, 1
    with tempfile.TemporaryDirectory() as tmp:
        reference = build_reference(Path(tmp))
        panes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
        result = {"partial_size": partial_sizes(reference, panes),
                  "throughput": throughput(reference, args.events, args.window_seconds, args.runs)}
    print("partial record per pane (25 numeric features + prediction score, zlib JSON):")
    for row in result["partial_size"]:
        print(f"  {row['pane_events']:>7} events: {row['partial_bytes'] / 1024:6.1f} KiB "
              f"({row['json_bytes'] / 1024:.0f} KiB uncompressed); watermark record {row['watermark_bytes']} B")
    t = result["throughput"]
    print(f"throughput over {t['events']} events, {t['window_seconds']:g} s windows, median of {t['runs']} "
          f"({t['cpus']} CPUs, load average {t['load_average']}):")
    c = t["cpu_us_per_event"]
    print(f"  unspread engine        {t['unspread_events_per_s']['median']:>9,} events/s  {c['unspread']} us CPU/event")
    print(f"  1 shard (all parts)    {t['one_shard_events_per_s']['median']:>9,} events/s  {c['one']} us CPU/event")
    print(f"  2 shards in parallel   {t['two_shards_events_per_s']['median']:>9,} events/s  {c['two']} us CPU/event "
          "per shard (aggregate wall rate: scales only with free cores)")
    print(f"  merger                 {t['merge_ms_per_window']:>9} ms per window (2 sources)")
    return result


if __name__ == "__main__":
    main()

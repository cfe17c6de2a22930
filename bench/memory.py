"""Section 4: bytes of state per feature per window, and peak resident memory over N events.

Each count runs in a fresh process (``python -m bench.memory N``) so that peak RSS is
that run's alone. Events go through the batched (Arrow or JSON) path so that 10M
events take seconds; the state kept is the same whatever the encoding.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from bench import stream
from bench.inprocess import _Null
from stream_monitor.engine import Engine
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.pipeline import Pipeline

ROWS = 10_000


def state_bytes(engine: Engine) -> dict[str, float]:
    """Serialised size of one open pane's sketches, per numeric and per categorical feature.

    The state is the binary serialisation (``to_bytes``: what partial-window sketches
    exchange, and the form ``NUMERIC_SKETCH_BYTES_BOUND`` bounds); the JSON of a
    checkpoint carries the same bytes in base64, a third more, reported alongside.
    """
    mm = engine.models[stream.MODEL_ID]
    pane = next(iter(mm.panes.values()))
    num = [len(s.to_bytes()) for s in pane.overall.numeric.values()]
    num_json = [len(orjson.dumps(s.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY))
                for s in pane.overall.numeric.values()]
    cat = [len(c.to_bytes()) for c in pane.overall.categorical.values()]
    kll = [len(s.quantiles.serialize()) for s in pane.overall.numeric.values()]
    return {"numeric_feature_bytes": max(num), "numeric_feature_json_bytes": max(num_json),
            "categorical_feature_bytes": max(cat), "kll_bytes": max(kll), "pane_events": pane.n_events}


def peak_rss_mib() -> float:
    """This process's peak resident memory.

    ``VmHWM`` of /proc/self/status where there is one: ``ru_maxrss`` would also count the
    parent's memory at the fork that started this process (Linux keeps it across exec),
    and the benchmark's parent holds millions of encoded messages by then.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n_events: int, window_seconds: float, fmt: str) -> dict[str, Any]:
    engine = Engine(stream.config(window_seconds))
    p = Pipeline(engine, MonitorMetrics(CollectorRegistry()), _Null(), _Null())
    state: dict[str, float] = {}
    for i in range(0, n_events, ROWS):
        msg = stream.batch_message(stream.block(i, min(ROWS, n_events - i), n_events), fmt)
        p.handle([RawRecord(value=msg, key=None, topic="m", partition=0, offset=i)])
        if not state and sum(p.totals.processed.values()) >= int(window_seconds * stream.RATE) * 1.5:
            state = state_bytes(engine)
    p.finish()
    return {"events": n_events, "peak_rss_mib": peak_rss_mib(), "processed": sum(p.totals.processed.values()),
            **state}


def run(counts: list[int], window_seconds: float, fmt: str) -> dict[str, Any]:
    out: dict[str, Any] = {"format": fmt, "window_events": int(window_seconds * stream.RATE), "runs": []}
    for n in counts:
        proc = subprocess.run([sys.executable, "-m", "bench.memory", str(n), str(window_seconds), fmt],
                              capture_output=True, text=True, timeout=1800, check=True)
        out["runs"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if len(out["runs"]) >= 2:
        a, b = out["runs"][0], out["runs"][-1]
        out["peak_growth"] = b["peak_rss_mib"] / a["peak_rss_mib"] - 1
    out.update({k: out["runs"][0].get(k) for k in ("numeric_feature_bytes", "numeric_feature_json_bytes",
                                                     "categorical_feature_bytes", "kll_bytes", "pane_events")})
    return out


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3])))

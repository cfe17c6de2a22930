"""The benchmark's stream: 25-feature prediction events (20 numeric, 5 categorical), a shift half-way.

Why generated here and not by ``stream_monitor.simulate``: the figures in the issue are
for 25-feature events of about 730 bytes, and the benchmark needs millions of them,
so values are drawn with numpy a block at a time. The same rows can be rendered as
per-event JSON messages or as batched messages (JSON columns, Arrow IPC).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from stream_monitor.config import MonitorConfig, config_from_dict
from stream_monitor.contracts.batch import encode_arrow, encode_json

MODEL_ID = "bench-model"
NUMERIC = [f"feature_{i:02d}" for i in range(20)]
CATEGORICAL = [f"category_{i}" for i in range(5)]
CATEGORIES = ["web", "mobile", "branch", "partner"]
SHIFTED = NUMERIC[:5] + CATEGORICAL[:1]
START = datetime(2026, 1, 1, tzinfo=UTC)
RATE = 1000  # events per second of event time: a window of W seconds holds 1000 * W events


@dataclass(frozen=True)
class Block:
    """``n`` consecutive rows of the stream as columns."""

    first: int
    numeric: np.ndarray  # (n, 20)
    codes: np.ndarray  # (n, 5) indexes into CATEGORIES
    score: np.ndarray

    @property
    def n(self) -> int:
        return int(self.score.size)


def block(first: int, n: int, total: int, seed: int = 0) -> Block:
    """Rows ``first .. first + n`` of a stream of ``total`` rows whose second half is shifted."""
    rng = np.random.default_rng([seed, first])
    num = rng.normal(100.0, 15.0, size=(n, len(NUMERIC))).round(4)
    shifted = np.arange(first, first + n) >= total // 2
    num[shifted, :5] += 7.5  # half a standard deviation
    probs = np.where(shifted[:, None], [0.2, 0.2, 0.2, 0.4], [0.45, 0.35, 0.15, 0.05])
    u = rng.random((n, len(CATEGORICAL)))
    codes = rng.integers(0, len(CATEGORIES), size=(n, len(CATEGORICAL)))
    codes[:, 0] = (u[:, 0:1] > np.cumsum(probs, axis=1)).sum(axis=1)
    score = (1.0 / (1.0 + np.exp(-(num[:, 0] - 100.0) / 15.0))).round(6)
    return Block(first, num, codes, score)


def timestamp_ms(i: np.ndarray | int) -> Any:
    return int(START.timestamp() * 1000) + np.asarray(i) * (1000 // RATE)


def events(b: Block) -> Iterator[dict[str, Any]]:
    """Per-event dicts (the JSON form), ISO timestamps with ``Z``."""
    nums = b.numeric.tolist()
    cats = b.codes.tolist()
    scores = b.score.tolist()
    for j in range(b.n):
        i = b.first + j
        feats: dict[str, Any] = dict(zip(NUMERIC, nums[j], strict=True))
        feats.update({c: CATEGORIES[k] for c, k in zip(CATEGORICAL, cats[j], strict=True)})
        ts = START + timedelta(milliseconds=i * (1000 // RATE))
        yield {"event_id": f"bench-{i:012d}", "model_id": MODEL_ID, "model_version": "v1",
               "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
               "features": feats, "prediction": {"score": scores[j], "class": "yes" if scores[j] >= 0.5 else "no"},
               "latency_ms": 12.5}


def json_messages(b: Block) -> list[bytes]:
    return [orjson.dumps(e) for e in events(b)]


def batch_columns(b: Block) -> dict[str, Any]:
    ids = [f"bench-{i:012d}" for i in range(b.first, b.first + b.n)]
    cats = np.asarray(CATEGORIES, dtype=object)[b.codes]
    return {"model_id": MODEL_ID, "model_version": "v1", "event_id": ids,
            "timestamp_ms": timestamp_ms(np.arange(b.first, b.first + b.n)).tolist(),
            "features": {**{n: b.numeric[:, k] for k, n in enumerate(NUMERIC)},
                         **{n: cats[:, k].tolist() for k, n in enumerate(CATEGORICAL)}},
            "prediction": {"score": b.score, "class": np.where(b.score >= 0.5, "yes", "no").tolist()}}


def batch_message(b: Block, fmt: str) -> bytes:
    cols = batch_columns(b)
    if fmt == "arrow":
        return encode_arrow(cols)
    cols["features"] = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in cols["features"].items()}
    cols["prediction"]["score"] = cols["prediction"]["score"].tolist()
    return encode_json(cols)


def config(window_seconds: float, **extra: Any) -> MonitorConfig:
    """One model with the stream's 25 features; the first window is the reference."""
    model = {"model_id": MODEL_ID, "features": [{"name": n, "kind": "numeric"} for n in NUMERIC]
             + [{"name": n, "kind": "categorical"} for n in CATEGORICAL],
             "window": {"size_seconds": window_seconds}, "reference": {"from_stream_windows": 1}}
    service = {"max_event_bytes": 1 << 24, "metrics_port": 0, "metrics_host": "127.0.0.1"}
    return config_from_dict({"service": service, "models": [model], **extra})

"""Synthetic inference traffic with a scripted drift, for the demo, the tests and the benchmarks.

The simulated model is a credit-risk scorer with 10 numeric and 3 categorical
features. From ``drift_at`` on, the features named in ``drift_features`` shift
(numeric: by ``drift_strength`` reference standard deviations; categorical: mass
moves to the rarest category), and the score follows because it is computed from
the features. A fraction ``bad_rate`` of messages is malformed in one of several
ways, to exercise the dead-letter path.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

#: name -> (mean, std) of the reference distribution (normal, clipped where needed).
NUMERIC_FEATURES: dict[str, tuple[float, float]] = {
    "age": (41.0, 12.0),
    "income": (58_000.0, 18_000.0),
    "credit_score": (680.0, 55.0),
    "debt_to_income": (0.32, 0.1),
    "num_accounts": (6.0, 2.5),
    "account_age_months": (84.0, 30.0),
    "utilization": (0.35, 0.15),
    "num_inquiries": (1.5, 1.2),
    "loan_amount": (15_000.0, 6_000.0),
    "employment_years": (7.0, 4.0),
}
CATEGORICAL_FEATURES: dict[str, tuple[list[str], list[float]]] = {
    "channel": (["web", "mobile", "branch", "partner"], [0.45, 0.35, 0.15, 0.05]),
    "region": (["north", "south", "east", "west"], [0.25, 0.25, 0.25, 0.25]),
    "product": (["card", "loan", "mortgage"], [0.5, 0.35, 0.15]),
}
DEFAULT_DRIFT_FEATURES = ("income", "credit_score", "channel")
#: Padding of the "oversized" malformation: over the demo's 64 KiB limit, under Kafka's 1 MiB default.
OVERSIZED_BYTES = 200_000
DEMO_MAX_EVENT_BYTES = 65_536
MALFORMATIONS = ("bad_json", "non_finite", "schema", "wrong_type", "unknown_model", "oversized")


@dataclass
class TrafficSimulator:
    model_id: str = "credit-risk"
    model_version: str = "v1"
    seed: int = 7
    drift_at: datetime | None = None
    drift_until: datetime | None = None
    drift_features: tuple[str, ...] = DEFAULT_DRIFT_FEATURES
    drift_strength: float = 1.0
    bad_rate: float = 0.0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        unknown = set(self.drift_features) - set(NUMERIC_FEATURES) - set(CATEGORICAL_FEATURES)
        if unknown:
            raise ValueError(f"unknown drift feature(s) {sorted(unknown)}; choose from "
                             f"{sorted(NUMERIC_FEATURES) + sorted(CATEGORICAL_FEATURES)}")
        if not 0.0 <= self.bad_rate <= 1.0:
            raise ValueError(f"bad_rate must be within [0, 1], got {self.bad_rate}")
        self.rng = np.random.default_rng(self.seed)
        self._counter = 0

    def _features(self, drifted: bool) -> dict[str, Any]:
        feats: dict[str, Any] = {}
        for name, (mean, std) in NUMERIC_FEATURES.items():
            shift = self.drift_strength * std if drifted and name in self.drift_features else 0.0
            value = self.rng.normal(mean + shift, std)
            feats[name] = round(float(max(value, 0.0)), 4)
        for name, (cats, probs) in CATEGORICAL_FEATURES.items():
            p = np.asarray(probs)
            if drifted and name in self.drift_features:
                p = p * (1 - 0.5 * self.drift_strength)
                p[int(np.argmin(probs))] += 1 - p.sum()
            feats[name] = cats[int(self.rng.choice(len(cats), p=p / p.sum()))]
        if self.rng.random() < 0.01:
            feats["employment_years"] = None  # a realistic trickle of missing values
        return feats

    def _score(self, f: dict[str, Any]) -> float:
        z = (-0.00003 * (f["income"] - 58_000) - 0.01 * (f["credit_score"] - 680)
             + 3.0 * (f["debt_to_income"] - 0.32) + 2.0 * (f["utilization"] - 0.35) - 1.5)
        return round(1.0 / (1.0 + math.exp(-z)), 6)

    def event(self, ts: datetime) -> dict[str, Any]:
        """One valid prediction event at event time `ts`."""
        self._counter += 1
        drifted = self.drift_at is not None and ts >= self.drift_at and (
            self.drift_until is None or ts < self.drift_until)
        feats = self._features(drifted)
        score = self._score(feats)
        return {
            "event_id": f"{self.model_id}-{self.seed}-{self._counter}",
            "model_id": self.model_id,
            "model_version": self.model_version,
            "timestamp": ts.isoformat(),
            "features": feats,
            "prediction": {"score": score, "class": "default" if score >= 0.5 else "repaid"},
            "latency_ms": round(float(self.rng.gamma(4.0, 6.0)), 3),
            "slice": {"region": feats["region"]},
        }

    def message(self, ts: datetime) -> tuple[bytes, bytes, str | None]:
        """(key, value, malformation or None): keyed by model id so one model lives in one partition."""
        ev = self.event(ts)
        key = self.model_id.encode()
        if self.bad_rate and self.rng.random() < self.bad_rate:
            kind = MALFORMATIONS[int(self.rng.integers(len(MALFORMATIONS)))]
            return key, malformed(ev, kind), kind
        return key, orjson.dumps(ev), None

    def messages(self, start: datetime, count: int, rate: float) -> Iterator[tuple[bytes, bytes, str | None]]:
        """`count` messages with event times spaced 1/rate seconds apart from `start`."""
        step = timedelta(seconds=1.0 / rate)
        for i in range(count):
            yield self.message(start + i * step)


def malformed(event: dict[str, Any], kind: str) -> bytes:
    """A message broken in one specific way (see MALFORMATIONS)."""
    ev = dict(event, features=dict(event["features"]))
    if kind == "bad_json":
        return orjson.dumps(ev)[:-7]
    if kind == "non_finite":
        return orjson.dumps(ev).replace(b'"age":', b'"age":NaN,"_x":', 1)
    if kind == "schema":
        ev.pop("model_version")
        return orjson.dumps(ev)
    if kind == "wrong_type":
        ev["features"]["age"] = "forty"
        return orjson.dumps(ev)
    if kind == "unknown_model":
        ev["model_id"] = "no-such-model"
        return orjson.dumps(ev)
    if kind == "oversized":
        ev["features"]["padding"] = "x" * OVERSIZED_BYTES
        return orjson.dumps(ev)
    raise ValueError(f"unknown malformation {kind!r}; choose from {MALFORMATIONS}")


def demo_model_config(model_id: str = "credit-risk", window_seconds: float = 5.0,
                      reference_windows: int = 2) -> dict[str, Any]:
    """The model section matching the simulator's features (used by `demo` and the tests)."""
    features = [{"name": n, "kind": "numeric"} for n in NUMERIC_FEATURES]
    features += [{"name": n, "kind": "categorical"} for n in CATEGORICAL_FEATURES]
    return {
        "model_id": model_id,
        "owner": "risk-ml-team",
        "features": features,
        "window": {"size_seconds": window_seconds, "allowed_lateness_seconds": 0.0},
        "reference": {"from_stream_windows": reference_windows, "bins": 10},
    }


def utc_now() -> datetime:
    return datetime.now(UTC)

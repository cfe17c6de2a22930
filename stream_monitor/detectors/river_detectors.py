"""river.drift detectors as config entries.

Continuous detectors (ADWIN, KSWIN, Page-Hinkley) take any numeric signal; binary
ones (DDM, EDDM, HDDM_A, HDDM_W, FHDDM) take a 0/1 error indicator, so they apply to
the error stream once labels arrive. NaN (missing) values are skipped.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
from river import drift
from river.drift import binary

#: type name -> (river class, takes a binary signal)
DETECTORS: dict[str, tuple[Callable[..., Any], bool]] = {
    "adwin": (drift.ADWIN, False),
    "kswin": (drift.KSWIN, False),
    "page_hinkley": (drift.PageHinkley, False),
    "ddm": (binary.DDM, True),
    "eddm": (binary.EDDM, True),
    "hddm_a": (binary.HDDMA, True),
    "hddm_w": (binary.HDDMW, True),
    "fhddm": (binary.FHDDM, True),
}


class RiverDetector:
    """One river detector; hyper-parameters are the river constructor's, validated by name."""

    def __init__(self, kind: str, params: dict[str, Any] | None = None) -> None:
        if kind not in DETECTORS:
            raise ValueError(f"unknown detector {kind!r}; valid: {', '.join(DETECTORS)}")
        cls, self.binary = DETECTORS[kind]
        params = dict(params or {})
        allowed = set(inspect.signature(cls).parameters)
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValueError(f"{kind}: unknown parameter(s) {unknown}; valid: {sorted(allowed)}")
        if kind == "kswin":
            params.setdefault("seed", 0)  # deterministic, so a replay detects at the same events
        self.kind = kind
        self.params = params
        self._detector = cls(**params)

    def update(self, values: np.ndarray) -> list[int]:
        hits: list[int] = []
        det = self._detector
        for i, v in enumerate(values.tolist()):
            if v != v:  # NaN: missing value, not an observation
                continue
            if self.binary and v not in (0.0, 1.0):
                raise ValueError(f"{self.kind} takes a 0/1 error signal, got {v}")
            det.update(v)
            if det.drift_detected:
                hits.append(i)
        return hits


def make_detector(kind: str, params: dict[str, Any] | None = None) -> RiverDetector:
    return RiverDetector(kind, params)

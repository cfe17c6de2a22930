"""The detector protocol: feed a column of a per-event signal in event order, get the drift positions back.

A detector is stateful across windows (that is its point: it sees the stream, not
a window), so its state belongs to the engine state and must pickle.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Detector(Protocol):
    kind: str

    def update(self, values: np.ndarray) -> list[int]:
        """Feed values in event order; return the indices (into `values`) where drift was detected."""
        ...

"""Count, mean, variance, min and max, merged with Chan et al.'s parallel formula."""
from __future__ import annotations

import struct
from typing import Any

import numpy as np

_LAYOUT = struct.Struct("<qdddd")


class Moments:
    """Five numbers that merge exactly (up to float rounding): n, mean, M2, min, max.

    M2 (the sum of squared deviations) rather than the sum of squares keeps the
    variance accurate when the mean is large compared with the spread.
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def update(self, values: np.ndarray) -> None:
        if values.size:
            other = Moments()
            other.n = int(values.size)
            other.mean = float(values.mean())
            other.m2 = float(((values - other.mean) ** 2).sum())
            other.min = float(values.min())
            other.max = float(values.max())
            self.merge(other)

    def merge(self, other: Moments) -> None:
        if other.n == 0:
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else float("nan")

    @property
    def std(self) -> float:
        return float(np.sqrt(self.variance))

    def to_bytes(self) -> bytes:
        return _LAYOUT.pack(self.n, self.mean, self.m2, self.min, self.max)

    @classmethod
    def from_bytes(cls, data: bytes) -> Moments:
        m = cls()
        m.n, m.mean, m.m2, m.min, m.max = _LAYOUT.unpack(data)
        return m

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "m2": self.m2, "min": self.min, "max": self.max}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Moments:
        m = cls()
        m.n, m.mean, m.m2 = int(data["n"]), float(data["mean"]), float(data["m2"])
        m.min, m.max = float(data["min"]), float(data["max"])
        return m

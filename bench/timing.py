"""Medians with their spread: every figure in the report is the median of several runs."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def measure(fn: Callable[[], Any], runs: int, events: int) -> dict[str, float]:
    """events/s of ``fn`` over ``runs`` runs: median, min, max and the relative spread (max-min)/median."""
    rates = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        rates.append(events / (time.perf_counter() - t))
    med = statistics.median(rates)
    return {"events_per_s": med, "min": min(rates), "max": max(rates),
            "spread": (max(rates) - min(rates)) / med if med else 0.0, "runs": runs, "events": events}


def ratio(a: dict[str, float], b: dict[str, float]) -> float:
    return a["events_per_s"] / b["events_per_s"] if b["events_per_s"] else float("nan")

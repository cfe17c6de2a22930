"""Medians with their spread: every figure in the report is the median of several runs.

Rates are wall-clock (``perf_counter``), the figure a user sees; each result also
carries the median CPU-time rate (``process_time``), which other processes on a
shared machine disturb far less. :func:`measure_pair` alternates two workloads run
by run, so that their ratio compares runs made under the same machine load.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def _summary(rates: list[float], cpu_rates: list[float], runs: int, events: int) -> dict[str, float]:
    med = statistics.median(rates)
    return {"events_per_s": med, "min": min(rates), "max": max(rates),
            "spread": (max(rates) - min(rates)) / med if med else 0.0, "runs": runs, "events": events,
            "cpu_events_per_s": statistics.median(cpu_rates)}


def _once(fn: Callable[[], Any], events: int) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    fn()
    return events / (time.perf_counter() - t), events / max(time.process_time() - c, 1e-9)


def measure(fn: Callable[[], Any], runs: int, events: int) -> dict[str, float]:
    """events/s of ``fn`` over ``runs`` runs: median, min, max and the relative spread (max-min)/median."""
    got = [_once(fn, events) for _ in range(runs)]
    return _summary([g[0] for g in got], [g[1] for g in got], runs, events)


def measure_pair(a: Callable[[], Any], b: Callable[[], Any], runs: int, events: int
                 ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """:func:`measure` of `a` and `b` run alternately, and the per-pair ratio a/b (median, min, max)."""
    ga, gb = [], []
    for _ in range(runs):
        ga.append(_once(a, events))
        gb.append(_once(b, events))
    ratios = [x[0] / y[0] for x, y in zip(ga, gb, strict=True)]
    cpu = [x[1] / y[1] for x, y in zip(ga, gb, strict=True)]
    return (_summary([g[0] for g in ga], [g[1] for g in ga], runs, events),
            _summary([g[0] for g in gb], [g[1] for g in gb], runs, events),
            {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
             "cpu_median": statistics.median(cpu)})


def ratio(a: dict[str, float], b: dict[str, float]) -> float:
    return a["events_per_s"] / b["events_per_s"] if b["events_per_s"] else float("nan")

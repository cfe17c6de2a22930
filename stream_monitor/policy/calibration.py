"""Threshold calibration: set each rule's thresholds for a target false-alarm rate per window.

A fixed PSI threshold of 0.1 means very different things at 200 and at 200,000
events per window. Calibration estimates each statistic's distribution under no
drift at the configured window size, by a parametric bootstrap from the reference
profile (windows of ``window_events`` values drawn from the reference distribution:
inverse-CDF sampling from the KLL quantiles for numeric features, multinomial from
the category frequencies for categorical ones), and fits a gamma distribution to
the null sample by moments. Thresholds are the fitted null's upper quantiles: the
lowest severity at ``target_rate``, each higher severity ten times rarer. The fit
also gives p-values far into the tail, where a bootstrap sample has no points,
which is what Benjamini-Hochberg across many features needs.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats as sps

from stream_monitor.config import ModelConfig, RuleConfig
from stream_monitor.contracts.alerts import SEVERITY_ORDER
from stream_monitor.reference import CategoricalReference, NumericReference, ReferenceProfile
from stream_monitor.sketches import CategoryCounts, NumericSketch
from stream_monitor.stats.compare import compare_categorical, compare_numeric

#: Metrics whose null distribution is nonnegative and right-skewed: a gamma fit is apt.
CALIBRATABLE = ("psi", "ks_statistic", "wasserstein", "mean_shift", "js_divergence", "new_category_rate")
NULL_SAMPLE_KEEP = 101
REF_SAMPLE_CAP = 20_000


def _null_numeric(ref: NumericReference, metric: str, n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Two-sample null: a window of n and a reference of the reference's size, both from the reference law.

    The reference's own sampling noise is part of what a live window is compared
    with, so both sides are redrawn: bin counts exactly (multinomial of the
    reference's size), the reference KLL from at most REF_SAMPLE_CAP values (a smaller
    sample overstates its noise: conservative).
    """
    grid = np.linspace(0.0, 1.0, 4097)
    q = ref.quantiles.quantiles(grid)
    p = ref.counts / ref.counts.sum()
    m = min(ref.n, REF_SAMPLE_CAP)
    out = np.empty(draws)
    for i in range(draws):
        ref_sketch = NumericSketch(ref.edges)
        ref_sketch.update(np.interp(rng.random(m), grid, q))
        redrawn = dataclasses.replace(ref, counts=rng.multinomial(ref.n, p).astype(np.float64),
                                      quantiles=ref_sketch.quantiles, mean=ref_sketch.moments.mean,
                                      std=ref_sketch.moments.std)
        sketch = NumericSketch(ref.edges)
        sketch.update(np.interp(rng.random(n), grid, q))
        out[i] = compare_numeric("x", redrawn, sketch).stats.get(metric, np.nan)
    return out


def _null_categorical(ref: CategoricalReference, metric: str, n: int, draws: int,
                      rng: np.random.Generator) -> np.ndarray:
    p = ref.counts / ref.counts.sum()
    labels = [*ref.categories, "__other__"]
    out = np.empty(draws)
    for i in range(draws):
        redrawn = dataclasses.replace(ref, counts=rng.multinomial(ref.n, p).astype(np.float64))
        counts = rng.multinomial(n, p)
        c = CategoryCounts(len(labels), ref.categories)
        c.counts.update({label: int(k) for label, k in zip(labels, counts, strict=True) if k})
        out[i] = compare_categorical("x", redrawn, c).stats.get(metric, np.nan)
    return out


def fit_gamma(null: np.ndarray) -> tuple[float, float]:
    """Gamma (shape, scale) by moments; a degenerate sample gets a tiny-variance fit."""
    m, v = float(np.mean(null)), float(np.var(null, ddof=1))
    if m <= 0 or v <= 0:
        return 1.0, max(m, 1e-12)
    return m * m / v, v / m


def null_p_value(calibration: dict[str, Any], value: float) -> float:
    """P(statistic >= value | no drift) from the stored gamma fit."""
    return float(sps.gamma.sf(value, calibration["shape"], scale=calibration["scale"]))


def calibrate_rule(rule: RuleConfig, reference: ReferenceProfile, *, window_events: int, target_rate: float,
                   draws: int, seed: int, fdr: bool, progress: Callable[[int], None] | None = None) -> RuleConfig:
    """The same rule with per-feature thresholds for `target_rate` false alarms per window and feature.

    `progress`, if given, is called with the number of bootstrap windows drawn after each feature.
    """
    if rule.metric not in CALIBRATABLE or rule.comparison not in (">", ">="):
        return rule
    rng = np.random.default_rng(seed)
    severities = sorted(rule.thresholds, key=SEVERITY_ORDER.__getitem__)
    per_feature: dict[str, Any] = {}
    # Overall keys, then (for per-slice rules) one key per feature and slice: a slice has its own reference
    # and sees only its share of the window's events, so its null distribution is wider.
    scopes: list[tuple[str, Any, int]] = [(name, ref, window_events) for name, ref in reference.features.items()]
    if rule.per_slice:
        for label, refs in reference.slices.items():
            for name, ref in refs.items():
                whole = reference.features.get(name)
                share = ref.n / whole.n if whole is not None and whole.n else 0.0
                scopes.append((f"{name}@{label}", ref, max(1, round(window_events * share))))
    for key, ref, n_window in sorted(scopes, key=lambda s: s[0]):
        name = key.split("@", 1)[0]
        if rule.features is not None and name not in rule.features:
            continue
        if isinstance(ref, NumericReference) and ref.n:
            null = _null_numeric(ref, rule.metric, n_window, draws, rng)
        elif isinstance(ref, CategoricalReference) and ref.n:
            null = _null_categorical(ref, rule.metric, n_window, draws, rng)
        else:
            continue
        if progress is not None:
            progress(draws)
        null = null[np.isfinite(null)]
        if null.size < 10:
            continue
        shape, scale = fit_gamma(null)
        thresholds = {sev: float(sps.gamma.isf(target_rate / 10**i, shape, scale=scale))
                      for i, sev in enumerate(severities)}
        keep = np.quantile(null, np.linspace(0, 1, NULL_SAMPLE_KEEP)).round(8).tolist()
        per_feature[key] = {"thresholds": thresholds, "shape": shape, "scale": scale, "null_sample": keep,
                            "window_events": n_window,
                            "empirical_rate_at_lowest": float(np.mean(null >= thresholds[severities[0]]))}
    calibration = {"method": "parametric bootstrap from the reference profile, gamma fit by moments",
                   "reference_version": reference.profile_id, "window_events": window_events,
                   "target_false_alarm_rate": target_rate, "draws": draws, "seed": seed, "per_feature": per_feature}
    return rule.model_copy(update={"calibration": calibration, "fdr": target_rate if fdr else rule.fdr})


def window_events_from(reference: ReferenceProfile, model: ModelConfig) -> int:
    """Expected events per window, from the reference's own rate (row count over its time span)."""
    from datetime import datetime

    start, end = reference.time_span
    if not start or not end:
        raise ValueError("the reference has no time span: give --window-events")
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    if seconds <= 0:
        raise ValueError("the reference's time span is empty: give --window-events")
    return max(1, math.floor(reference.row_count / seconds * model.window.size_seconds))


def planned_draws(model: ModelConfig, reference: ReferenceProfile, draws: int) -> int:
    """Bootstrap windows :func:`calibrate_model` will draw (the denominator of its progress)."""
    total = 0
    for rule in model.rules:
        if rule.metric not in CALIBRATABLE or rule.comparison not in (">", ">="):
            continue
        total += draws * sum(1 for name, ref in reference.features.items()
                             if (rule.features is None or name in rule.features)
                             and isinstance(ref, NumericReference | CategoricalReference) and ref.n)
    return total


def calibrate_model(model: ModelConfig, reference: ReferenceProfile, *, window_events: int | None = None,
                    target_rate: float = 0.01, draws: int = 400, seed: int = 0, fdr: bool = True,
                    progress: Callable[[int], None] | None = None) -> ModelConfig:
    if not 0 < target_rate < 0.5:
        raise ValueError(f"target false-alarm rate must be in (0, 0.5), got {target_rate}")
    n = window_events or window_events_from(reference, model)
    rules = [calibrate_rule(r, reference, window_events=n, target_rate=target_rate, draws=draws, seed=seed + i,
                            fdr=fdr, progress=progress) for i, r in enumerate(model.rules)]
    return model.model_copy(update={"rules": rules})

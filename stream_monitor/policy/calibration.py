"""Threshold calibration: set each rule's thresholds for a target false-alarm rate per window.

A fixed PSI threshold of 0.1 means very different things at 200 and at 200,000
events per window. Calibration estimates each statistic's distribution under no
drift at the configured window size, by a parametric bootstrap from the reference
profile (windows of ``window_events`` values drawn from the reference distribution:
inverse-CDF sampling from the KLL quantiles for numeric features, multinomial from
the category frequencies for categorical ones, against a redrawn reference), and
fits one null law per group of keys that share its shape (:mod:`null_model`):
each key keeps its own scale, the shape and the far tail come from the pooled
draws. Thresholds are the law's upper quantiles: the lowest severity at
``target_rate``, each higher severity ten times rarer. The law also gives p-values
far into the tail, which is what Benjamini-Hochberg across many keys needs.

Live windows rarely hold exactly ``window_events`` events (traffic varies, slices
take a random share), so each key stores the window and reference sizes it was
calibrated at and how its statistic scales with them (``SIZE_EXPONENT``): a window
of n events is judged at thresholds rescaled by ``((1/n + 1/m) / (1/n0 + 1/m))^e``.
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from scipy import stats as sps

from stream_monitor.config import ModelConfig, RuleConfig
from stream_monitor.contracts.alerts import SEVERITY_ORDER
from stream_monitor.policy.null_model import NullModel, fit_null_model
from stream_monitor.reference import CategoricalReference, NumericReference, ReferenceProfile
from stream_monitor.sketches import CategoryCounts, NumericSketch
from stream_monitor.stats.compare import compare_categorical, compare_numeric

#: Metrics whose null distribution is nonnegative and right-skewed, with how each scales with the
#: effective sample size 1/(1/n + 1/m): divergences like chi-square/n (exponent 1), distances like
#: 1/sqrt(n) (exponent 0.5); a rate of unseen categories does not shrink with n (0: no rescaling).
SIZE_EXPONENT = {"psi": 1.0, "js_divergence": 1.0, "ks_statistic": 0.5, "wasserstein": 0.5, "mean_shift": 0.5,
                 "new_category_rate": 0.0}
CALIBRATABLE = tuple(SIZE_EXPONENT)
REF_SAMPLE_CAP = 20_000
#: Keys whose standardised null draws differ from their group's at this level get a law of their own.
HOMOGENEITY_P = 1e-3
METHOD = ("parametric bootstrap from the reference profile; per-key scale, shape pooled over keys of the same "
          "statistic, kind, window size and bins; exponential tail beyond the pooled draws")

NullDraws = dict[str, np.ndarray]


def _null_numeric(ref: NumericReference, n: int, draws: int, rng: np.random.Generator) -> NullDraws:
    """Two-sample null: a window of n and a reference of the reference's size, both from the reference law.

    The reference's own sampling noise is part of what a live window is compared
    with, so both sides are redrawn: bin counts exactly (multinomial of the
    reference's size), the reference KLL from at most REF_SAMPLE_CAP values (a smaller
    sample overstates its noise: conservative). Every calibratable statistic comes
    from the same draws, so several rules on one key cost one bootstrap.
    """
    grid = np.linspace(0.0, 1.0, 4097)
    q = ref.quantiles.quantiles(grid)
    p = ref.counts / ref.counts.sum()
    m = min(ref.n, REF_SAMPLE_CAP)
    out = {metric: np.full(draws, np.nan) for metric in CALIBRATABLE}
    for i in range(draws):
        ref_sketch = NumericSketch(ref.edges)
        ref_sketch.update(np.interp(rng.random(m), grid, q))
        redrawn = dataclasses.replace(ref, counts=rng.multinomial(ref.n, p).astype(np.float64),
                                      quantiles=ref_sketch.quantiles, mean=ref_sketch.moments.mean,
                                      std=ref_sketch.moments.std)
        sketch = NumericSketch(ref.edges)
        sketch.update(np.interp(rng.random(n), grid, q))
        stats = compare_numeric("x", redrawn, sketch).stats
        for metric, values in out.items():
            values[i] = stats.get(metric, np.nan)
    return out


def _null_categorical(ref: CategoricalReference, n: int, draws: int, rng: np.random.Generator) -> NullDraws:
    p = ref.counts / ref.counts.sum()
    labels = [*ref.categories, "__other__"]
    out = {metric: np.full(draws, np.nan) for metric in CALIBRATABLE}
    for i in range(draws):
        redrawn = dataclasses.replace(ref, counts=rng.multinomial(ref.n, p).astype(np.float64))
        counts = rng.multinomial(n, p)
        c = CategoryCounts(len(labels), ref.categories)
        c.counts.update({label: int(k) for label, k in zip(labels, counts, strict=True) if k})
        stats = compare_categorical("x", redrawn, c).stats
        for metric, values in out.items():
            values[i] = stats.get(metric, np.nan)
    return out


def fit_gamma(null: np.ndarray) -> tuple[float, float]:
    """Gamma (shape, scale) by moments; a degenerate sample gets a tiny-variance fit."""
    m, v = float(np.mean(null)), float(np.var(null, ddof=1))
    if m <= 0 or v <= 0:
        return 1.0, max(m, 1e-12)
    return m * m / v, v / m


def size_factor(entry: dict[str, Any], n: int | None) -> float:
    """How much larger the statistic runs at a window of n events than at the calibrated size."""
    e = float(entry.get("size_exponent", 0.0))
    n0, m = entry.get("window_events"), entry.get("reference_n")
    if not e or n is None or n <= 0 or not n0 or not m:
        return 1.0
    return float(((1.0 / n + 1.0 / m) / (1.0 / n0 + 1.0 / m)) ** e)


def null_p_value(calibration: dict[str, Any], value: float, n: int | None = None,
                 laws: dict[str, NullModel] | None = None) -> float:
    """P(statistic >= value | no drift) for one key, at a window of n events.

    `calibration` is the key's entry; `laws` the rule's pooled null laws
    (:meth:`RuleConfig.null_laws`). Entries of an older calibration (a gamma fit per key)
    are still read.
    """
    scaled = value / size_factor(calibration, n)
    law = (laws or {}).get(calibration.get("null_model", ""))
    if law is not None:
        return law.survival(scaled / float(calibration["null_mean"]))
    return float(sps.gamma.sf(scaled, calibration["shape"], scale=calibration["scale"]))


def _seeded(seed: int, key: str, n: int) -> np.random.Generator:
    """One stream per key and window size: results do not depend on which rules share the draws."""
    return np.random.default_rng([seed, zlib.crc32(key.encode()), n])


@dataclasses.dataclass
class _Scope:
    key: str  # feature, or feature@slice
    ref: NumericReference | CategoricalReference
    n: int  # events per window the key sees


def _scopes(rule: RuleConfig, reference: ReferenceProfile, window_events: int) -> Iterator[_Scope]:
    """Every key a rule judges: features, then (per-slice rules) each feature in each slice.

    A slice has its own reference and sees only its share of the window's events, so its null is wider.
    """
    scopes = [_Scope(name, ref, window_events) for name, ref in reference.features.items()
              if isinstance(ref, NumericReference | CategoricalReference)]
    if rule.per_slice:
        for label, refs in reference.slices.items():
            for name, ref in refs.items():
                whole = reference.features.get(name)
                share = ref.n / whole.n if whole is not None and whole.n else 0.0
                if isinstance(ref, NumericReference | CategoricalReference):
                    scopes.append(_Scope(f"{name}@{label}", ref, max(1, round(window_events * share))))
    for s in sorted(scopes, key=lambda s: s.key):
        if s.ref.n and (rule.features is None or s.key.split("@", 1)[0] in rule.features):
            yield s


class NullDrawCache:
    """Bootstrap draws per (key, window size), shared by every rule of a model that judges the key."""

    def __init__(self, draws: int, seed: int, progress: Callable[[int], None] | None = None) -> None:
        self.draws, self.seed, self.progress = draws, seed, progress
        self._draws: dict[tuple[str, int], NullDraws] = {}

    def get(self, scope: _Scope) -> NullDraws:
        k = (scope.key, scope.n)
        if k not in self._draws:
            rng = _seeded(self.seed, scope.key, scope.n)
            if isinstance(scope.ref, NumericReference):
                self._draws[k] = _null_numeric(scope.ref, scope.n, self.draws, rng)
            else:
                self._draws[k] = _null_categorical(scope.ref, scope.n, self.draws, rng)
            if self.progress is not None:
                self.progress(self.draws)
        return self._draws[k]


def _group(scope: _Scope, metric: str) -> str:
    """Keys whose standardised nulls should share a shape: same statistic, kind, bins, window size (x1.4)."""
    kind = "numeric" if isinstance(scope.ref, NumericReference) else "categorical"
    bins = int(np.count_nonzero(scope.ref.counts))
    return f"{metric}:{kind}:bins={bins}:n~{2 ** (round(2 * math.log2(scope.n)) / 2):.0f}"


def _pooled_models(std: dict[str, np.ndarray], groups: dict[str, str]) -> dict[str, str]:
    """Assign each key a law: its group's, unless its standardised draws disagree with the pool's."""
    members: dict[str, list[str]] = {}
    for key, g in groups.items():
        members.setdefault(g, []).append(key)
    assigned: dict[str, str] = {}
    for g, keys in members.items():
        pool = np.concatenate([std[k] for k in keys])
        for k in keys:
            agrees = len(keys) == 1 or sps.ks_2samp(std[k], pool).pvalue >= HOMOGENEITY_P
            assigned[k] = g if agrees else f"{g}:{k}"
    return assigned


def calibrate_rule(rule: RuleConfig, reference: ReferenceProfile, *, window_events: int, target_rate: float,
                   draws: int, seed: int, fdr: bool, progress: Callable[[int], None] | None = None,
                   cache: NullDrawCache | None = None) -> RuleConfig:
    """The same rule with per-key thresholds for `target_rate` false alarms per window and key."""
    if rule.metric not in CALIBRATABLE or rule.comparison not in (">", ">="):
        return rule
    cache = cache or NullDrawCache(draws, seed, progress)
    severities = sorted(rule.thresholds, key=SEVERITY_ORDER.__getitem__)
    samples: dict[str, np.ndarray] = {}
    scopes: dict[str, _Scope] = {}
    for scope in _scopes(rule, reference, window_events):
        null = cache.get(scope)[rule.metric]
        null = null[np.isfinite(null)]
        if null.size < 10:
            continue
        scopes[scope.key] = scope
        samples[scope.key] = null
    degenerate = {k for k, x in samples.items() if x.mean() <= 0 or np.ptp(x) <= 0}
    groups = {key: _group(scopes[key], rule.metric) for key in samples.keys() - degenerate}
    standardised = {key: samples[key] / samples[key].mean() for key in groups}
    assigned = _pooled_models(standardised, groups)
    models: dict[str, NullModel] = {}
    for name in sorted(set(assigned.values())):
        keys = [k for k, g in assigned.items() if g == name]
        models[name] = fit_null_model(np.concatenate([standardised[k] for k in keys]), len(keys))
    per_feature: dict[str, Any] = {}
    for key, null in sorted(samples.items()):
        scope = scopes[key]
        entry: dict[str, Any] = {"window_events": scope.n, "reference_n": int(scope.ref.n),
                                 "size_exponent": SIZE_EXPONENT[rule.metric]}
        if key in degenerate:  # e.g. no unseen categories in any draw: any value above them is drift
            shape, scale = fit_gamma(null)
            entry |= {"shape": shape, "scale": scale}
            thresholds = {sev: float(sps.gamma.isf(target_rate / 10**i, shape, scale=scale))
                          for i, sev in enumerate(severities)}
        else:
            mean = float(null.mean())
            entry |= {"null_model": assigned[key], "null_mean": mean}
            thresholds = {sev: mean * models[assigned[key]].quantile(target_rate / 10**i)
                          for i, sev in enumerate(severities)}
        entry["thresholds"] = thresholds
        entry["empirical_rate_at_lowest"] = float(np.mean(null >= thresholds[severities[0]]))
        per_feature[key] = entry
    calibration = {"method": METHOD, "reference_version": reference.profile_id, "window_events": window_events,
                   "target_false_alarm_rate": target_rate, "draws": draws, "seed": seed,
                   "null_models": {name: m.to_dict() for name, m in models.items()}, "per_feature": per_feature}
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


def _calibratable(model: ModelConfig) -> list[RuleConfig]:
    return [r for r in model.rules if r.metric in CALIBRATABLE and r.comparison in (">", ">=")]


def planned_draws(model: ModelConfig, reference: ReferenceProfile, draws: int,
                  window_events: int | None = None) -> int:
    """Bootstrap windows :func:`calibrate_model` will draw (the denominator of its progress)."""
    n = window_events or window_events_from(reference, model)
    keys = {(s.key, s.n) for rule in _calibratable(model) for s in _scopes(rule, reference, n)}
    return draws * len(keys)


def calibrate_model(model: ModelConfig, reference: ReferenceProfile, *, window_events: int | None = None,
                    target_rate: float = 0.01, draws: int = 400, seed: int = 0, fdr: bool = True,
                    progress: Callable[[int], None] | None = None) -> ModelConfig:
    if not 0 < target_rate < 0.5:
        raise ValueError(f"target false-alarm rate must be in (0, 0.5), got {target_rate}")
    n = window_events or window_events_from(reference, model)
    cache = NullDrawCache(draws, seed, progress)
    rules = [calibrate_rule(r, reference, window_events=n, target_rate=target_rate, draws=draws, seed=seed,
                            fdr=fdr, cache=cache) for r in model.rules]
    return model.model_copy(update={"rules": rules})

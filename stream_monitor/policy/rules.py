"""A declared rule's raw verdicts on one closed window: which (feature, slice) keys breach, how badly.

A rule is ``metric comparison threshold`` with one threshold per severity (or per
feature, once calibrated); a key takes the highest severity whose threshold it
crosses. Keys with fewer values than the rule's ``min_samples`` are not judged:
"insufficient data" is not "no drift". Hysteresis, multiple-testing control and
grouping come after this step (see policy/engine.py).
"""
from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stream_monitor.config import RuleConfig
from stream_monitor.contracts.alerts import SEVERITY_ORDER
from stream_monitor.engine_types import FeatureResult, WindowReport
from stream_monitor.policy.calibration import null_p_value, size_factor

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
P_VALUE_METRICS = ("ks_pvalue", "chi2_pvalue")


@dataclass(frozen=True)
class Verdict:
    """One rule on one (feature, slice) key in one window; `severity` None means judged and clear."""

    rule: RuleConfig
    feature: str
    slice: str | None
    value: float
    n: int
    severity: str | None
    threshold: float
    p_value: float | None

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.rule.id, self.feature, self.slice)

    @property
    def exceedance(self) -> float:
        if self.threshold == 0 or self.value == 0:
            return math.inf if self.severity else 0.0
        ratio = self.value / self.threshold
        return 1.0 / ratio if self.rule.comparison.startswith("<") else ratio


def _calibrated(rule: RuleConfig, feature: str, slice_key: str | None) -> dict[str, Any]:
    """The calibration entry of a key (read only): `feature@slice` for a slice (when calibrated per slice),
    else `feature`."""
    per_feature = (rule.calibration or {}).get("per_feature", {})
    if slice_key is not None and f"{feature}@{slice_key}" in per_feature:
        return per_feature[f"{feature}@{slice_key}"]  # type: ignore[no-any-return]
    return per_feature.get(feature, {})  # type: ignore[no-any-return]


def thresholds_for(rule: RuleConfig, feature: str, slice_key: str | None = None,
                   n: int | None = None) -> dict[str, float]:
    """Calibrated per-feature (and per-slice) thresholds when `calibrate` wrote them, else the rule's own.

    Calibrated thresholds hold at the window size they were calibrated for; a window of n
    events gets them rescaled to n (see :func:`stream_monitor.policy.calibration.size_factor`).
    """
    entry = _calibrated(rule, feature, slice_key)
    calibrated = entry.get("thresholds")
    if not calibrated:
        return {str(k): float(v) for k, v in rule.thresholds.items()}
    factor = size_factor(entry, n)
    return {str(k): float(v) * factor for k, v in calibrated.items()}


def empirical_p_value(rule: RuleConfig, feature: str, value: float, slice_key: str | None = None,
                      n: int | None = None) -> float | None:
    """P(statistic >= value | no drift), from the metric itself or the calibrated null law."""
    if rule.metric in P_VALUE_METRICS:
        return value
    fitted = _calibrated(rule, feature, slice_key)
    if ("null_model" in fitted or "shape" in fitted) and not rule.comparison.startswith("<"):
        return null_p_value(fitted, value, n, rule.null_laws())
    null = fitted.get("null_sample")
    if not null:
        return None
    beyond = sum(1 for x in null if (x <= value if rule.comparison.startswith("<") else x >= value))
    return (1 + beyond) / (1 + len(null))


def _judge(rule: RuleConfig, feature: str, slice_key: str | None, result: FeatureResult) -> Verdict | None:
    value = result.stats.get(rule.metric)
    if value is None or not math.isfinite(value) or result.n < rule.min_samples:
        return None
    op = _OPS[rule.comparison]
    thresholds = thresholds_for(rule, feature, slice_key, result.n)
    hits = [sev for sev, t in thresholds.items() if op(value, t)]
    severity = max(hits, key=SEVERITY_ORDER.__getitem__) if hits else None
    lowest = min(thresholds, key=SEVERITY_ORDER.__getitem__)
    threshold = thresholds[severity] if severity else thresholds[lowest]
    return Verdict(rule=rule, feature=feature, slice=slice_key, value=value, n=result.n, severity=severity,
                   threshold=threshold, p_value=empirical_p_value(rule, feature, value, slice_key, result.n))


def verdicts(rule: RuleConfig, report: WindowReport) -> Iterator[Verdict]:
    """Every (feature, slice) key of the window this rule can judge, breaching or not."""
    scopes: list[tuple[str | None, dict[str, FeatureResult]]] = [(None, report.features)]
    if rule.per_slice:
        scopes += list(report.slices.items())
    for slice_key, results in scopes:
        for name, result in results.items():
            if rule.features is not None and name not in rule.features:
                continue
            v = _judge(rule, name, slice_key, result)
            if v is not None:
                yield v

"""Data-quality contracts: per feature an expected range, allowed categories and a missing-rate budget.

Why apart from drift: a contract violation is a bug upstream (a unit change, a new
enum value, a broken join), not a change in the world, and the owner of the fix is
usually another team. So violations are counted per feature and window and judged
by their own rules (kind ``quality``), with their own incident.

The expected *type* is the feature's declared kind; a value of the wrong type never
reaches a window (it is dead-lettered as ``wrong_type`` and counted in
``stream_monitor_events_rejected_total``). Per window and feature:

    violations = below_min + above_max + not_allowed + max(0, missing - max_missing_rate * rows)
    violation_rate.<feature> = violations / rows

and ``violation_rate`` is the sum of violations over the sum of rows of all
contracted features. Counts are exact and merge by addition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_monitor.config_outcomes import FeatureContract, QualityConfig
from stream_monitor.reference import CategoricalReference, NumericReference, ReferenceProfile

#: Column order of the per-feature counts.
FIELDS = ("rows", "missing", "below_min", "above_max", "not_allowed")


@dataclass(frozen=True)
class Contract:
    feature: str
    kind: str
    min: float | None = None
    max: float | None = None
    allowed: frozenset[str] | None = None
    max_missing_rate: float | None = None

    @property
    def checks_values(self) -> bool:
        return self.min is not None or self.max is not None or self.allowed is not None


def _inferred(config: QualityConfig, name: str, ref: object) -> FeatureContract:
    if isinstance(ref, NumericReference) and ref.n:
        lo, hi = ref.quantiles.min(), ref.quantiles.max()
        pad = config.range_margin * (hi - lo)
        return FeatureContract(min=lo - pad, max=hi + pad,
                               max_missing_rate=min(1.0, ref.missing_rate + config.missing_slack))
    if isinstance(ref, CategoricalReference) and ref.n:
        allowed = list(ref.categories) if ref.counts[-1] == 0 else None  # OTHER seen: the set is not closed
        return FeatureContract(allowed=allowed, max_missing_rate=min(1.0, ref.missing_rate + config.missing_slack))
    return FeatureContract()


def resolve_contracts(config: QualityConfig, kinds: dict[str, str],
                      reference: ReferenceProfile | None) -> dict[str, Contract]:
    """Declared contracts, completed (field by field) by the reference when ``infer_from_reference`` is on."""
    names = set(config.features)
    if config.infer_from_reference and reference is not None:
        names |= {n for n in reference.features if n in kinds}
    out: dict[str, Contract] = {}
    for name in sorted(names):
        kind = kinds.get(name)
        if kind not in ("numeric", "categorical"):
            continue
        declared = config.features.get(name, FeatureContract())
        inferred = (_inferred(config, name, reference.features.get(name))
                    if config.infer_from_reference and reference is not None else FeatureContract())

        def pick(field: str, declared: FeatureContract = declared, inferred: FeatureContract = inferred) -> Any:
            value = getattr(declared, field)
            return value if value is not None else getattr(inferred, field)

        allowed = pick("allowed")
        out[name] = Contract(feature=name, kind=kind, min=pick("min") if kind == "numeric" else None,
                             max=pick("max") if kind == "numeric" else None,
                             allowed=frozenset(allowed) if allowed is not None and kind == "categorical" else None,
                             max_missing_rate=pick("max_missing_rate"))
    return out


class QualityAccumulator:
    """Per contracted feature: rows, missing, below min, above max, not allowed (int64 counts)."""

    def __init__(self) -> None:
        self.counts: dict[str, np.ndarray] = {}

    def _row(self, name: str) -> np.ndarray:
        row = self.counts.get(name)
        if row is None:
            row = self.counts[name] = np.zeros(len(FIELDS), dtype=np.int64)
        return row

    def observe(self, contracts: dict[str, Contract], numeric: dict[str, np.ndarray],
                categorical: dict[str, list[str | None]], n: int) -> None:
        for name, c in contracts.items():
            row = self._row(name)
            row[0] += n
            if c.kind == "numeric" and name in numeric:
                col = numeric[name]
                present = col[~np.isnan(col)]
                row[1] += col.size - present.size
                if c.min is not None:
                    row[2] += int((present < c.min).sum())
                if c.max is not None:
                    row[3] += int((present > c.max).sum())
            elif c.kind == "categorical" and name in categorical:
                values = categorical[name]
                row[1] += sum(1 for v in values if v is None)
                if c.allowed is not None:
                    allowed = c.allowed
                    row[4] += sum(1 for v in values if v is not None and v not in allowed)
            else:
                row[1] += n

    def merge(self, other: QualityAccumulator) -> None:
        for name, row in other.counts.items():
            self._row(name)[:] += row

    def metrics(self, contracts: dict[str, Contract]) -> dict[str, float]:
        out: dict[str, float] = {}
        total_rows = total_viol = 0.0
        for name, c in contracts.items():
            row = self.counts.get(name)
            if row is None or row[0] == 0:
                continue
            rows, missing = float(row[0]), float(row[1])
            excess = max(0.0, missing - c.max_missing_rate * rows) if c.max_missing_rate is not None else 0.0
            violations = float(row[2] + row[3] + row[4]) + excess
            out[f"violation_rate.{name}"] = violations / rows
            out[f"violations.{name}"] = violations
            total_rows += rows
            total_viol += violations
        if total_rows:
            out["violation_rate"] = total_viol / total_rows
            out["violations"] = total_viol
        return out

    def to_dict(self) -> dict[str, Any]:
        return {name: row.tolist() for name, row in self.counts.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QualityAccumulator:
        acc = cls()
        acc.counts = {name: np.asarray(row, dtype=np.int64) for name, row in d.items()}
        return acc

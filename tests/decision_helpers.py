"""Builders for the decision-layer tests: window reports, alerts and configs made by hand.

The decision engine reads `WindowReport.performance` / `quality` (the label join and
quality contracts) with `.get()`, so these tests construct them directly.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stream_monitor.config import MonitorConfig, config_from_dict
from stream_monitor.contracts.alerts import AlertEvent, stable_id
from stream_monitor.contracts.decisions import DecisionEvent
from stream_monitor.engine_types import FeatureResult, WindowReport

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 00:00 UTC
WINDOW = timedelta(minutes=5)
REF = "credit-risk-ref1"


def config(retraining: dict[str, Any], **model: Any) -> MonitorConfig:
    m: dict[str, Any] = {"model_id": "credit-risk", "owner": "risk-ml-team",
                         "features": [{"name": n} for n in ("income", "age", "credit_score", "debt")],
                         "rules": [{"id": "psi", "metric": "psi", "thresholds": {"warning": 0.1, "critical": 0.25},
                                    "min_samples": 100}],
                         "retraining": retraining}
    m.update(model)
    return config_from_dict({"models": [m]})


def report(i: int, version: str = "v1", *, psi: dict[str, float] | None = None, n: int = 1000,
           performance: dict[str, float] | None = None, quality: dict[str, float] | None = None,
           start: datetime = T0) -> WindowReport:
    """The i-th 5-minute window from `start`: PSI per feature (0.01 unless given), and the given maps."""
    psi = psi or {}
    features = {f: FeatureResult(feature=f, kind="numeric", n=n, n_reference=2000,
                                 stats={"psi": psi.get(f, 0.01), "ks_statistic": 0.02}, binning="exact")
                for f in ("income", "age", "credit_score", "debt", "prediction.score")}
    return WindowReport(model_id="credit-risk", model_version=version, window_start=start + i * WINDOW,
                        window_end=start + (i + 1) * WINDOW, n_events=n, role="evaluated", reference_version=REF,
                        features=features, performance=dict(performance or {}), quality=dict(quality or {}))


def fresh(coverage: float = 0.8, age: float = 60.0, accuracy: float = 0.9, n: int = 1000) -> dict[str, float]:
    """A performance map of a window whose labels are plentiful and recent."""
    return {"accuracy": accuracy, "label_coverage": coverage, "labels": coverage * n,
            "newest_label_age_seconds": age, "provisional": 0.0}


def drift_alert(r: WindowReport, feature: str = "income", status: str = "firing") -> AlertEvent:
    incident = stable_id(r.model_id, r.model_version, "incident")
    return AlertEvent(
        alert_id=stable_id(r.model_id, r.model_version, r.window_start.isoformat(), status), incident_id=incident,
        status=status, model_id=r.model_id, model_version=r.model_version, kind="feature_drift", rule_id="psi",
        metric="psi", comparison=">=", feature=feature, slice=None, window_start=r.window_start,
        window_end=r.window_end, value=0.5, threshold=0.25, severity="critical" if status == "firing" else "info",
        action="retrain", reference_version=REF, created_at=r.window_end)


def comparable(decisions: list[DecisionEvent]) -> list[dict[str, Any]]:
    """Decisions without `created_at` (the service clock): what a replay must reproduce exactly."""
    return [d.model_dump(mode="json", exclude={"created_at"}) for d in decisions]

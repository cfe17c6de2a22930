"""Configuration of what owners care about beyond drift: performance, quality contracts, freshness, LLM signals.

Kept apart from :mod:`stream_monitor.config` (which imports these sections into
``ModelConfig``) so that each file stays readable. Every section has defaults that
leave a configuration without it valid and unchanged in behaviour: performance is
off until a ``performance`` section is given, quality contracts are empty, no
silence limit is set.

Window-level metrics a rule may name are listed here too (:data:`WINDOW_METRICS`),
with the alert kind each one produces.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stream_monitor.contracts.alerts import Action, Severity

#: Performance metrics computed per window once labels are joined.
PERFORMANCE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier", "ece",
                       "mae", "rmse", "bias", "label_psi", "label_mean_shift", "positive_rate", "label_coverage")
#: Metrics where lower is better (their drop rules use ``>=`` on ``delta.<metric>``).
LOWER_IS_BETTER = ("log_loss", "brier", "ece", "mae", "rmse")
LATENCY_METRICS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms")
COST_METRICS = ("cost_per_request_usd", "tokens_in_mean", "tokens_out_mean", "tokens_in_ks", "tokens_out_ks",
                "change.tokens_in_ks", "change.tokens_out_ks", "change.tokens_out_mean_ratio")
LLM_BEHAVIOUR_METRICS = ("refusal_rate", "guardrail_psi", "change.refusal_rate_delta")
QUALITY_METRICS = ("violation_rate",)

#: Window-level metric -> the kind of alert a rule on it raises.
WINDOW_METRICS: dict[str, str] = {
    **{m: "performance" for m in PERFORMANCE_METRICS},
    **{f"delta.{m}": "performance" for m in PERFORMANCE_METRICS if m != "label_coverage"},
    **{m: "latency" for m in LATENCY_METRICS},
    **{m: "cost" for m in COST_METRICS},
    **{m: "performance" for m in LLM_BEHAVIOUR_METRICS},
    **{m: "quality" for m in QUALITY_METRICS},
}


def window_metric_kind(metric: str) -> str | None:
    """The alert kind of a window-level metric, or None for a per-feature drift metric."""
    return WINDOW_METRICS.get(metric)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PerformanceConfig(_Section):
    """Join delayed labels to predictions and compute performance per window (docs/performance-monitoring.md)."""

    task: Literal["classification", "regression"] = "classification"
    positive_class: str = Field(default="1", description="Label (normalised: true/1.0 -> '1', false -> '0') of "
                                "the positive class; prediction.score is read as P(positive).")
    threshold: float = Field(default=0.5, ge=0, le=1, description="Without prediction.class, score >= threshold "
                             "predicts the positive class.")
    min_label_coverage: float = Field(default=0.8, gt=0, le=1, description="A window stays provisional until "
                                      "this share of its predictions has a label; rules judge it then.")
    label_ttl_seconds: float = Field(default=7 * 86400, gt=0, description="A prediction waits this long (event "
                                     "time) for its label; then it counts as never labelled.")
    max_pending_labels: int = Field(default=200_000, ge=1, le=50_000_000, description="Cap on predictions held "
                                    "for a join (about 400 bytes each); beyond it the oldest are dropped and "
                                    "counted (reason capacity).")
    label_window_retention: int = Field(default=48, ge=1, le=10_000, description="Closed windows kept updatable "
                                        "by late labels, per model version; older ones are final.")
    score_bins: int = Field(default=1000, ge=10, le=100_000, description="Equal-width score bins per class for "
                            "ROC AUC; the error bound is reported as roc_auc_error_bound.")
    calibration_bins: int = Field(default=10, ge=2, le=1000, description="Equal-width bins for ECE.")
    baseline_windows: int = Field(default=1, ge=1, description="The first N settled windows form the reference "
                                  "performance (delta.<metric> = window - baseline).")
    baseline: dict[str, float] = Field(default_factory=dict, description="Declared reference performance (e.g. "
                                       "from offline evaluation); wins over the learned baseline per metric.")
    max_label_classes: int = Field(default=50, ge=2, le=10_000, description="Label classes counted for label "
                                   "drift; the rest fold into OTHER.")

    @model_validator(mode="after")
    def _known_baseline(self) -> PerformanceConfig:
        unknown = sorted(set(self.baseline) - set(PERFORMANCE_METRICS))
        if unknown:
            raise ValueError(f"baseline names unknown metric(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(PERFORMANCE_METRICS)}")
        return self


class FeatureContract(_Section):
    """What a feature's values must look like; the expected type is the feature's declared kind."""

    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = Field(default=None, description="Allowed categories (categorical features).")
    max_missing_rate: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> FeatureContract:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class QualityConfig(_Section):
    """Data-quality contracts per feature, declared or inferred from the reference profile."""

    features: dict[str, FeatureContract] = Field(default_factory=dict)
    infer_from_reference: bool = Field(default=False, description="Contract every feature from the reference: "
                                       "numeric range widened by range_margin, the reference's categories "
                                       "(when it saw no more than it tracks), its missing rate plus missing_slack.")
    range_margin: float = Field(default=0.1, ge=0, description="Inferred range: [min - m*(max-min), "
                                "max + m*(max-min)].")
    missing_slack: float = Field(default=0.05, ge=0, le=1)


class FreshnessConfig(_Section):
    """Staleness limits in processing time: an alert when a stream of the model goes silent for longer."""

    max_silence_seconds: float | None = Field(default=None, gt=0, description="Predictions of the model.")
    labels_max_silence_seconds: float | None = Field(default=None, gt=0, description="Labels of the model.")
    severity: Severity = "warning"
    action: Action = "escalate"


class LLMConfig(_Section):
    """How LLM signals of the prediction event's ``llm`` block are read."""

    refusal_actions: list[str] = Field(default_factory=lambda: ["block", "refuse", "refusal"],
                                       description="guardrail_action values that count as a refusal.")
    max_versions: int = Field(default=8, ge=1, le=100, description="Prompt/index version pairs tracked per window.")
    max_actions: int = Field(default=20, ge=1, le=1000, description="Guardrail actions tracked; the rest fold "
                             "into OTHER.")
    baseline_windows: int = Field(default=1, ge=1, description="The first N windows with LLM traffic are the baseline "
                                  "for tokens_in_ks, tokens_out_ks and guardrail_psi.")

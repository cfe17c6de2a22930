"""The `models[].retraining` section: schedule, triggers, freshness gates, champion/challenger, probation.

Kept apart from :mod:`stream_monitor.config` (which imports it) because it is a
whole concern of its own; it imports nothing from the rest of the package but the
alert vocabulary, so there is no import cycle. Every field has a default that keeps
a config without ``retraining`` valid: no section, no decisions.
"""
from __future__ import annotations

from typing import Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stream_monitor.contracts.alerts import AlertKind, Severity

#: Per-window performance metrics (issue 5's ``WindowReport.performance``) and whether higher is better.
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True, "precision": True, "recall": True, "f1": True, "roc_auc": True,
    "log_loss": False, "brier": False, "ece": False, "mae": False, "rmse": False, "bias": False,
}
#: Per-request quantities the champion/challenger comparison can use.
PAIRED_METRICS = ("accuracy", "log_loss", "brier", "abs_error")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _known_performance_metric(value: str) -> str:
    if value not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown performance metric {value!r}; allowed: {', '.join(HIGHER_IS_BETTER)}")
    return value


class ScheduleConfig(_Section):
    """Retrain every N seconds (slots aligned to the Unix epoch) or on a cron expression (UTC)."""

    every_seconds: float | None = Field(default=None, gt=0, description="e.g. 86400: one slot per UTC day.")
    cron: str | None = Field(default=None, description="Five-field cron, UTC, e.g. '0 3 * * 1' (Mondays 03:00).")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and (len(value.split()) != 5 or not croniter.is_valid(value)):
            raise ValueError(f"not a five-field cron expression: {value!r} (e.g. '0 3 * * *' for 03:00 UTC daily)")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ScheduleConfig:
        if (self.every_seconds is None) == (self.cron is None):
            raise ValueError("give exactly one of schedule.every_seconds or schedule.cron")
        return self

    @property
    def expression(self) -> str:
        return self.cron if self.cron is not None else f"every {self.every_seconds:g}s"


class TriggerConfig(_Section):
    """A policy turning alerts or performance into a retrain, after `windows` consecutive qualifying windows.

    ``on: drift``: the model version has an open drift incident (a firing alert) and,
    in the window, a declared rule judges one of the trigger's features at `severity`
    or above (`features`, or the `top_k` most important by ``retraining.feature_importance``).
    ``on: performance``: `metric` is worse than its baseline by more than `max_drop`
    with label coverage of at least `min_label_coverage`. ``on: alerts``: a firing
    incident of one of `kinds` is open (e.g. quality, freshness, latency).
    """

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._\-]+$")
    on: Literal["drift", "performance", "alerts"]
    windows: int = Field(default=1, ge=1, description="Consecutive qualifying windows before it fires.")
    severity: Severity = "critical"
    features: list[str] | None = Field(default=None, description="on: drift; None = every feature.")
    top_k: int | None = Field(default=None, ge=1, description="on: drift; the k most important features.")
    kinds: list[AlertKind] = Field(default_factory=list, description="on: alerts; the alert kinds that count.")
    metric: str = Field(default="accuracy", description="on: performance.")
    max_drop: float | None = Field(default=None, ge=0, description="on: performance; absolute worsening allowed.")
    baseline: float | None = Field(default=None, description="on: performance; None = the mean of the version's "
                                   "first `baseline_windows` windows with enough labels.")
    baseline_windows: int = Field(default=1, ge=1)
    min_label_coverage: float = Field(default=0.0, ge=0, le=1, description="on: performance.")

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        return _known_performance_metric(value)

    @model_validator(mode="after")
    def _complete(self) -> TriggerConfig:
        if self.on == "performance" and self.max_drop is None:
            raise ValueError(f"trigger {self.id!r} (on: performance) needs max_drop, e.g. 0.05")
        if self.on == "alerts" and not self.kinds:
            raise ValueError(f"trigger {self.id!r} (on: alerts) needs kinds, e.g. [quality, freshness]")
        if self.features is not None and self.top_k is not None:
            raise ValueError(f"trigger {self.id!r}: give features or top_k, not both")
        return self


class GatesConfig(_Section):
    """Data-freshness gates a retrain must pass; set a gate to null to turn it off."""

    min_label_coverage: float | None = Field(default=0.5, ge=0, le=1, description="Labelled share of the events "
                                             "of the data window.")
    max_label_age_seconds: float | None = Field(default=86_400.0, gt=0, description="The newest label may be at "
                                                "most this old when the decision is made.")
    max_violation_rate: float | None = Field(default=0.05, ge=0, le=1, description="Quality-contract violations "
                                             "per event over the data window.")
    min_events: int = Field(default=1, ge=0, description="Events the monitor saw in the data window.")


class ChampionChallengerConfig(_Section):
    """Shadow comparison: events of two versions with the same event_id, judged on the joined labels."""

    enabled: bool = False
    champion: str | None = Field(default=None, description="The champion version; None = the serving version "
                                 "(the first seen, or the last promoted / deployed).")
    metric: Literal["accuracy", "log_loss", "brier", "abs_error"] = "accuracy"
    margin: float = Field(default=0.0, ge=0, description="The challenger must be better by more than this.")
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    min_samples: int = Field(default=500, ge=10, description="Labelled pairs needed before any verdict.")
    bootstrap_resamples: int = Field(default=2000, ge=100, le=100_000)
    seed: int = 0
    max_latency_increase_ms: float | None = Field(default=None, ge=0, description="Upper CI bound allowed for "
                                                  "the challenger's mean latency increase; None = report only.")
    max_cost_increase_usd: float | None = Field(default=None, ge=0, description="Same, for cost per request.")
    positive_label: str = Field(default="1", description="Label value counted as the positive class (log_loss, "
                                "brier; bools and 0/1 numbers are understood as they are).")
    score_threshold: float = Field(default=0.5, description="accuracy from a score when there is no class.")
    max_pending: int = Field(default=100_000, ge=100, description="Requests waiting for a pair or a label.")
    max_samples: int = Field(default=200_000, ge=100, description="Labelled pairs kept (the newest).")


class ProbationConfig(_Section):
    """Watch a newly deployed version against the previous version for `windows` windows; roll back on regression."""

    enabled: bool = True
    windows: int = Field(default=3, ge=1)
    metric: str = "accuracy"
    max_drop: float | None = Field(default=0.05, ge=0, description="Worse than the previous version's mean by "
                                   "more than this is a regression; null = performance not judged.")
    min_label_coverage: float = Field(default=0.1, ge=0, le=1)
    drift_metric: str = "psi"
    drift_features: list[str] = Field(default_factory=lambda: ["prediction.score"])
    max_drift_increase: float | None = Field(default=0.1, ge=0, description="The new version's drift statistic "
                                             "above the previous version's mean by more than this is a regression.")
    baseline_windows: int = Field(default=3, ge=1, description="The previous version's last N windows.")
    regression_windows: int = Field(default=1, ge=1, description="Consecutive regressing windows to roll back.")

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        return _known_performance_metric(value)


class RetrainingConfig(_Section):
    """When to retrain, promote, hold or roll back this model (docs/retraining.md)."""

    enabled: bool = True
    owner: str | None = Field(default=None, description="Copied into decisions; default: the model's owner.")
    schedule: ScheduleConfig | None = None
    triggers: list[TriggerConfig] = Field(default_factory=list)
    min_interval_seconds: float = Field(default=86_400.0, ge=0, description="Between two retrain decisions.")
    daily_budget: int = Field(default=1, ge=1, description="Retrain decisions per UTC day at most.")
    data_window_seconds: float = Field(default=7 * 86_400.0, gt=0, description="How much recent data a retrain "
                                       "should use; the window ends at the newest closed window.")
    feature_importance: dict[str, float] = Field(default_factory=dict, description="For triggers' top_k.")
    gates: GatesConfig = Field(default_factory=GatesConfig)
    champion_challenger: ChampionChallengerConfig = Field(default_factory=ChampionChallengerConfig)
    probation: ProbationConfig = Field(default_factory=ProbationConfig)

    @model_validator(mode="after")
    def _consistent(self) -> RetrainingConfig:
        ids = [t.id for t in self.triggers]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"trigger ids must be unique; repeated: {', '.join(dupes)}")
        reserved = sorted(set(ids) & {"schedule", "champion_challenger", "probation"})
        if reserved:
            raise ValueError(f"trigger ids {', '.join(reserved)} are reserved for the other policies; rename them")
        for t in self.triggers:
            if t.top_k is not None and not self.feature_importance:
                raise ValueError(f"trigger {t.id!r} uses top_k: set retraining.feature_importance "
                                 "(feature -> importance) too")
        return self

    def top_features(self, k: int) -> list[str]:
        """The k most important features (ties broken by name, so the choice is deterministic)."""
        ranked = sorted(self.feature_importance.items(), key=lambda kv: (-kv[1], kv[0]))
        return [name for name, _ in ranked[:k]]

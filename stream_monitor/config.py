"""One validated configuration model: a YAML file, overridden by environment variables.

Environment overrides use the prefix ``STREAM_MONITOR_`` and ``__`` between nested
fields, e.g. ``STREAM_MONITOR_KAFKA__BOOTSTRAP_SERVERS=broker:9092``. Any librdkafka
key passes through untouched under ``kafka.settings``; passwords are ``SecretStr``
so they never appear in a repr or a log line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stream_monitor.contracts.alerts import Action, Severity
from stream_monitor.errors import ConfigError

Comparison = Literal[">", ">=", "<", "<="]
FeatureKind = Literal["numeric", "categorical", "embedding"]

#: Metrics a rule may name, and which feature kinds produce them.
NUMERIC_METRICS = ("psi", "ks_statistic", "ks_pvalue", "wasserstein", "mean_shift", "missing_rate")
CATEGORICAL_METRICS = ("psi", "chi2_pvalue", "new_category_rate", "missing_rate")
RULE_METRICS = tuple(sorted(set(NUMERIC_METRICS) | set(CATEGORICAL_METRICS)))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaConfig(_Section):
    """Connection to the cluster. `settings` passes any librdkafka property through as is."""

    bootstrap_servers: str = "localhost:9092"
    group_id: str = "stream-monitor"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    settings: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Extra librdkafka properties, e.g. {'client.id': 'monitor-1'}."
    )

    def librdkafka(self) -> dict[str, Any]:
        """The common client properties (consumer and producer add their own)."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        conf.update(self.settings)
        return conf


class TopicsConfig(_Section):
    predictions: str = "predictions"
    labels: str | None = None
    alerts: str = "monitor.alerts"
    dead_letter: str = "monitor.dead-letter"
    decisions: str = "monitor.decisions"


class ServiceConfig(_Section):
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(default=9308, ge=0, le=65535, description="0 picks a free port.")
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    poll_timeout_seconds: float = Field(default=0.5, gt=0, le=30)
    commit_interval_seconds: float = Field(default=1.0, ge=0)
    max_event_bytes: int = Field(default=1_048_576, ge=256)
    lag_refresh_seconds: float = Field(default=5.0, gt=0)


class FeatureSpec(_Section):
    name: str = Field(min_length=1, max_length=128)
    kind: FeatureKind = "numeric"


class WindowConfig(_Section):
    """Event-time tumbling windows; a window closes when the watermark passes its end."""

    size_seconds: float = Field(default=300.0, gt=0)
    allowed_lateness_seconds: float = Field(default=0.0, ge=0)


class ReferenceConfig(_Section):
    """Where the reference profile comes from: a file (`reference build`) or the first windows of the stream."""

    path: Path | None = None
    from_stream_windows: int = Field(default=1, ge=1, description="Used when `path` is not set.")
    bins: int = Field(default=10, ge=2, le=1000, description="Quantile bins for numeric features.")
    max_categories: int = Field(default=50, ge=1, le=10_000)


DEFAULT_ACTIONS: dict[Severity, Action] = {"info": "none", "warning": "warn", "critical": "retrain"}


class RuleConfig(_Section):
    """A declared rule: `metric comparison threshold` per severity, with its owner and action."""

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._\-]+$")
    metric: str
    comparison: Comparison = ">="
    thresholds: dict[Severity, float] = Field(min_length=1)
    actions: dict[Severity, Action] = Field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    features: list[str] | None = Field(default=None, description="None means every feature with this metric.")
    min_samples: int = Field(default=200, ge=1)
    owner: str | None = None
    runbook: str | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in RULE_METRICS:
            raise ValueError(f"unknown metric {value!r}; allowed: {', '.join(RULE_METRICS)}")
        return value


def default_rules() -> list[RuleConfig]:
    """Industry-standard starting points: PSI 0.1 / 0.25, and a KS effect size (not a p-value).

    The KS rule uses the statistic rather than the p-value because at production
    window sizes every tiny shift is "significant"; the p-value goes in the evidence.
    """
    return [
        RuleConfig(id="psi", metric="psi", comparison=">=", thresholds={"warning": 0.1, "critical": 0.25}),
        RuleConfig(id="ks", metric="ks_statistic", comparison=">=", thresholds={"warning": 0.1, "critical": 0.2}),
    ]


class ModelConfig(_Section):
    model_id: str = Field(min_length=1, max_length=128)
    owner: str | None = None
    features: list[FeatureSpec] = Field(
        default_factory=list, description="Declared features; empty means take them from the reference profile."
    )
    monitor_prediction: bool = Field(default=True, description="Also track drift of prediction.score / class.")
    window: WindowConfig = Field(default_factory=WindowConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    rules: list[RuleConfig] = Field(default_factory=default_rules)

    @model_validator(mode="after")
    def _unique_names(self) -> ModelConfig:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names must be unique; repeated: {', '.join(dupes)}")
        rule_ids = [r.id for r in self.rules]
        dupes = sorted({r for r in rule_ids if rule_ids.count(r) > 1})
        if dupes:
            raise ValueError(f"rule ids must be unique; repeated: {', '.join(dupes)}")
        if not self.features and self.reference.path is None:
            raise ValueError("declare `features`, or give `reference.path` so they can be taken from the profile")
        return self


class MonitorConfig(BaseSettings):
    """The whole service configuration."""

    model_config = SettingsConfigDict(
        env_prefix="STREAM_MONITOR_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    topics: TopicsConfig = Field(default_factory=TopicsConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    models: list[ModelConfig] = Field(min_length=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file: that is how deployments override one value.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _unique_models(self) -> MonitorConfig:
        ids = [m.model_id for m in self.models]
        dupes = sorted({m for m in ids if ids.count(m) > 1})
        if dupes:
            raise ValueError(f"model ids must be unique; repeated: {', '.join(dupes)}")
        return self

    def model(self, model_id: str) -> ModelConfig | None:
        return next((m for m in self.models if m.model_id == model_id), None)


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: the dotted field path, what was wrong, and what is allowed."""
    lines = [f"{source}: invalid configuration ({exc.error_count()} problem(s))"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; check the spelling against docs/configuration.md"
        elif err["type"] == "missing":
            msg = "required field is missing"
        got = err.get("input")
        quiet = err["type"] in ("missing", "extra_forbidden") or isinstance(got, dict | list)
        shown = "" if quiet else f" (got {got!r})"
        lines.append(f"  {path}: {msg}{shown}")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any], source: str = "config") -> MonitorConfig:
    try:
        return MonitorConfig(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(path: str | Path) -> MonitorConfig:
    """Load and validate a YAML file; raise ConfigError with a readable message on any problem."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read configuration file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping with keys kafka, topics, service, models")
    config = config_from_dict(data, str(p))
    base = p.parent
    for m in config.models:
        if m.reference.path is not None and not m.reference.path.is_absolute():
            m.reference.path = base / m.reference.path
    return config

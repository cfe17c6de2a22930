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
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stream_monitor.config_outcomes import (
    WINDOW_METRICS,
    FreshnessConfig,
    LLMConfig,
    PerformanceConfig,
    QualityConfig,
)
from stream_monitor.contracts.alerts import Action, Severity
from stream_monitor.decisions.config import RetrainingConfig
from stream_monitor.errors import ConfigError

Comparison = Literal[">", ">=", "<", "<="]
FeatureKind = Literal["numeric", "categorical", "embedding"]

#: Metrics a rule may name, and which feature kinds produce them.
_BINNED = ("psi", "js_divergence", "js_distance", "kl_divergence", "kl_divergence_reverse", "hellinger",
           "total_variation", "missing_rate", "missing_rate_change", "distinct_count")
NUMERIC_METRICS = (*_BINNED, "ks_statistic", "ks_pvalue", "cvm_statistic", "cvm_pvalue", "wasserstein",
                   "wasserstein_normed", "mean_shift", "std_ratio")
CATEGORICAL_METRICS = (*_BINNED, "chi2_statistic", "chi2_pvalue", "new_category_rate")
EMBEDDING_METRICS = ("mmd2", "mmd", "cosine_distance", "embedding_mean_shift", "pca_mean_shift", "pca_chi2_statistic",
                     "pca_chi2_pvalue", "pca_variance_change", "pca_residual_ratio", "missing_rate")
RULE_METRICS = tuple(sorted(set(NUMERIC_METRICS) | set(CATEGORICAL_METRICS) | set(EMBEDDING_METRICS)))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaConfig(_Section):
    """Connection to the cluster. `settings` passes any librdkafka property through as is."""

    bootstrap_servers: str = "localhost:9092"
    group_id: str = "stream-monitor"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = Field(default=None, description="Client certificate (mutual TLS).")
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    oauthbearer_token_endpoint_url: str | None = Field(
        default=None, description="OAUTHBEARER via OIDC client credentials (sasl.oauthbearer.method=oidc).")
    oauthbearer_client_id: str | None = None
    oauthbearer_client_secret: SecretStr | None = None
    oauthbearer_scope: str | None = None
    allow_insecure_tls: bool = Field(
        default=False, description="Permit settings that turn off certificate or hostname verification.")
    settings: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Extra librdkafka properties, e.g. {'client.id': 'monitor-1'}."
    )

    @model_validator(mode="after")
    def _verification_stays_on(self) -> KafkaConfig:
        """Hostname and certificate verification are librdkafka's defaults; turning them off must be explicit."""
        off = {k: v for k, v in self.settings.items() if (k, str(v).lower()) in _INSECURE_TLS}
        if off and not self.allow_insecure_tls:
            raise ValueError(f"settings {sorted(off)} turn off TLS verification; set kafka.allow_insecure_tls: true "
                             "if you really mean it (never in production)")
        return self

    def librdkafka(self) -> dict[str, Any]:
        """The common client properties (consumer and producer add their own)."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        secret = _secret
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": secret(self.sasl_password),
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": secret(self.ssl_key_password),
        }
        if self.oauthbearer_token_endpoint_url is not None:
            optional.update({
                "sasl.oauthbearer.method": "oidc",
                "sasl.oauthbearer.token.endpoint.url": self.oauthbearer_token_endpoint_url,
                "sasl.oauthbearer.client.id": self.oauthbearer_client_id,
                "sasl.oauthbearer.client.secret": secret(self.oauthbearer_client_secret),
                "sasl.oauthbearer.scope": self.oauthbearer_scope,
            })
        if self.security_protocol in ("SSL", "SASL_SSL"):
            optional["ssl.endpoint.identification.algorithm"] = "https"  # librdkafka's default, stated explicitly
        conf.update({k: v for k, v in optional.items() if v is not None})
        conf.update(self.settings)
        return conf


#: librdkafka settings that switch off TLS verification (refused unless kafka.allow_insecure_tls).
_INSECURE_TLS = {("ssl.endpoint.identification.algorithm", "none"),
                 ("enable.ssl.certificate.verification", "false")}


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class TopicsConfig(_Section):
    predictions: str = "predictions"
    labels: str | None = None
    alerts: str = "monitor.alerts"
    dead_letter: str = "monitor.dead-letter"
    decisions: str = "monitor.decisions"
    windows: str | None = Field(default=None, description="One JSON record per closed window, keyed by its "
                                "deterministic window id (audit trail; None = off).")
    partials: str = Field(default="monitor.partials", description="Internal topic of spread models "
                          "(models[].spread): partial pane sketches and source watermarks, keyed by model id so "
                          "one instance merges each model. Created on start when a model is spread and it is "
                          "missing; unused otherwise.")


class ServiceConfig(_Section):
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(default=9308, ge=0, le=65535, description="0 picks a free port.")
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    poll_timeout_seconds: float = Field(default=0.5, gt=0, le=30)
    commit_interval_seconds: float = Field(default=1.0, ge=0)
    max_event_bytes: int = Field(default=1_048_576, ge=256)
    lag_refresh_seconds: float = Field(default=5.0, gt=0)
    metrics_tls_certfile: Path | None = Field(default=None, description="Serve /metrics over HTTPS with this "
                                              "certificate (PEM); needs metrics_tls_keyfile.")
    metrics_tls_keyfile: Path | None = None
    metrics_tls_client_cafile: Path | None = Field(default=None, description="Require client certificates "
                                                   "signed by this CA (mutual TLS) on /metrics.")
    delivery: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once", description="exactly_once: transactional producer; outputs, checkpoint and "
        "offsets commit atomically (consumers of the outputs must read with isolation.level=read_committed).")
    instance_id: str | None = Field(default=None, description="Stable id of this instance (transactional.id "
                                    "suffix); default: the host name.")
    max_queued_kbytes: int = Field(default=32_768, ge=1024, description="Bound on librdkafka's fetch queue and "
                                   "the producer queue (KiB): when processing falls behind, lag grows, memory not.")
    audit_log: Path | None = Field(default=None, description="Append every decision (retrain, promote, hold, "
                                   "rollback, blocked) to this JSON-lines file as well as to topics.decisions.")
    history_windows: int = Field(default=200, ge=1, le=100_000, description="Closed windows kept in memory per "
                                 "model version (and alerts per model) for the status page and `report`.")

    @model_validator(mode="after")
    def _tls_pair(self) -> ServiceConfig:
        if (self.metrics_tls_certfile is None) != (self.metrics_tls_keyfile is None):
            raise ValueError("metrics_tls_certfile and metrics_tls_keyfile go together")
        if self.metrics_tls_client_cafile is not None and self.metrics_tls_certfile is None:
            raise ValueError("metrics_tls_client_cafile needs metrics_tls_certfile and metrics_tls_keyfile")
        return self


class CheckpointConfig(_Section):
    """Where engine state goes before offsets are committed (docs/guarantees.md)."""

    backend: Literal["kafka", "directory", "none"] = Field(
        default="kafka", description="kafka: a compacted topic; directory: local files (one instance, or a "
        "shared file system); none: state is lost on restart (windows in progress restart empty).")
    topic: str = Field(default="monitor.checkpoints", description="Compacted; created on start if missing.")
    directory: Path | None = Field(default=None, description="For backend: directory.")
    create_topic: bool = Field(default=True, description="Create the checkpoint topic (cleanup.policy=compact, "
                               "as many partitions as the input) if it does not exist.")
    max_record_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024, description="Largest checkpoint "
                                  "record (one input partition's state, zlib-compressed).")
    read_timeout_seconds: float = Field(default=30.0, gt=0, description="Deadline to read checkpoints on assign.")

    @model_validator(mode="after")
    def _directory_given(self) -> CheckpointConfig:
        if self.backend == "directory" and self.directory is None:
            raise ValueError("backend 'directory' needs checkpoint.directory")
        return self


class FeatureSpec(_Section):
    name: str = Field(min_length=1, max_length=128)
    kind: FeatureKind = "numeric"


class WindowConfig(_Section):
    """Event-time windows; a window closes when the watermark passes its end.

    Tumbling by default; with `slide_seconds` smaller than `size_seconds` the windows
    overlap (sliding) and each is the merge of `size / slide` panes.
    """

    size_seconds: float = Field(default=300.0, gt=0)
    slide_seconds: float | None = Field(default=None, gt=0, description="None means tumbling (slide = size).")
    allowed_lateness_seconds: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _slide_divides_size(self) -> WindowConfig:
        if self.slide_seconds is not None:
            ratio = self.size_seconds / self.slide_seconds
            if self.slide_seconds > self.size_seconds or abs(ratio - round(ratio)) > 1e-9:
                raise ValueError("slide_seconds must divide size_seconds (e.g. size 300, slide 60)")
        return self

    @property
    def slide(self) -> float:
        return self.slide_seconds or self.size_seconds


class SliceConfig(_Section):
    """Statistics and rules per slice value (event field `slice.<key>`), with a cap on tracked values."""

    keys: list[str] = Field(default_factory=list, description="Slice tags to track, e.g. [country].")
    max_values: int = Field(default=10, ge=1, le=1000, description="Per key; later values fold into 'other'.")


DETECTOR_TYPES = ("adwin", "kswin", "page_hinkley", "ddm", "eddm", "hddm_a", "hddm_w", "fhddm")


class DetectorConfig(_Section):
    """An online detector (river.drift) on a per-event signal: a feature name or `prediction.score`."""

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._\-]+$")
    type: Literal["adwin", "kswin", "page_hinkley", "ddm", "eddm", "hddm_a", "hddm_w", "fhddm"]
    signal: str = Field(min_length=1)
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    severity: Severity = "warning"
    action: Action = "warn"


class ReferenceConfig(_Section):
    """Where the reference profile comes from: a file (`reference build`) or the first windows of the stream."""

    path: Path | None = None
    from_stream_windows: int = Field(default=1, ge=1, description="Used when `path` is not set.")
    bins: int = Field(default=10, ge=2, le=1000, description="Quantile bins for numeric features.")
    binning: Literal["quantile", "uniform"] = Field(
        default="quantile",
        description="Bin edges: equal reference mass per bin, or equal width between the 0.5% and 99.5% quantiles.")
    max_categories: int = Field(default=50, ge=1, le=10_000)
    pca_components: int = Field(default=10, ge=1, le=256, description="Principal components kept per embedding.")
    embedding_frequencies: int = Field(default=256, ge=8, le=8192, description="Random Fourier features for MMD.")
    embedding_seed: int = Field(default=20240917, description="Seed of the random feature map (same for all windows).")
    embedding_bandwidth: float | None = Field(default=None, gt=0, description="RBF bandwidth; None: median heuristic.")


class SpreadConfig(_Section):
    """Spread one hot model's events over several input partitions (docs/operations.md, "Spreading a hot model").

    Each owner of an input partition builds the model's panes from its own events and,
    when its partition's watermark closes a pane, publishes the pane's mergeable
    sketches to `topics.partials`; the one instance owning the model's partials
    partition merges them and evaluates each window once every source partition's
    watermark has passed it. Needs a file reference (`reference.path`: every shard
    bins against the same edges); online `detectors` and label-joined `performance`
    need every event in one place and are refused.
    """

    enabled: bool = Field(default=False, description="Producers may send this model's events to any partition "
                          "(round-robin, or keyed by something other than the model id).")
    source_partitions: int | None = Field(default=None, ge=1, description="Partitions of topics.predictions the "
                                          "merger waits for; None: all partitions of the topic (its metadata).")


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
    fire_after: int = Field(default=1, ge=1, description="Consecutive breaching windows before it fires.")
    clear_after: int = Field(default=1, ge=1, description="Consecutive clear windows before it resolves.")
    cooldown_windows: int = Field(default=0, ge=0, description="Windows after a resolve before it may fire again.")
    per_slice: bool = Field(default=False, description="Also judge each tracked slice (when slices are "
                            "configured). Slices are small: pair this with calibrated thresholds and `fdr`.")
    fdr: float | None = Field(default=None, gt=0, lt=1, description="Benjamini-Hochberg level across features "
                              "per window; needs a p-value metric or calibrated thresholds.")
    calibration: dict[str, Any] | None = Field(default=None, description="Written by `calibrate`: the null "
                                               "distribution the thresholds came from.")
    owner: str | None = None
    runbook: str | None = None
    _null_laws: tuple[dict[str, Any] | None, dict[str, Any]] | None = PrivateAttr(default=None)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in RULE_METRICS and value not in WINDOW_METRICS and not value.startswith("detections."):
            raise ValueError(f"unknown metric {value!r}; allowed: {', '.join(RULE_METRICS)}, "
                             f"window metrics {', '.join(WINDOW_METRICS)}, or detections.<detector id>")
        return value

    def null_laws(self) -> dict[str, Any]:
        """The calibration's pooled null laws as :class:`~stream_monitor.policy.null_model.NullModel`.

        Parsed once per calibration, not once per key and window: every calibrated key of
        every window asks for its p-value.
        """
        from stream_monitor.policy.null_model import NullModel

        calibration = self.calibration
        if self._null_laws is None or self._null_laws[0] is not calibration:
            raw = (calibration or {}).get("null_models", {})
            self._null_laws = (calibration, {name: NullModel.from_dict(d) for name, d in raw.items()})
        return self._null_laws[1]


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
    slices: SliceConfig = Field(default_factory=SliceConfig)
    detectors: list[DetectorConfig] = Field(default_factory=list)
    renotify_windows: int = Field(default=0, ge=0, description="While an incident stays open, publish it again "
                                  "every N windows (0: only when it opens, escalates or resolves).")
    retraining: RetrainingConfig | None = Field(default=None, description="Retrain / promote / hold / rollback "
                                                "decisions (docs/retraining.md); None: no decisions.")
    performance: PerformanceConfig | None = Field(default=None, description="Join labels (topics.labels) and "
                                                  "compute performance per window; None: off.")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="Data-quality contracts per feature.")
    freshness: FreshnessConfig = Field(default_factory=FreshnessConfig, description="Silence limits per stream.")
    llm: LLMConfig = Field(default_factory=LLMConfig, description="How the events' llm block is read.")
    spread: SpreadConfig = Field(default_factory=SpreadConfig, description="Spread a model too hot for one "
                                 "partition over several, merging partial window sketches (off by default).")

    def all_rules(self) -> list[RuleConfig]:
        """Declared rules plus one implied rule per detector (fires on any detection in the window)."""
        implied = [
            RuleConfig(id=f"detector.{d.id}", metric=f"detections.{d.id}", comparison=">=",
                       thresholds={d.severity: 1.0}, actions={d.severity: d.action}, features=[d.signal],
                       min_samples=1, per_slice=False)
            for d in self.detectors
        ]
        return [*self.rules, *implied]

    @model_validator(mode="after")
    def _unique_names(self) -> ModelConfig:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names must be unique; repeated: {', '.join(dupes)}")
        rule_ids = [r.id for r in self.rules] + [d.id for d in self.detectors]
        dupes = sorted({r for r in rule_ids if rule_ids.count(r) > 1})
        if dupes:
            raise ValueError(f"rule and detector ids must be unique; repeated: {', '.join(dupes)}")
        known = {d.id for d in self.detectors}
        for r in self.rules:
            if r.metric.startswith("detections.") and r.metric.split(".", 1)[1] not in known:
                raise ValueError(f"rule {r.id!r} names {r.metric!r} but no detector has that id")
        if not self.features and self.reference.path is None:
            raise ValueError("declare `features`, or give `reference.path` so they can be taken from the profile")
        return self

    @model_validator(mode="after")
    def _spread_needs_mergeable_state(self) -> ModelConfig:
        """A spread model's state is built on several instances and merged: only what merges may be in it."""
        if not self.spread.enabled:
            return self
        if self.reference.path is None:
            raise ValueError("spread.enabled needs reference.path: every partition's shard bins against the same "
                             "reference edges, and a reference built from the stream would exist only on the merger")
        if self.detectors:
            raise ValueError("spread.enabled cannot be combined with detectors: online detectors need every event "
                             "of the model in order, on one instance")
        if self.performance is not None:
            raise ValueError("spread.enabled cannot be combined with performance: the label join needs every "
                             "prediction of the model on one instance")
        return self


class MonitorConfig(BaseSettings):
    """The whole service configuration."""

    model_config = SettingsConfigDict(
        env_prefix="STREAM_MONITOR_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    topics: TopicsConfig = Field(default_factory=TopicsConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
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

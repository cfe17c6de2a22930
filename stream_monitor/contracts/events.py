"""Input contracts: one prediction event per inference request, one label event per ground truth.

These models are the contract producers sign up to. They are strict on purpose
(unknown fields, NaN/inf and naive timestamps are rejected) because a monitor
that silently absorbs malformed data reports drift that is really a bug upstream.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

CONTRACT_VERSION = "1"

Identifier = Annotated[str, Field(min_length=1, max_length=256)]
ModelId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-/]+$")]
FeatureName = Annotated[str, Field(min_length=1, max_length=128)]
Embedding = Annotated[list[float], Field(min_length=1, max_length=4096)]
FeatureValue = float | str | bool | Embedding | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, populate_by_name=True)


class Prediction(_Strict):
    """What the model answered: a score (e.g. probability), a class, a regression value, or several."""

    score: float | None = None
    class_: Annotated[str | None, Field(alias="class", max_length=256)] = None
    value: float | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Prediction:
        if self.score is None and self.class_ is None and self.value is None:
            raise ValueError("prediction needs at least one of 'score', 'class' or 'value'")
        return self


class LLMInfo(_Strict):
    """Per-request facts of an LLM application, needed to explain drift in prompts, retrieval and cost."""

    prompt_version: str | None = Field(default=None, max_length=128)
    index_version: str | None = Field(default=None, max_length=128)
    tokens_in: int | None = Field(default=None, ge=0)
    tokens_out: int | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    guardrail_action: str | None = Field(default=None, max_length=64)


class PredictionEvent(_Strict):
    """One prediction, published by the inference service at request time."""

    schema_version: Literal["1"] = "1"
    event_id: Identifier
    model_id: ModelId
    model_version: Identifier
    timestamp: AwareDatetime = Field(description="Event time: when the prediction was made (ISO-8601 with offset).")
    features: dict[FeatureName, FeatureValue] = Field(
        description="Feature name -> number, string, bool, null (missing) or list of numbers (embedding)."
    )
    prediction: Prediction
    latency_ms: float | None = Field(default=None, ge=0)
    slice: dict[FeatureName, Annotated[str, Field(max_length=256)]] | None = Field(
        default=None, description="Segment tags such as country or channel, for per-slice statistics."
    )
    llm: LLMInfo | None = None


class LabelEvent(_Strict):
    """Ground truth for an earlier prediction, joined on `event_id`; may arrive minutes to days later."""

    schema_version: Literal["1"] = "1"
    event_id: Identifier
    model_id: ModelId
    label: float | str | bool
    timestamp: AwareDatetime = Field(description="When the label became known.")

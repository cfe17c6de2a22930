"""Bytes -> validated PredictionEvent, or a rejection with a short reason for the dead-letter topic.

The reasons are a closed set (they become a Prometheus label): ``oversized``,
``bad_json``, ``non_finite``, ``schema``, ``unknown_model``, ``wrong_type``. The detail
names fields and positions, never values: it ends up in headers and logs.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from stream_monitor.config import MonitorConfig
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.errors import EventRejected

C = TypeVar("C", bound=BaseModel)

REJECT_REASONS = ("oversized", "bad_json", "non_finite", "schema", "unknown_model", "wrong_type")


def _describe(exc: ValidationError) -> tuple[str, str]:
    errors = exc.errors(include_input=False, include_url=False)
    types = {e["type"] for e in errors}
    if "json_invalid" in types:
        return "bad_json", "payload is not valid JSON"
    if "finite_number" in types:
        locs = [e["loc"] for e in errors if e["type"] == "finite_number"]
        return "non_finite", "NaN or infinity at " + ", ".join(".".join(map(str, loc[:2])) for loc in locs[:5])
    # A union (feature values) yields one error per branch; report each location once.
    seen: dict[str, str] = {}
    for e in errors:
        loc = ".".join(str(p) for p in e["loc"][:2]) or "(event)"
        seen.setdefault(loc, e["msg"])
    return "schema", "; ".join(f"{loc}: {msg}" for loc, msg in list(seen.items())[:5])


def validate_json(contract: type[C], raw: bytes | None, max_bytes: int) -> C:
    """One message against a contract: tombstones, oversized records and schema errors become rejections."""
    if raw is None:
        raise EventRejected("schema", "empty message (tombstone)")
    if len(raw) > max_bytes:
        raise EventRejected("oversized", f"{len(raw)} bytes > service.max_event_bytes={max_bytes}")
    try:
        return contract.model_validate_json(raw)
    except ValidationError as exc:
        raise EventRejected(*_describe(exc)) from None


class EventDecoder:
    """Validates raw prediction events against the contract and the configured models' feature types."""

    def __init__(self, config: MonitorConfig, feature_kinds: dict[str, dict[str, str]]) -> None:
        self.max_bytes = config.service.max_event_bytes
        self.feature_kinds = feature_kinds

    def decode(self, raw: bytes | None) -> PredictionEvent:
        event = validate_json(PredictionEvent, raw, self.max_bytes)
        kinds = self.feature_kinds.get(event.model_id)
        if kinds is None:
            raise EventRejected("unknown_model", f"model_id {event.model_id!r} is not configured")
        check_kinds(event.features, kinds)
        return event


def check_kinds(features: Mapping[str, object], kinds: Mapping[str, str]) -> None:
    """Reject (``wrong_type``) the first declared feature whose value does not fit its kind.

    Shared by :class:`EventDecoder` and the fast decoder, so both give the same reason and detail.
    """
    for name, value in features.items():
        kind = kinds.get(name)
        if kind is None or value is None:
            continue
        if kind == "numeric" and not isinstance(value, float | int | bool):
            raise EventRejected("wrong_type", f"feature {name!r} is numeric, got {type(value).__name__}")
        if kind == "categorical" and isinstance(value, list):
            raise EventRejected("wrong_type", f"feature {name!r} is categorical, got a list")
        if kind == "embedding" and not isinstance(value, list):
            raise EventRejected("wrong_type", f"feature {name!r} is an embedding, got {type(value).__name__}")

"""Event contracts: the committed JSON Schemas match the models, and the decoder accepts/rejects as specified."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest
from helpers import monitor_config

from stream_monitor.config import config_from_dict
from stream_monitor.contracts.decode import EventDecoder
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.contracts.schemas import render_schemas
from stream_monitor.engine import Engine
from stream_monitor.errors import EventRejected
from stream_monitor.simulate import MALFORMATIONS, TrafficSimulator, malformed

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_committed_schemas_match_the_models() -> None:
    rendered = render_schemas()
    on_disk = {p.name: p.read_text() for p in SCHEMAS.glob("*.schema.json")}
    assert on_disk == rendered, "schemas/ is stale: run `stream-monitor schemas export`"


@pytest.fixture(scope="module")
def decoder() -> EventDecoder:
    cfg = config_from_dict(monitor_config(service={"max_event_bytes": 65_536}))
    return EventDecoder(cfg, Engine(cfg).feature_kinds())


def test_valid_event_is_accepted_and_also_valid_against_the_json_schema(decoder: EventDecoder) -> None:
    event = TrafficSimulator(seed=1).event(datetime(2026, 1, 1, tzinfo=UTC))
    decoded = decoder.decode(orjson.dumps(event))
    assert decoded.model_id == "credit-risk" and decoded.prediction.score == event["prediction"]["score"]
    jsonschema.validate(event, json.loads(render_schemas()["prediction_event.schema.json"]))


@pytest.mark.parametrize("kind", MALFORMATIONS)
def test_each_malformation_is_rejected_with_its_reason(decoder: EventDecoder, kind: str) -> None:
    event = TrafficSimulator(seed=2).event(datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(EventRejected) as err:
        decoder.decode(malformed(event, kind))
    assert err.value.reason == kind
    assert "forty" not in err.value.detail, "details name fields, never values"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.update(timestamp="2026-01-01T00:00:00"), "schema"),  # naive timestamp
        (lambda e: e.update(prediction={}), "schema"),  # no score, class or value
        (lambda e: e.update(surprise=1), "schema"),  # unknown top-level field
        (lambda e: e["features"].update(channel=[1.0, 2.0]), "wrong_type"),  # list for a categorical
        (lambda e: e.update(latency_ms=-1), "schema"),
    ],
)
def test_contract_edges(decoder: EventDecoder, mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    event = TrafficSimulator(seed=3).event(datetime(2026, 1, 1, tzinfo=UTC))
    mutate(event)
    with pytest.raises(EventRejected) as err:
        decoder.decode(orjson.dumps(event))
    assert err.value.reason == reason


def test_missing_and_extra_features_are_not_rejections(decoder: EventDecoder) -> None:
    event = TrafficSimulator(seed=4).event(datetime(2026, 1, 1, tzinfo=UTC))
    event["features"].pop("age")
    event["features"]["income"] = None
    event["features"]["undeclared"] = "kept out of the state"
    assert isinstance(decoder.decode(orjson.dumps(event)), PredictionEvent)


def test_prediction_class_alias_round_trips() -> None:
    raw = {"event_id": "e", "model_id": "m", "model_version": "1", "timestamp": "2026-01-01T00:00:00Z",
           "features": {}, "prediction": {"class": "spam"}}
    ev = PredictionEvent.model_validate(raw)
    assert ev.prediction.class_ == "spam"
    assert ev.model_dump(by_alias=True, mode="json")["prediction"]["class"] == "spam"

"""JSON Schema export: `schemas/*.schema.json` are generated from the pydantic models, never edited by hand."""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.contracts.batch import PredictionBatchMessage
from stream_monitor.contracts.decisions import DecisionEvent
from stream_monitor.contracts.events import LabelEvent, PredictionEvent

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "prediction_event": PredictionEvent,
    "label_event": LabelEvent,
    "alert_event": AlertEvent,
    "decision_event": DecisionEvent,
    "prediction_batch": PredictionBatchMessage,
}


def render_schemas() -> dict[str, str]:
    """File name -> JSON text, deterministic (sorted keys, trailing newline)."""
    out = {}
    for name, model in SCHEMA_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://stream-monitor.dev/schemas/{name}.schema.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def export_schemas(directory: str | Path) -> list[Path]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in render_schemas().items():
        path = d / filename
        path.write_text(text)
        written.append(path)
    return written

"""Bytes -> validated LabelEvent, or a rejection with the same closed set of reasons as prediction events.

Labels are far fewer than predictions (one per request at most, often a sample),
so plain pydantic validation is fast enough here; bad labels go to the dead-letter
topic exactly like bad predictions (``oversized``, ``bad_json``, ``non_finite``,
``schema``, ``unknown_model``), with details that name fields, never values.
"""
from __future__ import annotations

from collections.abc import Sequence

from stream_monitor.config import MonitorConfig
from stream_monitor.contracts.decode import validate_json
from stream_monitor.contracts.events import LabelEvent
from stream_monitor.errors import EventRejected


class LabelDecoder:
    def __init__(self, config: MonitorConfig) -> None:
        self.max_bytes = config.service.max_event_bytes
        self.models = {m.model_id for m in config.models}

    def decode(self, raw: bytes | None) -> LabelEvent:
        event = validate_json(LabelEvent, raw, self.max_bytes)
        if event.model_id not in self.models:
            raise EventRejected("unknown_model", f"model_id {event.model_id!r} is not configured")
        return event

    def decode_all(self, values: Sequence[bytes | None]) -> tuple[list[LabelEvent], list[tuple[int, EventRejected]]]:
        """The valid labels in order, and (index, rejection) for the others."""
        ok: list[LabelEvent] = []
        bad: list[tuple[int, EventRejected]] = []
        for i, raw in enumerate(values):
            try:
                ok.append(self.decode(raw))
            except EventRejected as err:
                bad.append((i, err))
        return ok, bad

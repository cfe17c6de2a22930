"""The fast decoders decide exactly as the pydantic contract: same accept/reject, same reason and detail."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from helpers import monitor_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_monitor.config import config_from_dict
from stream_monitor.contracts.decode import EventDecoder
from stream_monitor.contracts.fastdecode import FastDecoder
from stream_monitor.contracts.records import RecordDecoder
from stream_monitor.engine import Engine
from stream_monitor.errors import EventRejected
from stream_monitor.simulate import MALFORMATIONS, TrafficSimulator, malformed

CFG = config_from_dict(monitor_config(service={"max_event_bytes": 65_536}))
ENGINE = Engine(CFG)
SLOW = EventDecoder(CFG, ENGINE.feature_kinds())
FAST = FastDecoder(CFG, ENGINE.feature_kinds())
RECORDS = RecordDecoder.for_engine(ENGINE)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5),
                    st.sampled_from(["", "1.5", "NaN", "x" * 300]))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=3), scalars, max_size=2))
timestamps = st.one_of(
    st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5+01:00", "2026-01-01T00:00:00+01:60",
                     "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01 00:00:00Z", "2026-01-01t00:00:00Z",
                     "2026-01-01T00:00:00", "2026-01-01T00:00:00.1234567Z", "0000-01-01T00:00:00Z",
                     "2026-01-01T00:00:00+0100", "1700000000", "2026-01-01T00:00:00-23:59",
                     "２０２６-01-01T00:00:00Z"]),
    st.integers(0, 2**40), st.floats(allow_nan=False, allow_infinity=False), st.none(), st.text(max_size=30))
FIELDS = ["schema_version", "event_id", "model_id", "model_version", "timestamp", "features", "prediction",
          "latency_ms", "slice", "llm", "surprise", "class_"]


def decide(decoder: Any, raw: bytes) -> tuple[str, Any]:
    try:
        ev = decoder.decode(raw)
    except EventRejected as err:
        return ("reject", (err.reason, err.detail))
    model = ev if not hasattr(ev, "to_model") else ev.to_model()
    dump = model.model_dump()
    return ("accept", (dump, ev.timestamp.utcoffset()))


def base_event(seed: int) -> dict[str, Any]:
    return TrafficSimulator(seed=seed).event(datetime(2026, 1, 1, tzinfo=UTC))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    ev = base_event(draw(st.integers(0, 3)))
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["top", "feature", "prediction", "timestamp", "drop", "slice", "llm"]))
        if where == "top":
            ev[draw(st.sampled_from(FIELDS))] = draw(values)
        elif where == "feature" and isinstance(ev.get("features"), dict):
            ev["features"][draw(st.sampled_from([*ev["features"], "", "n" * 129, "new"]))] = draw(values)
        elif where == "prediction":
            ev["prediction"] = draw(st.dictionaries(st.sampled_from(["score", "class", "value", "class_", "x"]),
                                                    scalars, max_size=3))
        elif where == "timestamp":
            ev["timestamp"] = draw(timestamps)
        elif where == "drop":
            ev.pop(draw(st.sampled_from(FIELDS)), None)
        elif where == "slice":
            ev["slice"] = draw(st.one_of(st.none(), st.dictionaries(st.text(max_size=3), scalars, max_size=2)))
        else:
            ev["llm"] = draw(st.one_of(st.none(), st.dictionaries(
                st.sampled_from(["prompt_version", "tokens_in", "cost_usd", "guardrail_action", "x"]), scalars,
                max_size=3)))
    return orjson.dumps(ev)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fast_decoder_decides_as_pydantic(raw: bytes) -> None:
    assert decide(FAST, raw) == decide(SLOW, raw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=12))
def test_batch_decoder_decides_as_pydantic_row_by_row(raws: list[bytes]) -> None:
    decoded = RECORDS.decode(raws)
    rejected = {i: (e.reason, e.detail) for i, e in decoded.rejected}
    expected_valid = 0
    for i, raw in enumerate(raws):
        kind, detail = decide(SLOW, raw)
        if kind == "reject":
            assert rejected.get(i) == detail, f"row {i}"
        else:
            assert i not in rejected, f"row {i}: {rejected.get(i)}"
            expected_valid += 1
    assert decoded.valid == expected_valid


@pytest.mark.parametrize("kind", MALFORMATIONS)
def test_simulator_malformations(kind: str) -> None:
    raw = malformed(base_event(5), kind)
    assert decide(FAST, raw) == decide(SLOW, raw)
    decoded = RECORDS.decode([orjson.dumps(base_event(6)), raw])
    assert [(i, e.reason) for i, e in decoded.rejected] == [(1, kind)] and decoded.valid == 1


def test_duplicate_keys_and_whitespace_follow_pydantic() -> None:
    good = orjson.dumps(base_event(1))
    for raw in (good.replace(b'"model_id"', b'"model_id":"x","model_id"', 1), b"  " + good + b"\n",
                good.replace(b'"features":{', b'"features":{"age":"x",', 1)):
        assert decide(FAST, raw) == decide(SLOW, raw)

"""The typed one-pass path (msgspec structs) accepts only what pydantic accepts, with the same values.

``test_fastdecode_equivalence.py`` compares decisions; here the decoded *columns* of a
batch are compared with the columns built from pydantic's own events for the rows it
accepts (values, missing values, order), on fuzzed batches, on edge cases chosen where
msgspec and pydantic could differ, and with two models and an embedding feature.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import orjson
import pytest
from helpers import monitor_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fastdecode_equivalence import CFG, ENGINE, SLOW, base_event, decide, mutated

from stream_monitor.columns import ColumnBatch, columns_from_events
from stream_monitor.config import config_from_dict
from stream_monitor.contracts.decode import EventDecoder
from stream_monitor.contracts.records import RecordDecoder
from stream_monitor.engine import Engine
from stream_monitor.errors import EventRejected


def _expected(engine: Engine, slow: EventDecoder, raws: list[bytes | None]) -> tuple[dict[str, ColumnBatch], dict]:
    """Columns per model from pydantic's events of the accepted rows, and the rejections by row."""
    events: dict[str, list[Any]] = {}
    rejected = {}
    for i, raw in enumerate(raws):
        try:
            ev = slow.decode(raw)
        except EventRejected as err:
            rejected[i] = (err.reason, err.detail)
        else:
            events.setdefault(ev.model_id, []).append(ev)
    out = {}
    for model_id, evs in events.items():
        mm = engine.models[model_id]
        out[model_id] = columns_from_events(model_id, mm.numeric_features, mm.categorical_features, evs,
                                            mm.embedding_features)
    return out, rejected


def _same(got: ColumnBatch, exp: ColumnBatch) -> None:
    assert got.model_id == exp.model_id
    np.testing.assert_array_equal(got.ts_ms, exp.ts_ms)
    assert got.versions == exp.versions
    assert list(got.numeric) == list(exp.numeric)
    for name, col in exp.numeric.items():
        assert got.numeric[name].dtype == np.float64
        np.testing.assert_array_equal(got.numeric[name], col, err_msg=name)  # NaN (missing) equals NaN
    assert got.categorical == exp.categorical
    assert got.slices == exp.slices
    assert got.event_ids == exp.event_ids
    for name in ("latency_ms", "values"):
        a, b = getattr(got, name), getattr(exp, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert got.embedding == exp.embedding
    dump = [None if x is None else x.model_dump() for x in (got.llm or [])]
    assert dump == [None if x is None else x.model_dump() for x in (exp.llm or [])]


def _check(decoder: RecordDecoder, engine: Engine, slow: EventDecoder, raws: list[bytes | None]) -> None:
    decoded = decoder.decode(raws)
    expected, rejected = _expected(engine, slow, raws)
    assert {i: (e.reason, e.detail) for i, e in decoded.rejected} == rejected
    assert {b.model_id for b in decoded.batches} == set(expected)
    for batch in decoded.batches:
        _same(batch, expected[batch.model_id])


def _typed_records() -> RecordDecoder:
    return RecordDecoder.for_engine(ENGINE)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=12))
def test_typed_batch_columns_equal_pydantic_rows(raws: list[bytes]) -> None:
    _check(_typed_records(), ENGINE, SLOW, raws)


def _variant(seed: int, change: Any) -> bytes:
    ev = base_event(seed)
    if callable(change):
        change(ev)
        return orjson.dumps(ev)
    return change if isinstance(change, bytes) else orjson.dumps(ev)


def _set(path: str, value: Any) -> Any:
    def apply(ev: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = ev
        for p in parents:
            node = node[p]
        node[last] = value
    return apply


def _drop(path: str) -> Any:
    def apply(ev: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = ev
        for p in parents:
            node = node[p]
        node.pop(last, None)
    return apply


GOOD = orjson.dumps(base_event(3))
EDGES: list[Any] = [
    _set("features.age", 45), _set("features.age", True), _set("features.age", None), _drop("features.age"),
    _set("features.age", 2**64 - 1), _set("features.age", -0.0), _set("features.age", "45"),
    _set("features.age", [1.0]), _set("features.age", {"a": 1}), _set("features.channel", 3),
    _set("features.channel", 2.5), _set("features.channel", False), _set("features.channel", None),
    _set("features.channel", ["a"]), _set("features.channel", "é" * 300), _set("features.undeclared", 1.0),
    _set("features.undeclared", "x"), _set("features.undeclared", [1, 2]), _set("features", {}),
    _set("prediction", {}), _set("prediction", {"class": "x"}), _set("prediction", {"value": 3}),
    _set("prediction.score", "0.5"), _set("prediction.score", True), _set("prediction.score", None),
    _set("prediction.class", "c" * 256), _set("prediction.class", "c" * 257), _set("prediction.class", 1),
    _set("prediction.class_", "x"), _set("prediction.other", 1), _set("latency_ms", -0.0),
    _set("latency_ms", -1), _set("latency_ms", 3), _set("latency_ms", None), _drop("latency_ms"),
    _set("slice", None), _set("slice", {}), _set("slice", {"k" * 128: "v"}), _set("slice", {"k" * 129: "v"}),
    _set("slice", {"": "v"}), _set("slice", {"k": "v" * 257}), _set("slice", {"k": 1}),
    _set("llm", {"prompt_version": "p1", "tokens_in": 3}), _set("llm", {"tokens_in": 3.0}), _set("llm", None),
    _set("schema_version", "1"), _set("schema_version", "2"), _set("schema_version", 1),
    _set("event_id", "😀" * 256), _set("event_id", "😀" * 257), _set("event_id", ""), _set("model_version", 7),
    _set("model_id", "unknown-model"), _set("model_id", "credit-risk\n"), _set("timestamp", "2026-01-01T00:00:00Z"),
    _set("timestamp", "2026-01-01T00:00:00.123456-05:30"), _set("timestamp", "2026-01-01T00:00:00"),
    _set("timestamp", "2026-02-30T00:00:00Z"), _set("timestamp", "2026-01-01T00:00:00+01:60"),
    _set("timestamp", "2026-01-01T00:00:00Z\n2026-01-01T00:00:00Z"), _set("timestamp", 1767225600),
    _set("surprise", 1),
    GOOD.replace(b'"model_id":"credit-risk"', b'"model_id":"x","model_id":"credit-risk"', 1),
    GOOD.replace(b'"features":{', b'"features":{"age":"x",', 1),
    GOOD.replace(b'"features":{', b'"features":{"age":1e400,', 1), GOOD.replace(b'"age":', b'"\\u0061ge":', 1),
    GOOD.replace(b'"latency_ms":', b'"latency_ms":1e400,"x":', 1), b"  " + GOOD + b"\n", GOOD[:-1],
    GOOD.replace(b'"event_id":"', b'"event_id":"\\ud800', 1),
    GOOD.replace(b'"event_id":"', b'"event_id":"\\ud83d\\ude00', 1),
    b"[]", b"null", b"{}",
]


@pytest.mark.parametrize("edge", range(len(EDGES)))
def test_edge_cases_alone_and_in_a_batch(edge: int) -> None:
    raw = _variant(edge % 4, EDGES[edge])
    good = [orjson.dumps(base_event(10 + j)) for j in range(4)]
    _check(_typed_records(), ENGINE, SLOW, [raw])
    _check(_typed_records(), ENGINE, SLOW, [good[0], raw, good[1], raw, good[2]])


def test_tombstones_and_oversized_records_are_left_to_the_general_path() -> None:
    big = orjson.dumps({**base_event(1), "event_id": "x" * 200, "features": {
        **base_event(1)["features"], **{f"pad{j}": "y" * 100 for j in range(700)}}})
    assert len(big) > CFG.service.max_event_bytes
    _check(_typed_records(), ENGINE, SLOW, [GOOD, None, big, GOOD])


def test_valid_stream_takes_the_typed_path() -> None:
    raws = [orjson.dumps(base_event(j)) for j in range(200)]
    records = _typed_records()
    _check(records, ENGINE, SLOW, raws)
    assert records.typed is not None and records.typed.taken == 200 and records.typed.left == 0


def _two_models() -> tuple[Engine, EventDecoder, RecordDecoder]:
    cfg = monitor_config()
    second = copy.deepcopy(cfg["models"][0])
    second["model_id"] = "ranker/v2:eu"
    second["features"] = [{"name": "x", "kind": "numeric"}, {"name": "tag", "kind": "categorical"},
                          {"name": "emb", "kind": "embedding"}]
    second.pop("detectors", None)
    cfg["models"].append(second)
    engine = Engine(config_from_dict(cfg))
    return engine, EventDecoder(engine.config, engine.feature_kinds()), RecordDecoder.for_engine(engine)


def test_two_models_interleaved_with_an_embedding_feature() -> None:
    engine, slow, records = _two_models()
    raws: list[bytes | None] = []
    for j in range(60):
        if j % 3:
            raws.append(orjson.dumps(base_event(j)))
            continue
        emb: Any = [float(j), 1, -2.5] if j % 2 else None
        raws.append(orjson.dumps({"event_id": f"r{j}", "model_id": "ranker/v2:eu", "model_version": "v9",
                                  "timestamp": f"2026-01-01T00:{j:02d}:00.25Z",
                                  "features": {"x": j, "tag": "a" if j % 4 else None, "emb": emb},
                                  "prediction": {"value": j / 3}}))
    raws[9] = raws[9].replace(b'"emb":', b'"emb":[],"x2":', 1)  # type: ignore[union-attr]
    _check(records, engine, slow, raws)
    assert records.typed is not None and records.typed.taken == 59


def test_backs_off_when_most_records_need_the_general_path() -> None:
    records = _typed_records()
    odd = [_variant(j, _set("features.undeclared", 1.0)) for j in range(10)]
    _check(records, ENGINE, SLOW, odd)
    assert records.typed is not None and records.typed.left == 10
    _check(records, ENGINE, SLOW, [GOOD] * 5)  # skipped while backing off, decided by the general path alike
    assert records.typed.taken == 0
    assert decide(SLOW, GOOD)[0] == "accept"


def test_feature_names_msgspec_cannot_map_take_the_general_path() -> None:
    """A declared feature named with a quote and angle brackets (legal in the contract) builds no typed
    struct for its model; that model's events still decode, through pydantic, with the same columns."""
    cfg = monitor_config()
    name = 'a<b>&"x'
    cfg["models"][0]["features"] = [{"name": name}, {"name": "plain"}]
    engine = Engine(config_from_dict(cfg))
    slow = EventDecoder(engine.config, engine.feature_kinds())
    records = RecordDecoder.for_engine(engine)
    model_id = cfg["models"][0]["model_id"]
    raws: list[bytes | None] = [orjson.dumps({
        "event_id": f"e{j}", "model_id": model_id, "model_version": "v1",
        "timestamp": f"2026-01-01T00:00:{j:02d}Z", "features": {name: j * 0.5, "plain": -j},
        "prediction": {"score": 0.25}}) for j in range(20)]
    _check(records, engine, slow, raws)
    assert records.typed is None or records.typed.taken == 0

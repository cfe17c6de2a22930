"""Categorical columns kept as dictionary codes (Arrow) count exactly what the same strings count.

The reference is the path every other decoder takes: a list of ``str | None`` counted
with ``Counter``. Batches are cut so that messages list their categories in different
orders, carry nulls, categories only some messages have, and an Arrow dictionary column.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from bench import stream
from stream_monitor.coded_column import CodedColumn, concat_categories
from stream_monitor.columns import _route
from stream_monitor.contracts.batch import encode_arrow, encode_json
from stream_monitor.contracts.records import RecordDecoder
from stream_monitor.engine import Engine
from stream_monitor.engine_types import EngineOutput


def _counter(rows: list[str | None]) -> tuple[Counter[str], int]:
    tally: Counter[Any] = Counter(rows)
    return tally, tally.pop(None, 0)


@pytest.mark.parametrize("seed", range(3))
def test_tally_take_and_concat_equal_the_plain_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = ["b", "a", None, "c", "a"]  # a repeat and a null inside the dictionary, as Arrow allows
    parts = [CodedColumn(rng.integers(-1, len(values), 500), values),
             CodedColumn(rng.integers(-1, 2, 300), ["z", "b"]), CodedColumn.constant("a", 40),
             CodedColumn.constant(None, 7)]
    rows = [r for p in parts for r in p.tolist()]
    whole = concat_categories(parts)
    assert isinstance(whole, CodedColumn) and whole.tolist() == rows
    got, missing = whole.tally()
    want, want_missing = _counter(rows)
    assert (list(got.items()), missing) == (list(want.items()), want_missing)  # order of first appearance too
    idx = np.sort(rng.choice(len(rows), 200, replace=False))
    picked = whole.take(idx)
    assert picked.tolist() == [rows[i] for i in idx]
    assert picked.tally()[0] == _counter(picked.tolist())[0]
    assert whole.take(slice(100, 600)) == rows[100:600]
    assert [whole.count(v) for v in ("a", "b", "z", None, "q")] == [rows.count(v) for v in ("a", "b", "z", None, "q")]
    assert CodedColumn.constant("v1", 5).single() == (True, "v1") and whole.single()[0] is False
    many = CodedColumn(rng.integers(0, 100, 5000), [f"c{i}" for i in range(100)])  # the np.unique branch
    assert list(many.tally()[0].items()) == list(_counter(many.tolist())[0].items())
    mixed = concat_categories([parts[0], ["x", None]])
    assert list(mixed) == parts[0].tolist() + ["x", None]


def _messages(fmt: str) -> list[bytes]:
    n, rows = 9000, 3000
    out = []
    for first in range(0, n, rows):
        b = stream.block(first, rows, n, seed=3)
        cols = stream.batch_columns(b)
        cats: dict[str, Any] = cols["features"]
        c0 = list(cats["category_0"])
        for j in range(first % 7, rows, 11):
            c0[j] = None
        if first == rows:
            c0[5:40] = ["brand-new"] * 35  # a category only this message has, listed first in its dictionary
            c0[0:5] = [None] * 5
        cats["category_0"] = c0
        cats["category_1"] = [None] * rows if first == 0 else cats["category_1"]  # all missing in one message
        if fmt == "arrow":
            if first == 2 * rows:  # a producer that sends a dictionary column (its own dictionary order)
                cats["category_2"] = pa.array(cats["category_2"]).dictionary_encode()
            out.append(encode_arrow(cols))
        else:
            cols["features"] = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in cats.items()}
            cols["prediction"]["score"] = cols["prediction"]["score"].tolist()
            out.append(encode_json(cols))
    return out


def test_arrow_codes_count_what_json_strings_count() -> None:
    cfg = stream.config(2.0)
    states = {}
    for fmt in ("json", "arrow"):
        engine = Engine(cfg)
        records = RecordDecoder.for_engine(engine)
        decoded = records.decode(_messages(fmt))
        assert decoded.rejected == [] and decoded.valid == 9000
        if fmt == "arrow":
            assert isinstance(decoded.batches[0].categorical["category_0"], CodedColumn)
        mm = engine.models[stream.MODEL_ID]
        for batch in decoded.batches:  # routed to panes and kept (no close), so every pane can be compared
            _route(engine, mm, batch, EngineOutput())
        states[fmt] = {k: ({name: c.to_dict() for name, c in p.overall.categorical.items()}, p.n_events,
                           dict(p.versions["model_version"])) for k, p in mm.panes.items()}
    assert states["arrow"] == states["json"]
    panes = [p[0] for p in states["json"].values()]
    assert len(panes) == 5 and sum(n for _, n, _ in states["json"].values()) == 9000
    assert any(p["category_0"]["counts"].get("brand-new") for p in panes)
    assert any(p["category_1"]["missing"] for p in panes) and any(p["category_0"]["missing"] for p in panes)

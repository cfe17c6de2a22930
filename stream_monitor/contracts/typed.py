"""Per-event JSON straight into typed structs: decode and validate in one compiled pass (msgspec).

Why: ``orjson.loads`` builds a dict per event and a dict per ``features`` object, and
every contract check then runs as Python over those dicts; together that was twice
the cost of the parse. Here each configured model gets a msgspec ``Struct`` whose
fields are the model's declared features with their kinds (numeric: number, bool or
null; categorical: anything but a list or an object; embedding: 1-4096 numbers), and
the event struct carries the contract's constraints (ids of 1-256 characters, a
``class`` of at most 256, ``schema_version`` ``"1"``, no unknown keys, slice tags of
1-128 / at most 256 characters). The model is the union's tag (``model_id``), so one
decoder call parses, validates and picks the model. msgspec rejects numbers outside
the double range, so every accepted number is finite, as the contract requires.

Why it is exactly as strict as the contract: this path only ever *accepts*. A record
msgspec refuses (an undeclared feature, a lax spelling pydantic would coerce, an
``llm`` block, a duplicated ``model_id``, invalid JSON, anything), or whose timestamp
or prediction does not pass the checks below, goes to :class:`RecordDecoder`'s
general path (orjson, batch checks, then pydantic), which decides and explains. Every
accepted record is one pydantic accepts with the same values;
``tests/perf/test_fastdecode_equivalence.py`` compares decisions and decoded columns
with pydantic on valid, mutated and fuzzed events.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import chain
from operator import attrgetter
from typing import Annotated, Any, Literal, Union

import msgspec
import numpy as np

from stream_monitor.columns import ColumnBatch, category_column, numeric_column, optional_numbers
from stream_monitor.contracts.fastdecode import _MODEL_ID, _TIMESTAMP, _TS_ALL, epoch_ms
from stream_monitor.window_state import PREDICTION_CLASS, PREDICTION_SCORE

__all__ = ["TypedDecoder"]

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_TagName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_TagValue = Annotated[str, msgspec.Meta(max_length=256)]
_Class = Annotated[str, msgspec.Meta(max_length=256)]
_Latency = Annotated[float, msgspec.Meta(ge=0)]
_Embedding = Annotated[list[float], msgspec.Meta(min_length=1, max_length=4096)]
#: What each declared kind may hold (check_kinds' rules within the contract's FeatureValue).
_KIND_TYPES: dict[str, Any] = {"numeric": Union[float, bool, None],  # noqa: UP007 - a runtime type object
                               "categorical": Union[str, float, bool, None],  # noqa: UP007
                               "embedding": Union[_Embedding, None]}  # noqa: UP007
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, TypeError)
#: After a batch in which most records needed the general path, skip this path for this many batches.
_BACKOFF_BATCHES = 64


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class _Never(msgspec.Struct, tag_field="model_id", tag="\x00", forbid_unknown_fields=True):
    """A second member of the union, which no event can match: with a single model, msgspec would
    decode the struct itself, for which the tag (``model_id``) is optional; in a union it is required."""

    never: int


class _Prediction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    score: float | None = None
    class_: _Class | None = msgspec.field(default=None, name="class")
    value: float | None = None


class _Model:
    """One model's event type and how to read its columns."""

    def __init__(self, model_id: str, numeric: list[str], categorical: list[str], embedding: list[str],
                 kinds: dict[str, str]) -> None:
        self.model_id = model_id
        self.numeric, self.categorical, self.embedding = numeric, categorical, embedding
        attr = {name: f"f{j}" for j, name in enumerate(kinds)}
        features = msgspec.defstruct(
            f"Features_{len(kinds)}", [(attr[n], _KIND_TYPES[k], msgspec.field(default=None, name=n))
                                       for n, k in kinds.items()],
            forbid_unknown_fields=True, gc=False)
        self.event = msgspec.defstruct(
            "Event", [("event_id", _Id), ("model_version", _Id), ("timestamp", str), ("features", features),
                      ("prediction", _Prediction), ("schema_version", Literal["1"], "1"),
                      ("latency_ms", _Latency | None, None),
                      ("slice", dict[_TagName, _TagValue] | None, None),
                      ("llm", msgspec.Raw | None, None)],
            tag_field="model_id", tag=model_id, forbid_unknown_fields=True, gc=False)
        plain = [n for n in numeric if n != PREDICTION_SCORE]
        self.plain_numeric = plain
        self.numeric_get = attrgetter(*(attr[n] for n in plain)) if plain else None
        self.category_get = {n: attrgetter(attr[n]) for n in categorical if n != PREDICTION_CLASS}
        self.embedding_get = {n: attrgetter(attr[n]) for n in embedding}


_FEATURES = attrgetter("features")
_PRED = attrgetter("prediction")
_TS = attrgetter("timestamp")
_VERSION = attrgetter("model_version")
_ID = attrgetter("event_id")
_LLM = attrgetter("llm")
_SLICE = attrgetter("slice")
_LATENCY = attrgetter("latency_ms")
_SCORE = attrgetter("score")
_CLASS = attrgetter("class_")
_VALUE = attrgetter("value")
#: Row for row with the checked events: event times, predictions, scores (:meth:`TypedDecoder._check`).
_Checked = tuple[list[Any], list[Any], list[Any]]


def _take(columns: Sequence[list[Any]], rows: list[int]) -> list[list[Any]]:
    """The same rows of several row-aligned lists."""
    return [[col[j] for j in rows] for col in columns]


class TypedDecoder:
    """Decodes the records that surely satisfy the contract into columns; the rest are left to the caller.

    ``models``: model_id -> (numeric, categorical, embedding feature names, feature kinds),
    as the engine tracks them. A model without declared kinds, or whose id or feature
    names the contract would refuse, is left to the general path.
    """

    def __init__(self, models: dict[str, tuple[list[str], list[str], list[str], dict[str, str]]],
                 max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.models: dict[type, _Model] = {}
        for model_id, (numeric, categorical, embedding, kinds) in models.items():
            if not kinds or len(model_id) > 128 or _MODEL_ID.fullmatch(model_id) is None \
                    or any(not 1 <= len(n) <= 128 or k not in _KIND_TYPES for n, k in kinds.items()) \
                    or {PREDICTION_SCORE, PREDICTION_CLASS} & set(kinds):
                continue
            try:
                m = _Model(model_id, numeric, categorical, embedding, kinds)
            except ValueError:  # a name msgspec cannot map (quotes, backslashes, control characters)
                continue
            self.models[m.event] = m
        types: list[type] = list(self.models)
        if types:
            types.append(_Never)
        self._decode = msgspec.json.Decoder(Union[tuple(types)]).decode if types else None  # noqa: UP007
        self._skip = 0
        #: Records taken by this path and left to the general one (a high share: producers send other shapes).
        self.taken = 0
        self.left = 0

    def decode(self, values: Sequence[bytes | None]) -> tuple[list[tuple[np.ndarray, ColumnBatch]], list[int]]:
        """Column batches (with each row's record index) of the records this path accepts, and the other indexes."""
        if self._decode is None or not values:
            return [], list(range(len(values)))
        if self._skip:
            self._skip -= 1
            return [], list(range(len(values)))
        events, pos, rest = self._parse(values)
        rows: _Checked = ([], [], [])
        if events:
            events, pos, rest, rows = self._check(events, pos, rest)
        self.taken += len(pos)
        self.left += len(rest)
        if len(rest) * 2 > len(values):
            self._skip = _BACKOFF_BATCHES
        segments = []
        if events:
            types = list(map(type, events))
            kinds = dict.fromkeys(types)
            columns = (events, pos, *rows)
            for t in kinds:
                part, at, *checked = columns if len(kinds) == 1 else \
                    _take(columns, [j for j, k in enumerate(types) if k is t])
                segments.append((np.asarray(at), self._columns(self.models[t], part, *checked)))
        return segments, rest

    def _parse(self, values: Sequence[bytes | None]) -> tuple[list[Any], list[int], list[int]]:
        decode = self._decode
        assert decode is not None
        if None not in values and max(map(len, values)) <= self.max_bytes:  # type: ignore[arg-type]
            try:
                return list(map(decode, values)), list(range(len(values))), []  # type: ignore[arg-type]
            except _DECODE_ERRORS:
                pass
        events: list[Any] = []
        pos: list[int] = []
        rest: list[int] = []
        for i, raw in enumerate(values):
            if raw is None or len(raw) > self.max_bytes:
                rest.append(i)
                continue
            try:
                events.append(decode(raw))
            except _DECODE_ERRORS:
                rest.append(i)
            else:
                pos.append(i)
        return events, pos, rest

    @staticmethod
    def _check(events: list[Any], pos: list[int], rest: list[int]
               ) -> tuple[list[Any], list[int], list[int], _Checked]:
        """What the structs cannot say: a canonical aware timestamp, a prediction with a value, no ``llm`` block.

        Also returns what it read on the way, row for row with the kept events (event times,
        predictions, scores), so :meth:`_columns` does not read them again.
        """
        ts = list(map(_TS, events))
        preds = list(map(_PRED, events))
        ok: list[bool] | None = None
        if _TS_ALL.fullmatch("\n".join(ts)) is None:
            ok = [_TIMESTAMP.fullmatch(t) is not None for t in ts]
        when: list[datetime | None] = []
        try:
            if ok is None:
                when = list(map(datetime.fromisoformat, ts))  # dates the pattern cannot rule out (February 30th)
        except ValueError:
            ok = [True] * len(ts)
        if ok is not None:
            when = [_iso(t) if good else None for t, good in zip(ts, ok, strict=True)]
            ok = [w is not None for w in when]
        llm = list(map(_LLM, events))
        if llm.count(None) != len(llm):
            ok = [a and b is None for a, b in zip(ok or [True] * len(events), llm, strict=True)]
        scores = list(map(_SCORE, preds))
        if None in scores:
            classes, values = list(map(_CLASS, preds)), list(map(_VALUE, preds))
            filled = [s is not None or c is not None or v is not None
                      for s, c, v in zip(scores, classes, values, strict=True)]
            ok = [a and b for a, b in zip(ok or [True] * len(events), filled, strict=True)]
        if ok is None or all(ok):
            return events, pos, rest, (when, preds, scores)
        rest = sorted(rest + [p for p, good in zip(pos, ok, strict=True) if not good])
        events, pos, when, preds, scores = _take((events, pos, when, preds, scores),
                                                 [j for j, good in enumerate(ok) if good])
        return events, pos, rest, (when, preds, scores)

    @staticmethod
    def _columns(m: _Model, events: list[Any], when: list[datetime], preds: list[Any],
                 scores: list[float | None]) -> ColumnBatch:
        feats = list(map(_FEATURES, events))
        numeric: dict[str, np.ndarray] = {}
        if m.numeric_get is not None:
            k = len(m.plain_numeric)
            try:  # one flat pass: bools become 1.0 / 0.0 as numeric_value makes them
                flat = np.fromiter(chain.from_iterable(map(m.numeric_get, feats)) if k > 1
                                   else map(m.numeric_get, feats), np.float64, len(feats) * k)
            except TypeError:  # a null somewhere (a missing value): column by column, NaN for it
                rows = list(map(m.numeric_get, feats))
                numeric = {m.plain_numeric[0]: numeric_column(rows)} if k == 1 else \
                    {n: numeric_column([r[j] for r in rows]) for j, n in enumerate(m.plain_numeric)}
            else:
                numeric = dict(zip(m.plain_numeric, flat.reshape(len(feats), k).T.copy(), strict=True))
        classes = list(map(_CLASS, preds))
        if PREDICTION_SCORE in m.numeric:
            numeric[PREDICTION_SCORE] = numeric_column(scores)
        categorical: dict[str, list[str | None]] = {}
        for name in m.categorical:
            categorical[name] = classes if name == PREDICTION_CLASS else \
                category_column(list(map(m.category_get[name], feats)))
        ts_ms = epoch_ms(when)
        slices = list(map(_SLICE, events))
        return ColumnBatch(
            model_id=m.model_id, ts_ms=ts_ms, versions=list(map(_VERSION, events)),
            numeric={n: numeric[n] for n in m.numeric}, categorical=categorical,
            slices=None if slices.count(None) == len(slices) else slices,
            embedding={n: list(map(get, feats)) for n, get in m.embedding_get.items()},
            event_ids=list(map(_ID, events)), latency_ms=optional_numbers(list(map(_LATENCY, events))),
            values=optional_numbers(list(map(_VALUE, preds))))

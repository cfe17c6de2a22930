"""Snapshot and restore of engine state, per model, so a partition's state can move between instances.

Why per model: a model's events are keyed by its id, so one model lives in one input
partition, and the checkpoint of a partition is the state of the models seen on it
(:mod:`stream_monitor.checkpoint`). What a model's state holds: the watermark, the
open panes (every sketch, per slice), the panes kept for a reference still being
built from the stream, the reference itself when it was built from the stream, the
tracked slice values, the online detectors, the versions seen, and the policy state
(rule hysteresis and the open incident). Everything derived from the configuration
(feature lists, file references) is rebuilt from it, not stored.

The format is JSON (``allow_nan``: moments hold infinities while empty) with sketches
in their own serialisations; detectors are river objects and are pickled, and read
back with an allow-list unpickler: a checkpoint topic is input, and unrestricted
unpickling of input would be code execution for anyone allowed to write to it.

A new field on :class:`~stream_monitor.engine.ModelMonitor` must be added to
:data:`MODEL_FIELDS` (or to :data:`CONFIG_FIELDS` if it is rebuilt from config):
``tests/state/test_state_codec.py`` fails until it is, because a field missing from
the snapshot would be silently reset by every restart.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import logging
import pickle
from collections.abc import Callable, Iterable
from typing import Any

from stream_monitor.engine import Engine, ModelMonitor
from stream_monitor.errors import StreamMonitorError
from stream_monitor.policy.engine import Incident, SeriesState
from stream_monitor.policy.hysteresis import KeyState
from stream_monitor.reference import ReferenceProfile
from stream_monitor.window_state import Pane

log = logging.getLogger(__name__)

STATE_FORMAT = "stream-monitor/model-state"
#: Bumped whenever a snapshot written by this version cannot be read by the previous one.
STATE_FORMAT_VERSION = 1

#: ModelMonitor fields rebuilt from the configuration on every start, never stored.
CONFIG_FIELDS = frozenset({"config", "numeric_features", "categorical_features", "embedding_features"})


class StateError(StreamMonitorError):
    """A snapshot cannot be read: wrong format, newer format version, or forbidden content."""


# -- detectors: pickled river objects, read back through an allow-list ------------------------------

_ALLOWED_MODULE_PREFIXES = ("river.", "stream_monitor.detectors.")
_ALLOWED_GLOBALS = {
    ("collections", "deque"), ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("collections", "Counter"), ("random", "Random"), ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("copyreg", "_reconstructor"), ("builtins", "object"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "complex"), ("builtins", "slice"), ("builtins", "range"), ("builtins", "bytearray"),
}


def _allowed_owner(obj: Any) -> bool:
    module = obj.__module__ if isinstance(obj, type) else type(obj).__module__
    return isinstance(module, str) and module.startswith(_ALLOWED_MODULE_PREFIXES)


def _safe_getattr(obj: Any, name: str) -> Any:
    """river pickles bound methods as getattr(obj, name); allow that, and nothing that walks out of river."""
    if not isinstance(name, str) or name.startswith("__") or not _allowed_owner(obj):
        raise StateError(f"checkpoint refused: getattr({type(obj).__name__}, {name!r}) is not allowed")
    return getattr(obj, name)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("builtins", "getattr"):
            return _safe_getattr
        if module.startswith(_ALLOWED_MODULE_PREFIXES) or (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise StateError(f"checkpoint refused: it would load {module}.{name}, which is not on the allow-list")


def dump_object(obj: Any) -> str:
    return base64.b64encode(pickle.dumps(obj, protocol=5)).decode()


def load_object(data: str) -> Any:
    return _RestrictedUnpickler(io.BytesIO(base64.b64decode(data))).load()


# -- one model ------------------------------------------------------------------------------------

def _panes_out(panes: dict[tuple[str, int], Pane]) -> list[Any]:
    return [[v, s, p.to_dict()] for (v, s), p in sorted(panes.items())]


def _panes_in(mm: ModelMonitor, data: list[Any]) -> dict[tuple[str, int], Pane]:
    spaces = mm.embedding_spaces()  # embedding sketches share their feature map: restored before the panes
    return {(str(v), int(s)): Pane.from_dict(p, spaces) for v, s, p in data}


def _spaces_out(mm: ModelMonitor) -> dict[str, Any]:
    """The model's embedding feature maps: the first batch fits them (dimension, bandwidth), so they are state."""
    return {name: {"rff": space.rff.spec(),
                   "components": None if space.components is None else space.components.tolist(),
                   "center": None if space.center is None else space.center.tolist()}
            for name, space in sorted(mm.spaces.items())}


def _spaces_in(mm: ModelMonitor, data: dict[str, Any]) -> None:
    from stream_monitor.sketches.embedding import EmbeddingSpace, RandomFourierFeatures

    mm.spaces = {name: EmbeddingSpace(RandomFourierFeatures.from_spec(d["rff"]), d["components"], d["center"])
                 for name, d in data.items()}


def _reference_out(mm: ModelMonitor) -> Any:
    ref = mm.reference
    if ref is None:
        return None
    if ref.version_basis == "span":  # built from the stream: the snapshot is its only copy
        return {"profile": ref.to_dict()}
    return {"profile_id": ref.profile_id}  # from a file: the configuration brings it back


def _reference_in(mm: ModelMonitor, data: Any) -> None:
    if data is None:
        if mm.reference is not None and mm.reference.version_basis == "span":
            mm.reference = None
        return
    if "profile" in data:
        mm.reference = ReferenceProfile.from_dict(data["profile"], "checkpoint")
        return
    current = mm.reference.profile_id if mm.reference is not None else None
    if current != data["profile_id"]:
        log.warning("model %s: checkpoint was taken against reference %s, the configuration now gives %s; "
                    "open windows continue against the configured one", mm.config.model_id, data["profile_id"],
                    current)


#: ModelMonitor field -> (encode(mm) -> JSON-able, decode(mm, data) sets the field).
MODEL_FIELDS: dict[str, tuple[Callable[[ModelMonitor], Any], Callable[[ModelMonitor, Any], None]]] = {
    "reference": (_reference_out, _reference_in),  # reference and spaces first: panes are rebuilt in their maps
    "spaces": (_spaces_out, _spaces_in),
    "watermark": (lambda mm: {"max_event_ms": mm.watermark.max_event_ms},
                  lambda mm, d: setattr(mm.watermark, "max_event_ms", d["max_event_ms"])),
    "panes": (lambda mm: _panes_out(mm.panes), lambda mm, d: setattr(mm, "panes", _panes_in(mm, d))),
    "next_close": (lambda mm: dict(mm.next_close),
                   lambda mm, d: setattr(mm, "next_close", {str(k): int(v) for k, v in d.items()})),
    "reference_panes": (lambda mm: _panes_out(mm.reference_panes),
                        lambda mm, d: setattr(mm, "reference_panes", _panes_in(mm, d))),
    "reference_windows": (lambda mm: mm.reference_windows, lambda mm, d: setattr(mm, "reference_windows", int(d))),
    "slice_values": (lambda mm: {k: list(v) for k, v in mm.slice_values.items()},
                     lambda mm, d: setattr(mm, "slice_values", {k: list(v) for k, v in d.items()})),
    "detectors": (lambda mm: [[v, i, dump_object(det)] for (v, i), det in sorted(mm.detectors.items())],
                  lambda mm, d: setattr(mm, "detectors", {(v, i): load_object(blob) for v, i, blob in d})),
    "last_versions": (lambda mm: mm.last_versions,
                      lambda mm, d: setattr(mm, "last_versions", {v: {k: list(x) for k, x in f.items()}
                                                                  for v, f in d.items()})),
    # Label join buffer, performance / operations / quality accumulators, retained windows, their policy.
    "outcomes": (lambda mm: mm.outcomes.to_dict() if mm.outcomes is not None else None,
                 lambda mm, d: _outcomes_in(mm, d)),
}


def _outcomes_in(mm: ModelMonitor, data: Any) -> None:
    if mm.outcomes is None:
        return
    fresh = mm.outcomes.empty()
    if data:
        fresh.restore(data)
    mm.outcomes = fresh


def uncovered_fields() -> set[str]:
    """ModelMonitor fields that neither the snapshot carries nor the configuration rebuilds."""
    names = {f.name for f in dataclasses.fields(ModelMonitor)}
    return names - set(MODEL_FIELDS) - CONFIG_FIELDS


def _series_out(state: SeriesState) -> dict[str, Any]:
    return {
        "keys": [[list(key), ks.to_dict()] for key, ks in state.keys.items()],
        "incident": dataclasses.asdict(state.incident) if state.incident is not None else None,
    }


def _series_in(data: dict[str, Any]) -> SeriesState:
    keys = {(k[0], k[1], k[2]): KeyState.from_dict(ks) for k, ks in data["keys"]}
    incident = Incident(**data["incident"]) if data["incident"] is not None else None
    return SeriesState(keys=keys, incident=incident)


def state_fingerprint(mm: ModelMonitor) -> str:
    """Hash of the configuration that shapes a model's state; a restore across a change of it is refused."""
    cfg = mm.config
    shape = {"features": [f.model_dump(mode="json") for f in cfg.features],
             "window": cfg.window.model_dump(mode="json"), "slices": cfg.slices.model_dump(mode="json"),
             "detectors": [d.model_dump(mode="json") for d in cfg.detectors],
             "reference": cfg.reference.model_dump(mode="json", exclude={"path"}),
             "monitor_prediction": cfg.monitor_prediction,
             "numeric": mm.numeric_features, "categorical": mm.categorical_features}
    if cfg.spread.enabled:  # spread state (shards' panes, the merger's windows) is not an unspread model's
        shape["spread"] = True
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


def snapshot_model(engine: Engine, model_id: str) -> dict[str, Any]:
    mm = engine.models[model_id]
    fields = {name: encode(mm) for name, (encode, _) in MODEL_FIELDS.items()}
    series = {version: _series_out(s) for (mid, version), s in sorted(engine.policy.series.items())
              if mid == model_id}
    return {"fingerprint": state_fingerprint(mm), "fields": fields, "policy": series,
            "decisions": engine.decisions.snapshot(model_id)}


def reset_model(engine: Engine, model_id: str, initial_reference: ReferenceProfile | None,
                pristine: dict[str, Any] | None = None) -> None:
    """Back to the state of a fresh engine: what an instance holds for a model it does not own.

    `pristine` is :func:`snapshot_model` of the fresh engine; it brings back the unfitted embedding maps.
    """
    mm = engine.models[model_id]
    mm.reference = initial_reference
    if pristine is not None:
        _spaces_in(mm, pristine["fields"]["spaces"])
    mm.watermark.max_event_ms = None
    mm.panes, mm.next_close, mm.reference_panes = {}, {}, {}
    mm.reference_windows = 0
    mm.slice_values, mm.detectors, mm.last_versions = {}, {}, {}
    if mm.outcomes is not None:
        mm.outcomes = mm.outcomes.empty()
    for key in [k for k in engine.policy.series if k[0] == model_id]:
        del engine.policy.series[key]
    for key in [k for k in engine.latest if k[0] == model_id]:
        del engine.latest[key]
    for key in [k for k in engine.history if k[0] == model_id]:
        del engine.history[key]
    engine.alert_history.pop(model_id, None)
    engine.decisions.reset(model_id)


def restore_model(engine: Engine, model_id: str, data: dict[str, Any]) -> bool:
    """Put a snapshot back; False (and the model left as it is) if the configuration changed its shape."""
    mm = engine.models[model_id]
    if data["fingerprint"] != state_fingerprint(mm):
        log.error("model %s: checkpointed state was built under a different window/feature/slice/detector "
                  "configuration; it is not restored and the model starts empty", model_id)
        return False
    for name, (_, decode) in MODEL_FIELDS.items():
        if name in data["fields"]:
            decode(mm, data["fields"][name])
    for key in [k for k in engine.policy.series if k[0] == model_id]:
        del engine.policy.series[key]
    for version, series in data["policy"].items():
        engine.policy.series[(model_id, version)] = _series_in(series)
    engine.decisions.restore(model_id, data.get("decisions"))  # schedules, triggers, probation, pairs
    return True


# -- a set of models (one partition's) ------------------------------------------------------------

def snapshot_models(engine: Engine, model_ids: Iterable[str]) -> dict[str, Any]:
    """The state of `model_ids` as one JSON-able document with its format and version."""
    return {"format": STATE_FORMAT, "format_version": STATE_FORMAT_VERSION,
            "models": {mid: snapshot_model(engine, mid) for mid in sorted(model_ids)}}


def restore_models(engine: Engine, document: dict[str, Any], skip: Iterable[str] = ()) -> list[str]:
    """Restore every model in `document` that the engine knows; returns the ids restored."""
    if document.get("format") != STATE_FORMAT:
        raise StateError(f"not a stream-monitor state snapshot (format={document.get('format')!r})")
    version = document.get("format_version")
    if not isinstance(version, int) or version > STATE_FORMAT_VERSION:
        raise StateError(f"state snapshot format_version {version} is newer than this stream-monitor reads "
                         f"({STATE_FORMAT_VERSION}); run the newer version, or reset the checkpoint "
                         "(docs/operations.md) to start these partitions empty")
    restored: list[str] = []
    skipped = set(skip)
    for mid, data in document["models"].items():
        if mid not in engine.models:
            log.warning("checkpoint holds state of model %s, which is no longer configured; dropped", mid)
        elif mid in skipped:
            log.error("checkpoint holds state of model %s, which this instance already owns from another "
                      "partition (events not keyed by model id?); not restored", mid)
        elif restore_model(engine, mid, data):
            restored.append(mid)
    return restored


def encode_document(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=True).encode()


def decode_document(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise StateError(f"state snapshot is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise StateError("state snapshot is not a JSON object")
    return doc

"""Embedding features in the engine: sketches per window, MMD / mean / PCA drift against the reference."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
from helpers import START

from stream_monitor.config import config_from_dict
from stream_monitor.contracts.events import PredictionEvent
from stream_monitor.engine import Engine
from stream_monitor.reference import EmbeddingReference, ReferenceProfile

DIM = 32


def events(n: int, shift_from: int, shift: float, seed: int = 0) -> list[PredictionEvent]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        v = rng.normal(size=DIM) + (shift if i >= shift_from else 0.0)
        out.append(PredictionEvent.model_validate({
            "event_id": str(i), "model_id": "m", "model_version": "1",
            "timestamp": (START + timedelta(seconds=i / 100)).isoformat(),
            "features": {"q": v.tolist(), "x": float(rng.normal())}, "prediction": {"score": 0.5}}))
    return out


def config() -> dict:  # type: ignore[type-arg]
    return {"models": [{"model_id": "m", "features": [{"name": "q", "kind": "embedding"}, {"name": "x"}],
                        "window": {"size_seconds": 10}, "reference": {"from_stream_windows": 2},
                        "rules": [{"id": "mmd", "metric": "mmd2", "thresholds": {"warning": 0.005}}]}]}


def test_embedding_shift_alerts_on_mmd_and_pca_statistics_follow(tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng = Engine(config_from_dict(config()))
    evs = events(8000, shift_from=5000, shift=0.3)
    out = eng.process([])
    for i in range(0, len(evs), 250):  # streaming-sized batches
        out.extend(eng.process(evs[i : i + 250]))
    out.extend(eng.flush())
    evaluated = [r for r in out.reports if r.role == "evaluated"]
    mmd = [r.features["q"].stats["mmd2"] for r in evaluated]
    assert max(mmd[:3]) < 0.002 and min(mmd[3:]) > 0.01, mmd
    assert "pca_mean_shift" in evaluated[-1].features["q"].stats, "windows opened after the reference get PCA"
    firing = [a for a in out.alerts if a.status == "firing"]
    assert firing and firing[0].window_start == START + timedelta(seconds=50)
    assert firing[0].findings[0].feature == "q" and firing[0].findings[0].metric == "mmd2"

    ref = eng.models["m"].reference
    assert ref is not None and isinstance(ref.features["q"], EmbeddingReference)
    path = ref.save(tmp_path / "ref.json")
    loaded = ReferenceProfile.load(path)
    assert loaded.profile_id == ref.profile_id and loaded.features["q"].dim == DIM  # type: ignore[union-attr]


def test_embedding_feature_rejects_a_scalar_and_counts_missing_vectors() -> None:
    from stream_monitor.contracts.decode import EventDecoder
    from stream_monitor.errors import EventRejected

    cfg = config_from_dict(config())
    eng = Engine(cfg)
    dec = EventDecoder(cfg, eng.feature_kinds())
    ok = events(1, 0, 0.0)[0].model_dump_json(by_alias=True).encode()
    assert dec.decode(ok).model_id == "m"
    bad = ok.replace(b'"q":[', b'"q":1.0,"_":[')
    try:
        dec.decode(bad)
        raise AssertionError("a scalar for an embedding feature must be rejected")
    except EventRejected as err:
        assert err.reason == "wrong_type" and "q" in err.detail

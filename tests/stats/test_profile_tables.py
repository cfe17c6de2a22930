"""Reference profiles built from tables: JSON lines, CSV and (with pyarrow) Parquet.

The two-pass build gives exact reference bin counts: they equal numpy's counts of the
raw column on the profile's edges.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from stream_monitor.errors import ProfileError
from stream_monitor.reference import ReferenceProfile
from stream_monitor.reference_tables import build_profile_from_table, infer_kinds, read_table

N = 3_000


def rows(seed: int = 0) -> list[dict]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, size=N)
    out = []
    for i in range(N):
        out.append({
            "income": None if i % 50 == 0 else float(income[i]),
            "channel": str(rng.choice(["web", "app", "branch"])),
            "vip": bool(i % 3 == 0),
            "emb": (rng.normal(size=8) + 1).round(6).tolist(),
        })
    return out


def test_csv_build_has_exact_counts_and_inferred_kinds(tmp_path: Path) -> None:
    data = rows()
    path = tmp_path / "ref.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(data[0]))
        w.writeheader()
        for r in data:
            w.writerow({**r, "income": "" if r["income"] is None else r["income"], "emb": json.dumps(r["emb"]),
                        "vip": str(r["vip"]).lower()})
    assert infer_kinds(next(read_table(path))) == {"income": "numeric", "channel": "categorical",
                                                   "vip": "categorical", "emb": "embedding"}
    profile = build_profile_from_table(path, "m", bins=10, chunk_rows=700)
    income = np.array([r["income"] for r in data if r["income"] is not None])
    ref = profile.features["income"]
    assert ref.n == income.size and ref.missing == N // 50
    exact = np.bincount(np.digitize(income, ref.edges, right=True), minlength=ref.edges.size + 1)
    assert np.array_equal(ref.counts, exact)
    assert profile.features["channel"].n == N and profile.features["emb"].n == N
    assert profile.features["emb"].dim == 8 and profile.row_count == N
    assert ReferenceProfile.load(profile.save(tmp_path / "p.json")).profile_id == profile.profile_id


def test_jsonl_prediction_events_are_flattened(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with path.open("w") as fh:
        for i, r in enumerate(rows()[:500]):
            fh.write(json.dumps({"event_id": str(i), "model_id": "m", "model_version": "1",
                                 "timestamp": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00",
                                 "features": {"income": r["income"], "channel": r["channel"]},
                                 "prediction": {"score": i / 500, "class": "yes" if i % 2 else "no"}}) + "\n")
    kinds = {"income": "numeric", "channel": "categorical", "prediction.score": "numeric",
             "prediction.class": "categorical"}
    profile = build_profile_from_table(path, "m", kinds=kinds)
    assert set(profile.features) == set(kinds)
    assert profile.features["prediction.score"].n == 500
    assert profile.time_span == ("2026-01-01T00:00:00+00:00", "2026-01-01T00:08:19+00:00")


def test_parquet_build_matches_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    data = rows(1)
    table = pa.table({k: [r[k] for r in data] for k in data[0]})
    pq.write_table(table, tmp_path / "ref.parquet", row_group_size=1_000)
    profile = build_profile_from_table(tmp_path / "ref.parquet", "m", chunk_rows=800)
    assert profile.features["income"].n == N - N // 50
    assert profile.features["emb"].dim == 8
    assert profile.features["vip"].categories == ["false", "true"]


def test_unknown_format_and_empty_table_are_profile_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="table format"):
        build_profile_from_table(tmp_path / "x.xlsx", "m")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ProfileError, match="no rows"):
        build_profile_from_table(tmp_path / "empty.jsonl", "m")

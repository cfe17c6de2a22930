"""The benchmark harness runs end to end with tiny counts and writes its reports (no timings asserted)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.__main__ as bench_main


def test_bench_writes_reports_with_the_expected_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_main, "QUICK", dict(events=1_000, batched=4_000, runs=1, broker=1_000,
                                                  memory=[4_000, 8_000], peers=2_000, window=500, kswin=100))
    bench_main.main(["--quick", "--out", str(tmp_path), "--skip", "broker"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert {"inprocess", "memory", "peers", "targets", "params"} <= report.keys()
    assert {"orjson_decode", "floor_decode_columns", "engine_json", "engine_json_vs_floor",
            "engine_batched_json"} <= report["inprocess"].keys()
    assert report["memory"]["runs"] and "numeric_feature_bytes" in report["memory"]
    assert "stream-monitor (per-event JSON)" in report["peers"]
    assert "## Targets" in (tmp_path / "report.md").read_text()

"""The benchmark harness runs end to end with tiny counts and writes its reports (no timings asserted)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench import live_lag, report


def test_bench_writes_reports_with_the_expected_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_main, "QUICK", dict(events=1_000, batched=4_000, runs=1, broker=1_000,
                                                  memory=[4_000, 8_000], peers=2_000, window=500, kswin=100,
                                                  lag_seconds=1))
    bench_main.main(["--quick", "--out", str(tmp_path), "--skip", "broker", "lag"])
    result = json.loads((tmp_path / "report.json").read_text())
    assert {"inprocess", "memory", "peers", "targets", "params"} <= result.keys()
    assert {"orjson_decode", "floor_decode_columns", "engine_json", "engine_json_vs_floor",
            "engine_batched_json"} <= result["inprocess"].keys()
    assert result["memory"]["runs"] and "numeric_feature_bytes" in result["memory"]
    assert "stream-monitor (per-event JSON)" in result["peers"]
    assert "## Targets" in (tmp_path / "report.md").read_text()


def test_live_lag_is_measured_for_every_paced_event_on_the_embedded_broker() -> None:
    """Section 3b: a paced producer process, the service on a real broker, a lag for every paced event."""
    lag = live_lag.run(capacity=8_000, window_seconds=50.0, seconds=1.0)
    assert [r["fraction"] for r in lag["rates"]] == [0.25, 0.5, 0.75]
    for r in lag["rates"]:
        assert r["events"] == int(r["rate"] * lag["seconds"])
        assert 0 < r["lag_ms"]["p50"] <= r["lag_ms"]["p99"] <= r["lag_ms"]["max"]
        assert r["produced_per_s"] <= r["rate"] * 1.05  # paced, not a burst
    text = report.markdown({"machine": {"python": "3", "cpus": 2, "platform": "x"}, "started": "now",
                            "quick": True, "lag": lag})
    assert "## 3b. Lag at a steady live rate" in text and "| 2,000/s (25%) |" in text

"""The command line as a user drives it: simulate -> reference build -> replay, and `run` under SIGTERM."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml
from confluent_kafka import Consumer, TopicPartition
from helpers import monitor_config

from stream_monitor.cli import main
from stream_monitor.reference import ReferenceProfile
from stream_monitor.simulate import DEFAULT_DRIFT_FEATURES, TrafficSimulator
from stream_monitor.testing import produce_all, unique_name


def test_simulate_reference_build_and_replay_with_a_file_reference(tmp_path: Path) -> None:
    ref_events, live_events = tmp_path / "ref.jsonl", tmp_path / "live.jsonl"
    start = "2026-03-01T00:00:00+00:00"
    assert main(["simulate", "--output", str(ref_events), "--rate", "100", "--duration", "60", "--start", start,
                 "--seed", "1"]) == 0
    assert main(["simulate", "--output", str(live_events), "--rate", "100", "--duration", "60",
                 "--start", "2026-03-02T00:00:00+00:00", "--drift-after", "30", "--seed", "2"]) == 0
    assert len(live_events.read_text().splitlines()) == 6000

    cfg = monitor_config()
    cfg_path = tmp_path / "monitor.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    profile_path = tmp_path / "reference.json"
    assert main(["reference", "build", "-c", str(cfg_path), "--input", str(ref_events), "-o", str(profile_path)]) == 0
    profile = ReferenceProfile.load(profile_path)
    assert profile.row_count == 6000 and "income" in profile.features and "prediction.score" in profile.features
    again = tmp_path / "again.json"
    assert main(["reference", "build", "-c", str(cfg_path), "--input", str(ref_events), "-o", str(again)]) == 0

    cfg["models"][0]["reference"] = {"path": str(profile_path)}
    cfg_path.write_text(yaml.safe_dump(cfg))
    alerts_out, metrics_out = tmp_path / "alerts.jsonl", tmp_path / "metrics.txt"
    assert main(["replay", "-c", str(cfg_path), "--input", str(live_events), "--alerts-out", str(alerts_out),
                 "--metrics-out", str(metrics_out)]) == 0
    alerts = [json.loads(line) for line in alerts_out.read_text().splitlines()]
    assert len(alerts) == 1, "one incident: opened at the first drifted window, not re-published"
    drifted = {f["feature"] for a in alerts for f in a["findings"] if not f["feature"].startswith("prediction.")}
    assert drifted == set(DEFAULT_DRIFT_FEATURES)
    assert {a["reference_version"] for a in alerts} == {profile.profile_id}
    assert all(a["evidence"]["binning"] == "exact" for a in alerts), "windows bin on the file reference's edges"
    assert all(a["window_start"] >= "2026-03-02T00:00:30" for a in alerts)
    text = metrics_out.read_text()
    assert 'stream_monitor_windows_closed_total{model_id="credit-risk",role="evaluated"} 6.0' in text


def test_a_tampered_reference_is_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ref_events = tmp_path / "ref.jsonl"
    main(["simulate", "--output", str(ref_events), "--rate", "50", "--duration", "20", "--seed", "1"])
    cfg_path = tmp_path / "monitor.yaml"
    cfg_path.write_text(yaml.safe_dump(monitor_config()))
    profile_path = tmp_path / "reference.json"
    main(["reference", "build", "-c", str(cfg_path), "--input", str(ref_events), "-o", str(profile_path)])
    data = json.loads(profile_path.read_text())
    data["features"]["income"]["mean"] += 1.0
    profile_path.write_text(json.dumps(data))
    cfg = monitor_config()
    cfg["models"][0]["reference"] = {"path": str(profile_path)}
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["check-config", "-c", str(cfg_path)]) == 2
    assert "content hash mismatch" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_consumes_and_commits_then_stops_cleanly_on_sigterm(kafka_bootstrap, topic_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    preds, alerts, dlq = topic_factory("preds"), topic_factory("alerts"), topic_factory("dlq")
    group, port = unique_name("run"), _free_port()
    cfg = monitor_config(kafka={"bootstrap_servers": kafka_bootstrap, "group_id": group},
                         topics={"predictions": preds, "alerts": alerts, "dead_letter": dlq})
    cfg["service"]["metrics_port"] = port
    cfg_path = tmp_path / "monitor.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    sim = TrafficSimulator(seed=9)
    from datetime import UTC, datetime

    n = produce_all(kafka_bootstrap, preds, [(k, v) for k, v, _ in sim.messages(datetime.now(UTC), 3000, 1000)])
    proc = subprocess.Popen([sys.executable, "-m", "stream_monitor.cli", "run", "-c", str(cfg_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    try:
        deadline, processed = time.monotonic() + 60, 0.0
        while time.monotonic() < deadline and processed < n:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    for line in r.read().decode().splitlines():
                        if line.startswith("stream_monitor_events_processed_total{"):
                            processed = float(line.rsplit(" ", 1)[1])
            except OSError:
                pass
            time.sleep(0.2)
        assert processed == n
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"SIGTERM" in err
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    try:
        [tp] = c.committed([TopicPartition(preds, 0)], timeout=10)
    finally:
        c.close()
    assert tp.offset == n


def test_reference_build_from_csv_and_diff_of_two_profiles(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import csv

    import numpy as np

    rng = np.random.default_rng(0)
    paths = []
    for i, shift in enumerate((0.0, 1.0)):
        p = tmp_path / f"rows{i}.csv"
        with p.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["income", "channel"])
            for _ in range(5000):
                w.writerow([rng.normal(50_000 + shift * 15_000, 15_000), rng.choice(["web", "mobile"])])
        paths.append(p)
    cfg = monitor_config()
    cfg["models"][0]["features"] = [{"name": "income"}, {"name": "channel", "kind": "categorical"}]
    cfg["models"][0]["monitor_prediction"] = False
    cfg_path = tmp_path / "monitor.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    outs = []
    for i, p in enumerate(paths):
        out = tmp_path / f"ref{i}.json"
        assert main(["reference", "build", "-c", str(cfg_path), "--input", str(p), "-o", str(out)]) == 0
        profile = ReferenceProfile.load(out)
        assert profile.row_count == 5000 and set(profile.features) == {"income", "channel"}
        outs.append(out)
    capsys.readouterr()
    assert main(["reference", "diff", str(outs[0]), str(outs[1])]) == 0
    diff = json.loads(capsys.readouterr().out)
    text = json.dumps(diff)
    assert "income" in text and "channel" in text


def test_calibrate_writes_a_reviewable_config_that_loads(tmp_path: Path) -> None:
    ref_events = tmp_path / "ref.jsonl"
    assert main(["simulate", "--output", str(ref_events), "--rate", "100", "--duration", "120", "--seed", "4"]) == 0
    cfg = monitor_config()
    cfg_path = tmp_path / "monitor.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    profile = tmp_path / "reference.json"
    assert main(["reference", "build", "-c", str(cfg_path), "--input", str(ref_events), "-o", str(profile)]) == 0
    out = tmp_path / "calibrated.yaml"
    assert main(["calibrate", "-c", str(cfg_path), "--reference", str(profile), "--draws", "60",
                 "--target-rate", "0.01", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Calibrated by `stream-monitor calibrate`")
    calibrated = yaml.safe_load(text)
    rules = {r["id"]: r for r in calibrated["models"][0]["rules"]}
    assert rules["psi"]["fdr"] == 0.01
    per_feature = rules["psi"]["calibration"]["per_feature"]
    assert per_feature["income"]["thresholds"]["warning"] < per_feature["income"]["thresholds"]["critical"]
    assert rules["psi"]["calibration"]["window_events"] == 1000  # 100 events/s x 10 s windows
    calibrated["models"][0]["reference"] = {"path": str(profile)}
    out.write_text(yaml.safe_dump(calibrated))
    assert main(["check-config", "-c", str(out)]) == 0

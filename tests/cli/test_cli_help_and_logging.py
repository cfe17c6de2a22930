"""CLI polish: examples under every --help, exit codes, JSON logs, progress lines (driven by a fake clock)."""
from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import drifted_stream, monitor_config, write_jsonl

from stream_monitor import cli
from stream_monitor.cli import build_parser, main
from stream_monitor.cli_support import EXAMPLES, JsonFormatter, Progress, subcommands

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_has_examples_in_its_help():
    parser = build_parser()
    commands = subcommands(parser)
    assert {"run", "demo", "replay", "report", "simulate", "reference build", "calibrate", "schemas export",
            "check-config"} <= set(commands)
    for path, sub in commands.items():
        text = sub.format_help()
        assert "examples:" in text, f"`stream-monitor {path} --help` has no examples"
        runnable = [line.strip() for line in text.splitlines() if line.strip().startswith("stream-monitor ")]
        assert any(line.startswith(f"stream-monitor {path}") for line in runnable), path
    top = parser.format_help()
    assert "exit codes:" in top and "130" in top
    assert set(EXAMPLES) - {""} <= set(commands), "examples for a command that does not exist"


def test_common_options_are_accepted_before_and_after_the_command():
    parser = build_parser()
    after = parser.parse_args(["check-config", "-c", "x.yaml", "--log-format", "json", "--no-progress"])
    before = parser.parse_args(["--log-format", "json", "--progress-seconds", "2", "check-config", "-c", "x.yaml"])
    default = parser.parse_args(["check-config", "-c", "x.yaml"])
    assert (after.log_format, after.no_progress) == ("json", True)
    assert (before.log_format, before.progress_seconds) == ("json", 2.0)
    assert (default.log_format, default.no_progress, default.progress_seconds) == ("text", False, 5.0)


def test_exit_codes(tmp_path, capsys, monkeypatch):
    assert main(["check-config", "-c", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: cannot read configuration file" in capsys.readouterr().err
    cfg = tmp_path / "m.yaml"
    cfg.write_text(yaml.safe_dump(monitor_config()))
    assert main(["replay", "-c", str(cfg), "--input", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: No such file or directory; check the path" in capsys.readouterr().err
    bad = monitor_config()
    bad["models"][0]["window"]["size_seconds"] = 0
    cfg.write_text(yaml.safe_dump(bad))
    assert main(["check-config", "-c", str(cfg)]) == 2
    assert "models.0.window.size_seconds" in capsys.readouterr().err

    def boom(_args: object) -> int:
        raise RuntimeError("kaput")

    monkeypatch.setattr(cli, "cmd_check_config", boom)
    assert main(["check-config", "-c", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "unexpected error RuntimeError: kaput" in err and "--log-level DEBUG" in err

    def interrupted(_args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_check_config", interrupted)
    assert main(["check-config", "-c", str(cfg)]) == 130
    with pytest.raises(SystemExit) as usage:
        main(["replay", "-c", str(cfg)])  # --input missing: argparse's usage error
    assert usage.value.code == 2


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_lines_every_interval_with_rate_and_share():
    clock, out = FakeClock(), io.StringIO()
    p = Progress("replay", total=10_000, every=5.0, stream=out, clock=clock)
    for _ in range(4):  # 4 s: no line yet
        clock.t += 1
        p.add(1000)
    assert out.getvalue() == ""
    clock.t += 1
    p.add(1000)
    clock.t += 5
    p.add(2000)
    p.done()
    lines = out.getvalue().splitlines()
    assert lines[0] == "replay: 5,000 events, 1,000/s, 50% of 10,000, ~5s left (elapsed 5.0s)"
    assert lines[1] == "replay: 7,000 events, 400/s, 70% of 10,000, ~8s left (elapsed 10.0s)"
    assert lines[2] == "replay: 7,000 events, 700/s, 70% of 10,000 (done in 10.0s)"


def test_progress_json_and_disabled():
    clock, out = FakeClock(), io.StringIO()
    p = Progress("calibrate", "bootstrap windows", every=1.0, fmt="json", stream=out, clock=clock)
    clock.t += 2
    p.add(400)
    record = json.loads(out.getvalue())
    assert record["logger"] == "stream_monitor.progress" and record["count"] == 400
    assert record["rate_per_s"] == 200.0 and record["unit"] == "bootstrap windows" and record["done"] is False
    quiet = io.StringIO()
    q = Progress("replay", enabled=False, stream=quiet, clock=clock)
    clock.t += 100
    q.add(5)
    q.done()
    assert quiet.getvalue() == ""


def test_json_formatter_has_the_fields_and_extras():
    record = logging.LogRecord("stream_monitor.sources.kafka", logging.WARNING, "f.py", 1, "lag %d on %s", (7, "t[0]"),
                               None)
    record.partition = 3
    body = json.loads(JsonFormatter().format(record))
    assert body["level"] == "WARNING" and body["logger"] == "stream_monitor.sources.kafka"
    assert body["message"] == "lag 7 on t[0]" and body["partition"] == 3 and body["ts"].endswith("+00:00")
    try:
        raise ValueError("x")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert "ValueError: x" in json.loads(JsonFormatter().format(record))["exception"]


def test_log_format_json_makes_every_stderr_line_json(tmp_path):
    events, cfg = tmp_path / "e.jsonl", tmp_path / "m.yaml"
    write_jsonl(events, drifted_stream().messages[:3000])
    cfg.write_text(yaml.safe_dump(monitor_config()))
    proc = subprocess.run([sys.executable, "-m", "stream_monitor.cli", "replay", "-c", str(cfg), "--input",
                           str(events), "--alerts-out", str(tmp_path / "a.jsonl"), "--log-format", "json",
                           "--log-level", "INFO", "--progress-seconds", "0"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert records, "something was logged"
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["logger"] == "stream_monitor.progress" and r["done"] for r in records)
    assert any(r["message"].startswith("replayed ") for r in records)

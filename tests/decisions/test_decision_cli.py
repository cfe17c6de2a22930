"""`stream-monitor decisions` over an audit log: the table, filters, JSON lines; the audit sink appends."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from decision_helpers import config, drift_alert, fresh, report

from stream_monitor.cli import main
from stream_monitor.contracts.decisions import DecisionEvent
from stream_monitor.decisions.engine import DecisionEngine
from stream_monitor.sinks.decisions import JsonlDecisionSink, read_audit_log


def some_decisions() -> list[DecisionEvent]:
    engine = DecisionEngine(config({"triggers": [{"id": "drift", "on": "drift", "windows": 1}],
                                    "min_interval_seconds": 3600, "gates": {"max_violation_rate": None}}))
    model = next(iter(engine.models.values()))
    out: list[DecisionEvent] = []
    for i in range(3):
        r = report(i, psi={"income": 0.5}, performance=fresh(age=10.0 if i != 0 else 9e6))
        out += engine.evaluate(model, r, [drift_alert(r)] if i == 0 else [], r.window_end)
    return out


def test_audit_log_appends_and_the_command_prints_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    decisions = some_decisions()
    assert [d.type for d in decisions] == ["blocked", "retrain", "hold"]
    path = tmp_path / "audit.jsonl"
    first = JsonlDecisionSink(path)
    first.publish(decisions[0])
    first.publish(decisions[0])  # the same id twice in one process: written once
    first.close()
    second = JsonlDecisionSink(path)  # a restart appends, never truncates
    for d in decisions[1:]:
        second.publish(d)
    second.close()
    assert [d.decision_id for d in read_audit_log(path)] == [d.decision_id for d in decisions]

    assert main(["decisions", "--audit-log", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["decided_at", "model", "type"] and set(lines[1]) <= {"-", " "}
    assert [line.split()[3] for line in lines[2:]] == ["blocked", "retrain", "hold"]
    assert "blocked by" in lines[2] and decisions[1].decision_id[:12] in lines[3]

    assert main(["decisions", "--audit-log", str(path), "--type", "retrain", "--json"]) == 0
    (only,) = capsys.readouterr().out.splitlines()
    assert json.loads(only)["decision_id"] == decisions[1].decision_id

    assert main(["decisions", "--audit-log", str(path), "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_the_command_explains_what_it_needs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decisions"]) == 2
    assert "--audit-log" in capsys.readouterr().err
    assert main(["decisions", "--audit-log", str(tmp_path / "missing.jsonl")]) == 2

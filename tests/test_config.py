"""Configuration: errors name the field and what is allowed; environment overrides; secrets stay secret."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import monitor_config

from stream_monitor.cli import main
from stream_monitor.config import config_from_dict, load_config
from stream_monitor.errors import ConfigError


def write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "monitor.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_error_names_the_field_path_and_the_allowed_values(tmp_path: Path) -> None:
    cfg = monitor_config()
    cfg["models"][0]["window"]["size_seconds"] = -5
    cfg["models"][0]["features"][0]["kind"] = "numerc"
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, cfg))
    msg = str(err.value)
    assert "models.0.window.size_seconds" in msg and "greater than 0" in msg
    assert "models.0.features.0.kind" in msg and "'numeric'" in msg and "'categorical'" in msg


def test_unknown_field_and_unknown_metric_are_named(tmp_path: Path) -> None:
    cfg = monitor_config()
    cfg["servce"] = {}
    cfg["models"][0]["rules"] = [{"id": "r", "metric": "psy", "thresholds": {"warning": 0.1}}]
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, cfg))
    msg = str(err.value)
    assert "servce: unknown field" in msg
    assert "models.0.rules.0.metric" in msg and "allowed:" in msg and "psi" in msg


def test_check_config_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, monitor_config())
    assert main(["check-config", "-c", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [{model_id: m}]\n")
    assert main(["check-config", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "models.0" in err and "declare `features`" in err
    assert main(["check-config", "-c", str(tmp_path / "missing.yaml")]) == 2


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_MONITOR_KAFKA__BOOTSTRAP_SERVERS", "kafka.prod:9093")
    monkeypatch.setenv("STREAM_MONITOR_SERVICE__METRICS_PORT", "9999")
    cfg = load_config(write(tmp_path, monitor_config(kafka={"bootstrap_servers": "localhost:9092"})))
    assert cfg.kafka.bootstrap_servers == "kafka.prod:9093"
    assert cfg.service.metrics_port == 9999


def test_librdkafka_settings_pass_through_and_secrets_are_hidden() -> None:
    cfg = config_from_dict(monitor_config(kafka={
        "bootstrap_servers": "b:9092", "security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
        "sasl_username": "svc", "sasl_password": "hunter2", "settings": {"client.id": "m-1", "socket.timeout.ms": 5000},
    }))
    conf = cfg.kafka.librdkafka()
    assert conf["sasl.password"] == "hunter2" and conf["client.id"] == "m-1" and conf["socket.timeout.ms"] == 5000
    assert conf["security.protocol"] == "SASL_SSL"
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())

"""A real Prometheus server scrapes a running stream-monitor and evaluates the shipped alert rules.

Debian's ``prometheus`` package provides the server (CI's ``.ci/run`` installs it). The
monitor runs in-process on the embedded broker; the simulator's stream is produced in
two phases:

1. the reference windows and undrifted windows only: Prometheus scrapes
   ``stream_monitor_drift`` with the right labels and a small PSI, and after a rule
   evaluation that saw it, the drift alert is *not* firing;
2. the drifted rest: the PSI of the shifted features jumps and
   ``StreamMonitorFeatureDrift`` (severity critical) goes to *firing* for ``income``.

The rules are the repository's own files, copied with every ``for:`` shortened to 2s
(the shipped 10m/15m would make the test wait for ten minutes); nothing else changes.
The service's status page at ``/`` is checked on the same running service.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import DRIFT_AFTER, DRIFTED, START, drifted_stream, monitor_config
from prometheus_client import CollectorRegistry

from stream_monitor.config import config_from_dict
from stream_monitor.service import MonitorService
from stream_monitor.testing import produce_all, unique_name

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
JOB = "stream-monitor"  # the alert rules select this job name
DRIFT_ALERT = "StreamMonitorFeatureDrift"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, detail: Callable[[], str] = lambda: ""
             ) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:  # server not up yet
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}. {detail()}")


def shortened_rules(target: Path) -> list[Path]:
    """The shipped rule files with `for:` durations set to 2s (written to `target`)."""
    out = []
    for src in sorted(RULES_DIR.glob("*.yml")):
        text = re.sub(r"(?m)^(\s*for:\s*)\S+\s*$", r"\g<1>2s", src.read_text())
        dst = target / src.name
        dst.write_text(text)
        out.append(dst)
    return out


class Prometheus:
    """A Prometheus server subprocess with its own config, data dir and port."""

    def __init__(self, tmp: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("the `prometheus` server is not on PATH: install Debian's package "
                        "(`apt-get install -y prometheus`; .ci/run does this)")
        rules = shortened_rules(tmp)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(p) for p in rules],
            "scrape_configs": [{"job_name": JOB, "metrics_path": "/metrics",
                                "static_configs": [{"targets": [target]}]}],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.log_path = tmp / "prometheus.log"

    def tail(self) -> str:
        return "prometheus log tail:\n" + "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}. {self.tail()}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
            return resp.status == 200

    def query(self, promql: str) -> list[dict[str, Any]]:
        body = get_json(f"{self.url}/api/v1/query?query={urllib.parse.quote(promql)}")
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(get_json(f"{self.url}/api/v1/alerts")["data"]["alerts"])

    def last_evaluation(self, group: str) -> datetime | None:
        for g in get_json(f"{self.url}/api/v1/rules")["data"]["groups"]:
            if g["name"] == group and g.get("lastEvaluation", "").startswith("2"):
                stamp = re.sub(r"(\.\d{6})\d+", r"\1", g["lastEvaluation"]).replace("Z", "+00:00")
                return datetime.fromisoformat(stamp)
        return None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture
def service(kafka_bootstrap: str, topic_factory: Callable[..., str]) -> Iterator[tuple[MonitorService, str]]:
    preds = topic_factory("preds", 1)
    settings = monitor_config(
        kafka={"bootstrap_servers": kafka_bootstrap, "group_id": unique_name("monitor")},
        topics={"predictions": preds, "alerts": topic_factory("alerts"), "dead_letter": topic_factory("dlq")},
    )
    svc = MonitorService(config_from_dict(settings), registry=CollectorRegistry())
    svc.serve_metrics()
    stop = threading.Event()
    runner = threading.Thread(target=svc.run, args=(stop,), daemon=True)
    runner.start()
    try:
        yield svc, preds
    finally:
        stop.set()
        runner.join(30)


def first_at_or_after(messages: list[tuple[bytes, bytes]], epoch_seconds: float) -> int:
    """Index of the first valid event at or after `epoch_seconds` (the stream is in event-time order)."""
    for i, (_key, value) in enumerate(messages):
        try:
            stamp = datetime.fromisoformat(json.loads(value)["timestamp"].replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # one of the malformed records
        if stamp.timestamp() >= epoch_seconds:
            return i
    raise AssertionError("the stream has no event after the drift point")


def _drift_firing(prom: Prometheus, feature: str) -> list[dict[str, Any]]:
    return [a for a in prom.alerts() if a["labels"].get("alertname") == DRIFT_ALERT
            and a["labels"].get("feature") == feature and a["state"] == "firing"]


def test_prometheus_scrapes_drift_series_and_fires_the_drift_alert(service, kafka_bootstrap, tmp_path):
    svc, topic = service
    stream = drifted_stream()
    split = first_at_or_after(stream.messages, START.timestamp() + DRIFT_AFTER)
    prom = Prometheus(tmp_path, f"127.0.0.1:{svc.metrics_port}")
    try:
        wait_for(prom.ready, 60, "prometheus ready", prom.tail)

        # Phase 1: no drift yet. The series arrives with its labels and a small PSI; the rule does not fire.
        produce_all(kafka_bootstrap, topic, stream.messages[:split])
        income = '{feature="income",statistic="psi"}'
        series = wait_for(lambda: prom.query(f"stream_monitor_drift{income}"), 90,
                          "stream_monitor_drift{income, psi} in Prometheus", prom.tail)
        seen_at = datetime.now(UTC)
        assert len(series) == 1
        labels = series[0]["metric"]
        assert labels == {"__name__": "stream_monitor_drift", "model_id": "credit-risk", "model_version": "v1",
                          "feature": "income", "statistic": "psi", "job": JOB,
                          "instance": f"127.0.0.1:{svc.metrics_port}"}
        assert float(series[0]["value"][1]) < 0.1, "income before the drift: PSI under the warning threshold"
        wait_for(lambda: (t := prom.last_evaluation("stream-monitor-drift")) is not None and
                 (t - seen_at).total_seconds() > 2, 30, "a drift-rule evaluation after the series was seen")
        assert not _drift_firing(prom, "income"), "no drift alert before the drift"
        statistics = {s["metric"]["statistic"] for s in prom.query('stream_monitor_drift{feature="income"}')}
        assert {"psi", "ks_statistic", "wasserstein", "mean_shift", "missing_rate"} <= statistics

        # The status page on the same port, for people.
        with urllib.request.urlopen(f"http://127.0.0.1:{svc.metrics_port}/", timeout=5) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
            page = resp.read().decode()
        reference = svc.engine.models["credit-risk"].reference
        assert reference is not None and reference.profile_id in page and 'data-model="credit-risk"' in page

        # Phase 2: the drifted rest of the stream. PSI jumps; the critical drift alert goes to firing.
        produce_all(kafka_bootstrap, topic, stream.messages[split:])
        firing = wait_for(lambda: _drift_firing(prom, "income"), 120, f"{DRIFT_ALERT} firing for income",
                          lambda: f"alerts: {prom.alerts()}")
        alert = next(a for a in firing if a["labels"]["severity"] == "critical")
        assert alert["labels"]["model_id"] == "credit-risk" and alert["labels"]["job"] == JOB
        assert float(alert["value"]) > 0.25
        assert alert["annotations"]["runbook_url"].endswith("#streammonitorfeaturedrift")
        psi = {s["metric"]["feature"]: float(s["value"][1])
               for s in prom.query('stream_monitor_drift{statistic="psi"}')}
        assert all(psi[f] > 0.25 for f in DRIFTED), psi
        alerting = {a["labels"]["feature"] for a in prom.alerts()
                    if a["labels"].get("alertname") == DRIFT_ALERT and a["labels"]["severity"] == "critical"}
        assert "income" in alerting and alerting <= DRIFTED, "only the shifted features alert"
    finally:
        prom.stop()

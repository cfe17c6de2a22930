"""Deployment assets: compose stack, monitor config, Prometheus rules and their tests, Grafana dashboard.

What is checked without a Docker engine:

- ``compose.yaml`` parses, has the expected services, and every file it mounts exists; the
  paths the containers are told to read (Prometheus config, Grafana provisioning, monitor config)
  resolve through the bind mounts to files of this repository.
- Every metric name in a PromQL expression of the dashboard and of the rule files is one the
  service exports (taken from a live ``MonitorMetrics`` registry, not by parsing metrics.py), a
  recording rule defined here, or a series Prometheus itself creates (``up``, ``ALERTS``). Label
  names in selectors and groupings are checked against the labels the service really emits after
  a short simulated run through the real pipeline.
- ``promtool check rules``, ``promtool test rules`` and ``promtool check config`` pass. promtool is
  required: install Debian's ``prometheus`` package (``apt-get install -y prometheus``).
- ``deploy/monitor.yaml`` validates with ``load_config`` and matches the simulator's model.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from stream_monitor.config import MonitorConfig, config_from_dict, load_config
from stream_monitor.engine import Engine
from stream_monitor.simulate import TrafficSimulator, demo_model_config, utc_now
from stream_monitor.sinks.base import ConsoleAlertSink, RawRecord
from stream_monitor.sinks.files import CountingDeadLetterSink
from stream_monitor.sinks.metrics import EXPORTED_STATS, MonitorMetrics
from stream_monitor.sources.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
MONITOR_CONFIG = ROOT / "deploy" / "monitor.yaml"
PROM_DIR = ROOT / "deploy" / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
RULES_DIR = PROM_DIR / "rules"
ALERT_RULES = RULES_DIR / "stream-monitor-alerts.yml"
RECORDING_RULES = RULES_DIR / "stream-monitor-recording.yml"
RULE_TESTS_DIR = PROM_DIR / "tests"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "stream-monitor.json"
RUNBOOKS = ROOT / "docs" / "runbooks.md"

REQUIRED_SERVICES = {"kafka", "stream-monitor", "simulator", "prometheus", "alertmanager", "grafana"}
#: Series Prometheus creates itself; rules and dashboards may use them.
PROMETHEUS_BUILTIN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
#: Labels added by Prometheus (target labels, histogram buckets, ALERTS series).
PROMETHEUS_LABELS = {"job", "instance", "le", "alertname", "alertstate", "severity"}
SEVERITIES = {"info", "warning", "critical"}


# -- PromQL helpers (enough of the grammar for names and labels; not a parser) -----------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+")
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", re.IGNORECASE)
_OFFSET = re.compile(r"\boffset\s+-?\w+", re.IGNORECASE)
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
             "offset", "inf", "nan"}
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")')


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (functions, keywords, labels and literals removed)."""
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VAR.sub("1", text)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}


@dataclass(frozen=True)
class Matcher:
    metric: str | None
    label: str
    op: str
    value: str


def matchers(expr: str) -> list[Matcher]:
    """Label matchers of every selector, with the metric they belong to (None for `{...}` alone)."""
    out = []
    for sel in _SELECTOR.finditer(expr):
        for label, op, raw in _MATCHER.findall(sel.group(2)):
            out.append(Matcher(sel.group(1), label, op, json.loads(raw)))
    return out


def grouping_labels(expr: str) -> set[str]:
    text = _STRING.sub('""', expr)
    labels: set[str] = set()
    for group in _GROUPING.findall(text):
        labels.update(part.strip() for part in group.split(",") if part.strip())
    return labels


def test_promql_helpers_understand_the_constructs_we_use() -> None:
    expr = ('sum by (job, model_id) (rate(foo_total{a="b", c=~"x\\\\..*"}[5m])) / ignoring(reason) bar '
            '> 0.5 and on (job) baz offset 5m or time() - max(qux{model_id=~"$model"}[$__rate_interval]) > 1e3')
    assert metric_names(expr) == {"foo_total", "bar", "baz", "qux"}
    assert grouping_labels(expr) == {"job", "model_id", "reason"}
    assert Matcher("foo_total", "c", "=~", "x\\..*") in matchers(expr)
    assert metric_names('histogram_quantile(0.95, sum by (le) (rate(h_bucket[$__rate_interval])))') == {"h_bucket"}
    assert metric_names('absent(up{job="x"}) or ALERTS{alertstate="firing"}') == {"up", "ALERTS"}


# -- what the service exports ---------------------------------------------------------------------


@dataclass
class Exported:
    names: set[str]
    labels: dict[str, set[str]] = field(default_factory=dict)
    values: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))


@pytest.fixture(scope="module")
def exported() -> Exported:
    """Exported series names (from the registry) and the labels seen after a short simulated run."""
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    engine = Engine(config_from_dict({"models": [demo_model_config(window_seconds=5.0, reference_windows=2)]}))
    metrics.attach(engine)

    names: set[str] = set()
    for family in registry.collect():  # DriftCollector yields its (empty) families at collect time
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                    "summary": ("", "_sum", "_count", "_created")}.get(family.type, ("",))
        names.update(family.name + s for s in suffixes)
        names.update(s.name for s in family.samples)
    assert {"stream_monitor_drift", "stream_monitor_events_processed_total"} <= names

    # Drive the real pipeline so every labelled series exists: reference windows, drifted windows
    # (drift gauges, alerts), malformed messages (rejections) and a late event.
    start = utc_now() - timedelta(seconds=60)
    sim = TrafficSimulator(seed=11, drift_at=start + timedelta(seconds=12), bad_rate=0.05)
    pipeline = Pipeline(engine, metrics, ConsoleAlertSink(lambda _line: None), CountingDeadLetterSink())
    batch: list[RawRecord] = []
    for offset, (key, value, _bad) in enumerate(sim.messages(start, 5000, 200.0)):
        batch.append(RawRecord(value=value, key=key, topic="predictions", partition=0, offset=offset))
        if len(batch) == 500:
            pipeline.handle(batch)
            batch = []
    late_key, late_value, _ = TrafficSimulator(seed=12).message(start)
    pipeline.handle([*batch, RawRecord(value=late_value, key=late_key, topic="predictions", partition=0,
                                       offset=5000)])
    pipeline.finish()
    metrics.consumer_lag.labels("predictions", "0").set(0)  # set by the Kafka source only
    metrics.up.set(1)

    result = Exported(names=names)
    for family in registry.collect():
        for sample in family.samples:
            result.labels.setdefault(sample.name, set()).update(sample.labels)
            for label, label_value in sample.labels.items():
                result.values[(sample.name, label)].add(label_value)
    return result


# -- loading the assets ---------------------------------------------------------------------------


def _yaml(path: Path) -> Any:
    with path.open() as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _yaml(COMPOSE)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def rule_groups() -> dict[Path, list[dict[str, Any]]]:
    return {path: _yaml(path)["groups"] for path in sorted(RULES_DIR.glob("*.yml"))}


@pytest.fixture(scope="module")
def alert_rules(rule_groups: dict[Path, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rules = [r for groups in rule_groups.values() for g in groups for r in g["rules"] if "alert" in r]
    assert rules, "no alerting rules found"
    return rules


@pytest.fixture(scope="module")
def recording_names(rule_groups: dict[Path, list[dict[str, Any]]]) -> set[str]:
    return {r["record"] for groups in rule_groups.values() for g in groups for r in g["rules"] if "record" in r}


@pytest.fixture
def monitor_config(monkeypatch: pytest.MonkeyPatch) -> MonitorConfig:
    for name in list(os.environ):
        if name.upper().startswith("STREAM_MONITOR_"):
            monkeypatch.delenv(name)  # the file itself is under test, not this shell's overrides
    return load_config(MONITOR_CONFIG)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows nest their panels


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    exprs = []
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            exprs.append((f"panel {panel['title']!r} target {target.get('refId')}", target.get("expr", "")))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query)
        assert m, f"variable {var['name']}: expected label_values(selector, label), got {query!r}"
        exprs.append((f"variable {var['name']}", m.group(1)))
    return exprs


def _rule_exprs(rule_groups: dict[Path, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    return [(f"{path.name}: {r.get('alert') or r.get('record')}", r["expr"])
            for path, groups in rule_groups.items() for g in groups for r in g["rules"]]


def _container_to_host(service: dict[str, Any], container_path: str) -> Path | None:
    """Map a path inside a container to the repository file behind its bind mount, if any."""
    target = PurePosixPath(container_path)
    for volume in service.get("volumes", []):
        source, _, rest = volume.partition(":")
        mount = PurePosixPath(rest.split(":")[0])
        if not source.startswith("."):
            continue
        if target == mount or mount in target.parents:
            return ROOT / source / target.relative_to(mount)
    return None


# -- (a) compose ---------------------------------------------------------------------------------


def test_compose_has_the_stack_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= REQUIRED_SERVICES, f"missing services: {REQUIRED_SERVICES - set(services)}"
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"{name}: neither image nor build"
        deps = svc.get("depends_on", {})
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on unknown service {dep}"
        for key, value in (svc.get("environment") or {}).items():
            assert isinstance(value, str | int | float | bool), f"{name}: environment {key} must be a scalar"


def test_compose_bind_mounts_exist(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: mounted {source} does not exist"
            else:
                assert source in named, f"{name}: named volume {source} is not declared"
        build = svc.get("build")
        if build:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (context / dockerfile).is_file(), f"{name}: no {dockerfile} in {context}"


def test_compose_monitor_service(compose: dict[str, Any], monitor_config: MonitorConfig) -> None:
    svc = compose["services"]["stream-monitor"]
    port = monitor_config.service.metrics_port
    assert f"{port}:{port}" in [str(p) for p in svc["ports"]]
    command = svc["command"]
    assert command[0] == "run" and command[1] in ("-c", "--config"), command
    assert _container_to_host(svc, command[2]) == MONITOR_CONFIG, "run -c must read the mounted deploy/monitor.yaml"
    assert svc["build"]["context"] == "."


def test_compose_kafka_kraft_listeners(compose: dict[str, Any]) -> None:
    svc = compose["services"]["kafka"]
    image, _, tag = svc["image"].partition(":")
    assert image == "apache/kafka"
    assert tuple(int(x) for x in tag.split(".")[:2]) >= (3, 9), tag
    env = svc["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "://kafka:9092" in advertised and "://localhost:9092" in advertised
    host_listener = re.search(r"(\w+)://localhost:9092", advertised).group(1)  # type: ignore[union-attr]
    container_port = re.search(host_listener + r"://[^:,]*:(\d+)", env["KAFKA_LISTENERS"]).group(1)  # type: ignore[union-attr]
    assert f"9092:{container_port}" in [str(p) for p in svc["ports"]], "host port 9092 -> the host listener"


def test_compose_topics_and_simulator(compose: dict[str, Any], monitor_config: MonitorConfig) -> None:
    services = compose["services"]
    init = services["kafka-init"]
    script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    topics = monitor_config.topics
    for topic in (topics.predictions, topics.alerts, topics.dead_letter):
        assert re.search(rf"(?<![\w.-]){re.escape(topic)}:\d", script), f"kafka-init does not create {topic}"
    assert services["stream-monitor"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    sim = services["simulator"]
    assert sim["image"] == services["stream-monitor"]["image"]
    sim_script = "\n".join(sim["command"]) if isinstance(sim["command"], list) else sim["command"]
    assert "stream-monitor simulate" in sim_script and "--bootstrap-servers" in sim_script
    assert "--start" not in sim_script, "event times must be 'now'"
    assert sim["environment"]["BOOTSTRAP"] == monitor_config.kafka.bootstrap_servers
    assert f"--topic {topics.predictions}" in sim_script


def test_compose_prometheus_alertmanager_grafana_wiring(compose: dict[str, Any],
                                                        monitor_config: MonitorConfig) -> None:
    services = compose["services"]
    prom = services["prometheus"]
    config_flag = next(a for a in prom["command"] if a.startswith("--config.file="))
    assert _container_to_host(prom, config_flag.split("=", 1)[1]) == PROM_CONFIG
    am = services["alertmanager"]
    am_flag = next(a for a in am["command"] if a.startswith("--config.file="))
    assert _container_to_host(am, am_flag.split("=", 1)[1]) == ALERTMANAGER_CONFIG
    assert _yaml(ALERTMANAGER_CONFIG)["route"]["receiver"]

    prom_config = _yaml(PROM_CONFIG)
    jobs = {j["job_name"]: j for j in prom_config["scrape_configs"]}
    targets = [t for sc in jobs["stream-monitor"]["static_configs"] for t in sc["targets"]]
    assert f"stream-monitor:{monitor_config.service.metrics_port}" in targets
    am_targets = [t for a in prom_config["alerting"]["alertmanagers"] for sc in a["static_configs"]
                  for t in sc["targets"]]
    assert am_targets and all(t.split(":")[0] in services for t in am_targets)
    rule_globs = prom_config["rule_files"]
    loaded = {p for g in rule_globs for p in PROM_CONFIG.parent.glob(g)}
    assert {ALERT_RULES, RECORDING_RULES} <= loaded

    grafana = services["grafana"]
    provisioning = _container_to_host(grafana, "/etc/grafana/provisioning/datasources/prometheus.yml")
    assert provisioning is not None and provisioning.is_file()
    datasource = _yaml(provisioning)["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    providers = _container_to_host(grafana, "/etc/grafana/provisioning/dashboards/dashboards.yml")
    assert providers is not None and providers.is_file()
    dash_dir = _container_to_host(grafana, _yaml(providers)["providers"][0]["options"]["path"])
    assert dash_dir is not None and (dash_dir / DASHBOARD.name).is_file()
    dashboard = json.loads(DASHBOARD.read_text())
    ds_var = next(v for v in dashboard["templating"]["list"] if v["type"] == "datasource")
    assert ds_var["current"]["value"] == datasource["uid"]


def test_compose_config_with_docker_client_if_available() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker client has no compose plugin; the YAML checks above still ran")
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["stream-monitor"\]', text, re.MULTILINE)
    assert re.search(r"^EXPOSE 9308\b", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"


# -- (b) dashboard and rules use only exported metrics --------------------------------------------


def test_dashboard_panels_have_targets(dashboard: dict[str, Any]) -> None:
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    assert len(panels) >= 10
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        targets = panel.get("targets") or []
        assert targets, f"panel {panel['title']!r} has no targets"
        for target in targets:
            assert target.get("expr", "").strip(), f"panel {panel['title']!r}: empty expr"
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "model"} <= names
    all_exprs = " ".join(e for _, e in _dashboard_exprs(dashboard))
    for required in ('stream_monitor_drift{model_id=~"$model", statistic="psi"}', "topk(",
                     "stream_monitor_events_rejected_total", "stream_monitor_alerts_total",
                     "stream_monitor_consumer_lag", "stream_monitor_event_time_lag_seconds",
                     "histogram_quantile(0.95", "stream_monitor_window_events", "stream_monitor_reference_info"):
        assert required in all_exprs, f"the dashboard has no panel using {required}"


def _check_exprs(exprs: list[tuple[str, str]], exported: Exported, recording: set[str]) -> None:
    known = exported.names | recording | PROMETHEUS_BUILTIN
    all_labels = set().union(*exported.labels.values()) | PROMETHEUS_LABELS
    problems = []
    for where, expr in exprs:
        names = metric_names(expr)
        if not names:
            problems.append(f"{where}: no metric name found in {expr!r}")
        for name in sorted(names - known):
            problems.append(f"{where}: {name} is not exported by the service nor a recording rule")
        for name in sorted((names & exported.names) - set(exported.labels)):
            problems.append(f"{where}: {name} had no sample after the simulated run, so its labels are "
                            "unchecked: extend the `exported` fixture to produce it")
        for m in matchers(expr):
            if m.metric in exported.labels:
                allowed = exported.labels[m.metric] | {"job", "instance"}
                if m.label not in allowed:
                    problems.append(f"{where}: {m.metric} has no label {m.label!r} (has {sorted(allowed)})")
            if m.metric == "stream_monitor_drift" and m.label == "statistic" and m.op == "=" \
                    and m.value not in EXPORTED_STATS:
                problems.append(f"{where}: statistic {m.value!r} is not exported ({EXPORTED_STATS})")
            if m.metric == "stream_monitor_drift" and m.label == "feature" and m.op in ("=~", "!~"):
                seen = exported.values[("stream_monitor_drift", "feature")]
                if not any(re.fullmatch(m.value, f) for f in seen):
                    problems.append(f"{where}: feature regex {m.value!r} matches none of {sorted(seen)}")
        for label in sorted(grouping_labels(expr) - all_labels):
            problems.append(f"{where}: grouping label {label!r} is not emitted by any metric")
    assert not problems, "\n".join(problems)


def test_dashboard_uses_exported_metrics(dashboard: dict[str, Any], exported: Exported,
                                         recording_names: set[str]) -> None:
    _check_exprs(_dashboard_exprs(dashboard), exported, recording_names)


def test_rules_use_exported_metrics(rule_groups: dict[Path, list[dict[str, Any]]], exported: Exported,
                                    recording_names: set[str]) -> None:
    assert {ALERT_RULES, RECORDING_RULES} <= set(rule_groups)
    _check_exprs(_rule_exprs(rule_groups), exported, recording_names)


def _runbook_anchors() -> dict[str, str]:
    """## headings of docs/runbooks.md -> their GitHub anchor."""
    headings = re.findall(r"^## (.+?)\s*$", RUNBOOKS.read_text(), re.MULTILINE)
    return {h: re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_alerts_have_severity_annotations_and_runbook(alert_rules: list[dict[str, Any]]) -> None:
    anchors = _runbook_anchors()
    for rule in alert_rules:
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity label"
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key, "").strip(), f"{name}: missing annotation {key}"
        assert name in anchors, f"{name}: no '## {name}' section in docs/runbooks.md"
        assert annotations["runbook_url"].endswith(f"docs/runbooks.md#{anchors[name]}"), \
            f"{name}: runbook_url {annotations['runbook_url']!r} should point at #{anchors[name]}"
    assert set(anchors) == {r["alert"] for r in alert_rules}, "runbook sections without an alert"


def test_every_rule_has_promtool_cases(alert_rules: list[dict[str, Any]], recording_names: set[str]) -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    recorded: set[str] = set()
    for path in sorted(RULE_TESTS_DIR.glob("*.yml")):
        for case in _yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
            for check in case.get("promql_expr_test", []):
                recorded.update(metric_names(check["expr"]))
    names = {r["alert"] for r in alert_rules}
    assert not names - fired, f"alerts never shown firing in deploy/prometheus/tests: {sorted(names - fired)}"
    assert not names - quiet, f"alerts never shown quiet in deploy/prometheus/tests: {sorted(names - quiet)}"
    assert not recording_names - recorded, f"recording rules without a test: {sorted(recording_names - recorded)}"


# -- (c) promtool ----------------------------------------------------------------------------------


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: install Debian's `prometheus` package "
                    "(apt-get install -y prometheus), which provides promtool", pytrace=False)
    result = subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_promtool_check_rules() -> None:
    files = [str(p.relative_to(ROOT)) for p in sorted(RULES_DIR.glob("*.yml"))]
    assert files
    output = _promtool("check", "rules", *files)
    assert output.count("SUCCESS") == len(files), output


def test_promtool_test_rules() -> None:
    files = [str(p.relative_to(ROOT)) for p in sorted(RULE_TESTS_DIR.glob("*.yml"))]
    assert files
    output = _promtool("test", "rules", *files)
    assert output.count("SUCCESS") == len(files), output


def test_promtool_check_config() -> None:
    _promtool("check", "config", str(PROM_CONFIG.relative_to(ROOT)))


# -- (d) the monitor's config ----------------------------------------------------------------------


def test_monitor_config_validates_and_matches_the_simulator(monitor_config: MonitorConfig) -> None:
    cfg = monitor_config
    assert cfg.kafka.bootstrap_servers == "kafka:9092"
    assert (cfg.topics.predictions, cfg.topics.alerts, cfg.topics.dead_letter) == (
        "predictions", "monitor.alerts", "monitor.dead-letter")
    assert cfg.service.metrics_port == 9308
    model = cfg.model("credit-risk")
    assert model is not None
    expected = demo_model_config()["features"]
    assert [(f.name, f.kind) for f in model.features] == [(f["name"], f["kind"]) for f in expected]
    assert model.window.size_seconds == 30
    assert model.reference.path is None and model.reference.from_stream_windows == 2
    Engine(cfg)  # what `stream-monitor check-config` does beyond parsing

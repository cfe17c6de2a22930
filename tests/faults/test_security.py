"""Security settings reach librdkafka as configured; TLS really runs (Kafka and /metrics); verification stays on."""
from __future__ import annotations

import ssl
import threading
import urllib.request
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from faults.harness import START, wait_until
from faults.tls import BrokerBehindTls, free_port, have_openssl, make_certs
from prometheus_client import CollectorRegistry

from stream_monitor import service as service_mod
from stream_monitor.config import config_from_dict
from stream_monitor.errors import ConfigError
from stream_monitor.service import MonitorService
from stream_monitor.simulate import TrafficSimulator, demo_model_config
from stream_monitor.sources import kafka as kafka_mod
from stream_monitor.testing import unique_name

SECRET = "s3cret-pw"
MECHANISMS: dict[str, dict[str, Any]] = {
    "PLAIN": {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "monitor",
              "sasl_password": SECRET, "ssl_ca_location": "/etc/ssl/certs/ca-certificates.crt"},
    "SCRAM-SHA-256": {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                      "sasl_username": "monitor", "sasl_password": SECRET},
    "SCRAM-SHA-512": {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                      "sasl_username": "monitor", "sasl_password": SECRET},
    "OAUTHBEARER": {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER",
                    "oauthbearer_token_endpoint_url": "https://idp.example.com/oauth2/token",
                    "oauthbearer_client_id": "monitor", "oauthbearer_client_secret": SECRET,
                    "oauthbearer_scope": "kafka"},
    "mTLS": {"security_protocol": "SSL", "ssl_certificate_location": "/etc/monitor/client.pem",
             "ssl_key_location": "/etc/monitor/client.key", "ssl_key_password": SECRET},
}
EXPECTED: dict[str, dict[str, str]] = {
    "PLAIN": {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "monitor",
              "sasl.password": SECRET, "ssl.ca.location": "/etc/ssl/certs/ca-certificates.crt",
              "ssl.endpoint.identification.algorithm": "https"},
    "SCRAM-SHA-256": {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256",
                      "sasl.password": SECRET, "ssl.endpoint.identification.algorithm": "https"},
    "SCRAM-SHA-512": {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                      "sasl.username": "monitor", "sasl.password": SECRET},
    "OAUTHBEARER": {"sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc",
                    "sasl.oauthbearer.token.endpoint.url": "https://idp.example.com/oauth2/token",
                    "sasl.oauthbearer.client.id": "monitor", "sasl.oauthbearer.client.secret": SECRET,
                    "sasl.oauthbearer.scope": "kafka", "ssl.endpoint.identification.algorithm": "https"},
    "mTLS": {"security.protocol": "SSL", "ssl.certificate.location": "/etc/monitor/client.pem",
             "ssl.key.location": "/etc/monitor/client.key", "ssl.key.password": SECRET,
             "ssl.endpoint.identification.algorithm": "https"},
}


def _config(kafka: dict[str, Any], **extra: Any) -> Any:
    return config_from_dict({"kafka": {"bootstrap_servers": "localhost:1", **kafka}, **extra,
                             "models": [demo_model_config()]})


def _with_files(settings: dict[str, Any], tmp_path: Any) -> dict[str, Any]:
    """Point the file settings at real files: librdkafka opens them when the client is created."""
    files = {"/etc/ssl/certs/ca-certificates.crt": "ca", "/etc/monitor/client.pem": "cert",
             "/etc/monitor/client.key": "key"}
    if not any(v in files for v in settings.values() if isinstance(v, str)):
        return settings
    if not have_openssl():
        pytest.skip("needs the openssl command to make certificates")
    certs = make_certs(tmp_path, name="client")
    real = {"ca": str(certs.ca), "cert": str(certs.cert), "key": str(certs.key)}
    return {k: real[files[v]] if isinstance(v, str) and v in files else v for k, v in settings.items()}


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_security_settings_reach_every_client_the_service_creates(monkeypatch, tmp_path, mechanism):
    received: list[tuple[str, dict[str, Any]]] = []
    settings = _with_files(MECHANISMS[mechanism], tmp_path)
    expected = {k: v for k, v in EXPECTED[mechanism].items() if "location" not in k}
    expected.update({k.replace("_", "."): v for k, v in settings.items() if k.endswith("_location")})

    def recorder(kind: str) -> Any:
        def make(conf: dict[str, Any]) -> Any:
            received.append((kind, dict(conf)))
            return (Consumer if kind == "consumer" else Producer)(conf)  # librdkafka validates every property
        return make

    monkeypatch.setattr(kafka_mod, "Consumer", recorder("consumer"))
    monkeypatch.setattr(service_mod, "Producer", recorder("producer"))
    svc = MonitorService(_config(settings), registry=CollectorRegistry())
    try:
        assert {kind for kind, _ in received} == {"consumer", "producer"}
        for kind, conf in received:
            for key, value in expected.items():
                assert conf.get(key) == value, f"{kind}: {key}"
        store_conf = svc.store.client_conf  # type: ignore[union-attr]  # checkpoint reads use the same settings
        assert all(store_conf.get(k) == v for k, v in expected.items())
        assert SECRET not in repr(svc.config) and SECRET not in str(svc.config.kafka)
    finally:
        svc.source.consumer.close()


def test_turning_off_tls_verification_needs_an_explicit_opt_in():
    for setting in ({"ssl.endpoint.identification.algorithm": "none"},
                    {"enable.ssl.certificate.verification": False}):
        with pytest.raises(ConfigError, match="allow_insecure_tls"):
            _config({"security_protocol": "SSL", "settings": setting})
        conf = _config({"security_protocol": "SSL", "settings": setting, "allow_insecure_tls": True})
        assert conf.kafka.librdkafka()[next(iter(setting))] == next(iter(setting.values()))


def _ssl_conf(bootstrap: str, ca: str) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "security.protocol": "SSL", "ssl.ca.location": ca}


@pytest.mark.skipif(not have_openssl(), reason="needs the openssl command to make certificates")
def test_the_service_runs_over_a_real_tls_listener_with_hostname_verification(tmp_path):
    certs = make_certs(tmp_path)
    broker = BrokerBehindTls(certs)
    try:
        conf = _ssl_conf(broker.bootstrap, str(certs.ca))
        admin = AdminClient(conf)
        wait_until(lambda: _answers(admin), 30, "the broker answering over TLS")
        preds, alerts, dlq = unique_name("preds"), unique_name("alerts"), unique_name("dlq")
        for f in admin.create_topics([NewTopic(t, 1, 1) for t in (preds, alerts, dlq)]).values():
            f.result(20)
        producer = Producer(conf)
        sim = TrafficSimulator(seed=4)
        for k, v, _ in sim.messages(START, 2000, 100):
            producer.produce(preds, key=k, value=v)
        assert producer.flush(30) == 0
        cfg = config_from_dict({
            "kafka": {"bootstrap_servers": broker.bootstrap, "group_id": unique_name("tls"),
                      "security_protocol": "SSL", "ssl_ca_location": str(certs.ca)},
            "topics": {"predictions": preds, "alerts": alerts, "dead_letter": dlq},
            "service": {"metrics_host": "127.0.0.1", "metrics_port": 0, "poll_timeout_seconds": 0.2,
                        "commit_interval_seconds": 0.2},
            "checkpoint": {"topic": unique_name("ckpt")},
            "models": [demo_model_config(window_seconds=5)],
        })
        svc = MonitorService(cfg, registry=CollectorRegistry())
        stop = threading.Event()
        runner = threading.Thread(target=svc.run, args=(stop,), daemon=True)
        runner.start()
        try:
            wait_until(lambda: sum(svc.pipeline.totals.processed.values()) == 2000, 60, "2000 events over TLS")
        finally:
            stop.set()
            runner.join(30)
        assert svc.checkpointer.metrics.writes.labels("ok")._value.get() >= 1, "checkpoints written over TLS"
        assert broker.proxy.handshakes > 0

        # Same listener, certificate for another name: librdkafka refuses it (hostname verification is on).
        wrong = make_certs(tmp_path, hostname="not-this-host.example", name="wrong")
        other = BrokerBehindTls(wrong)
        try:
            with pytest.raises(KafkaException):
                AdminClient(_ssl_conf(other.bootstrap, str(wrong.ca))).list_topics(timeout=5)
        finally:
            other.stop()
    finally:
        broker.stop()


def _answers(admin: AdminClient) -> bool:
    try:
        return bool(admin.list_topics(timeout=2).brokers)
    except KafkaException:
        return False


@pytest.mark.skipif(not have_openssl(), reason="needs the openssl command to make certificates")
def test_metrics_endpoint_binds_the_chosen_address_and_serves_tls(tmp_path):
    certs = make_certs(tmp_path)
    port = free_port()
    cfg = _config({}, service={"metrics_host": "127.0.0.1", "metrics_port": port,
                               "metrics_tls_certfile": str(certs.cert), "metrics_tls_keyfile": str(certs.key)},
                  checkpoint={"backend": "none"})
    svc = MonitorService(cfg, registry=CollectorRegistry())
    try:
        assert svc.serve_metrics() == port
        assert svc._http.server_address[0] == "127.0.0.1"
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        with urllib.request.urlopen(f"https://localhost:{port}/metrics", context=ctx, timeout=5) as resp:
            assert b"stream_monitor_up" in resp.read()
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        with pytest.raises(ssl.SSLError):  # hostname verification on the client side too
            bad = ssl.create_default_context(cafile=str(certs.ca))
            with socket_to(port) as s, bad.wrap_socket(s, server_hostname="other.example"):
                pass
    finally:
        svc._http.shutdown()
        svc._http.server_close()
        svc.source.consumer.close()


def socket_to(port: int) -> Any:
    import socket

    return socket.create_connection(("127.0.0.1", port), timeout=5)

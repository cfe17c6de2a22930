"""`stream-monitor` command line: run, demo, replay, simulate, schemas export, check-config.

The reference and calibrate commands live in :mod:`stream_monitor.cli_reference`, the decision
commands in :mod:`stream_monitor.cli_decisions`, `report` in :mod:`stream_monitor.report.command`.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from stream_monitor import __version__
from stream_monitor.cli_support import (
    EXIT_INTERRUPTED,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    apply_examples,
    error_line,
    json_stderr,
    progress_for,
    setup_logging,
)
from stream_monitor.config import MonitorConfig, config_from_dict, load_config
from stream_monitor.errors import StreamMonitorError

log = logging.getLogger("stream_monitor")


def _setup_logging(level: str, fmt: str = "text") -> None:
    setup_logging(level, fmt)


def _install_stop_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# -- run ---------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from stream_monitor.service import MonitorService

    config = load_config(args.config)
    service = MonitorService(config)
    stop = threading.Event()
    _install_stop_signals(stop)
    service.run(stop)
    return 0


# -- demo --------------------------------------------------------------------------------------


def _simulate_live(bootstrap: str, topic: str, stop: threading.Event, *, rate: float, drift_after: float,
                   drift_for: float, bad_rate: float, seed: int, counts: Counter[str]) -> None:
    """Produce events stamped with the wall clock at `rate`/s until `stop`; drift between the two marks."""
    from confluent_kafka import Producer

    from stream_monitor.simulate import TrafficSimulator, utc_now

    started = utc_now()
    sim = TrafficSimulator(seed=seed, drift_at=started + timedelta(seconds=drift_after),
                           drift_until=started + timedelta(seconds=drift_after + drift_for), bad_rate=bad_rate)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    tick = 0.05
    next_t = time.monotonic()
    carry = 0.0
    while not stop.is_set():
        carry += rate * tick
        n, carry = int(carry), carry - int(carry)
        now = utc_now()
        for _ in range(n):
            key, value, bad = sim.message(now)
            counts["malformed" if bad else "valid"] += 1
            while True:
                try:
                    producer.produce(topic, key=key, value=value)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
        next_t += tick
        stop.wait(max(0.0, next_t - time.monotonic()))
    producer.flush(10)


def cmd_demo(args: argparse.Namespace) -> int:
    from stream_monitor.broker import EmbeddedBroker, create_topics
    from stream_monitor.service import MonitorService
    from stream_monitor.simulate import DEFAULT_DRIFT_FEATURES, DEMO_MAX_EVENT_BYTES, demo_model_config
    from stream_monitor.sinks.base import ConsoleAlertSink

    broker = None
    bootstrap = args.bootstrap_servers
    if not bootstrap:
        print("starting the embedded Kafka-compatible broker ...", flush=True)
        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap_servers
    topics = {"predictions": "demo.predictions", "alerts": "demo.alerts", "dead_letter": "demo.dead-letter"}
    create_topics(bootstrap, {topics["predictions"]: 3, topics["alerts"]: 1, topics["dead_letter"]: 1})
    config = config_from_dict({
        "kafka": {"bootstrap_servers": bootstrap, "group_id": f"stream-monitor-demo-{uuid.uuid4().hex[:8]}"},
        "topics": topics,
        "service": {"metrics_port": args.metrics_port, "metrics_host": "127.0.0.1", "poll_timeout_seconds": 0.2,
                    "max_event_bytes": DEMO_MAX_EVENT_BYTES},
        "models": [demo_model_config(window_seconds=args.window_seconds, reference_windows=2)
                   | {"renotify_windows": 1, "slices": {"keys": ["region"], "max_values": 4}}],
    }, "demo")
    service = MonitorService(config, extra_alert_sinks=[ConsoleAlertSink(lambda line: print(line, flush=True))])
    port = service.serve_metrics()
    drift_after, drift_for = args.duration * 0.35, args.duration * 0.4
    print(f"broker {bootstrap}; topics {topics['predictions']} -> {topics['alerts']}, {topics['dead_letter']}\n"
          f"metrics http://127.0.0.1:{port}/metrics; {args.rate:g} events/s, {args.window_seconds:g}s windows, "
          f"reference = first 2 windows\n"
          f"drift injected from {drift_after:.0f}s to {drift_after + drift_for:.0f}s on "
          f"{', '.join(DEFAULT_DRIFT_FEATURES)}; "
          f"stopping after {args.duration:g}s (Ctrl-C to stop earlier)\n", flush=True)
    stop = threading.Event()
    _install_stop_signals(stop)
    produced: Counter[str] = Counter()
    sim = threading.Thread(target=_simulate_live, name="simulator", daemon=True,
                           args=(bootstrap, topics["predictions"], stop),
                           kwargs={"rate": args.rate, "drift_after": drift_after, "drift_for": drift_for,
                                   "bad_rate": args.bad_rate,
                                   "seed": args.seed, "counts": produced})
    sim.start()
    timer = threading.Timer(args.duration, stop.set)
    timer.daemon = True
    timer.start()
    try:
        service.run(stop)
    finally:
        timer.cancel()
        sim.join(15)
        if broker is not None:
            service.producer.close()  # before the broker goes, or librdkafka logs its reconnect attempts
            broker.stop()
    totals = service.pipeline.totals
    by_severity = service.pipeline.alert_counts  # counts over the run (totals keeps only recent alerts)
    closed = service.pipeline.windows_closed
    print(f"\nsummary: produced {sum(produced.values())} ({produced['malformed']} malformed); "
          f"processed {sum(totals.processed.values())} events, dead-lettered {service.pipeline.rejected}; "
          f"windows closed {closed.total()} ({closed['reference']} reference, {closed['evaluated']} evaluated); "
          f"alerts: " + (", ".join(f"{n} {s}" for s, n in sorted(by_severity.items())) or "none"), flush=True)
    return 0


# -- replay ------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, generate_latest

    from stream_monitor.engine import Engine
    from stream_monitor.sinks.base import ConsoleAlertSink
    from stream_monitor.sinks.decisions import ConsoleDecisionSink, JsonlDecisionSink
    from stream_monitor.sinks.files import CountingDeadLetterSink, JsonlAlertSink, JsonlDeadLetterSink
    from stream_monitor.sinks.metrics import MonitorMetrics
    from stream_monitor.sources.pipeline import Pipeline
    from stream_monitor.sources.replay import replay

    config = load_config(args.config)
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    engine = Engine(config)
    metrics.attach(engine)
    alerts: Any = JsonlAlertSink(args.alerts_out) if args.alerts_out else ConsoleAlertSink()
    dead: Any = JsonlDeadLetterSink(args.dead_letter_out) if args.dead_letter_out else CountingDeadLetterSink()
    decisions: Any = (JsonlDecisionSink(args.decisions_out, append=False) if args.decisions_out
                      else ConsoleDecisionSink())
    pipeline = Pipeline(engine, metrics, alerts, dead, decisions)
    progress = progress_for(args, "replay")
    totals = replay(pipeline, args.input, config.service.batch_size, progress=progress.add)
    progress.done()
    for sink in (alerts, dead, decisions):
        if hasattr(sink, "close"):
            sink.close()
    if args.metrics_out:
        Path(args.metrics_out).write_bytes(generate_latest(registry))
    print(f"replayed {args.input}: {sum(totals.processed.values())} events processed, {pipeline.rejected} rejected, "
          f"{sum(totals.late.values())} late, {len(totals.reports)} windows closed, {len(totals.alerts)} alerts, "
          f"{len(totals.decisions)} decisions",
          file=sys.stderr)
    return 0


# -- simulate ----------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    from datetime import datetime

    from stream_monitor.simulate import TrafficSimulator, utc_now

    start = datetime.fromisoformat(args.start) if args.start else utc_now()
    if start.tzinfo is None:
        raise StreamMonitorError("--start needs a timezone offset, e.g. 2026-01-01T00:00:00+00:00")
    count = int(args.rate * args.duration)
    drift_at = start + timedelta(seconds=args.drift_after) if args.drift_after is not None else None
    sim = TrafficSimulator(model_id=args.model_id, seed=args.seed, drift_at=drift_at,
                           drift_features=tuple(args.drift_features.split(",")), drift_strength=args.drift_strength,
                           bad_rate=args.bad_rate)
    messages = sim.messages(start, count, args.rate)
    if args.output:
        with open(args.output, "wb") as fh:
            for _key, value, _bad in messages:
                fh.write(value + b"\n")
        print(f"wrote {count} events to {args.output}", file=sys.stderr)
        return 0
    if not args.bootstrap_servers:
        raise StreamMonitorError("give --output FILE or --bootstrap-servers HOST:PORT")
    from stream_monitor.testing import produce_all

    n = produce_all(args.bootstrap_servers, args.topic, ((k, v) for k, v, _ in messages))
    print(f"produced {n} events to {args.topic}", file=sys.stderr)
    return 0


# -- schemas, check-config ----------------------------------------------------------


def cmd_schemas_export(args: argparse.Namespace) -> int:
    from stream_monitor.contracts.schemas import export_schemas

    for path in export_schemas(args.out):
        print(path)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config: MonitorConfig = load_config(args.config)
    from stream_monitor.engine import Engine

    Engine(config)  # loads and checks reference profiles too
    print(f"{args.config}: ok ({len(config.models)} model(s): {', '.join(m.model_id for m in config.models)})")
    return 0


# -- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stream-monitor", description="Streaming drift detection for production ML.")
    p.add_argument("--version", action="version", version=f"stream-monitor {__version__}")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="json: one JSON object per log line (ts, level, logger, message), for log shippers")
    p.add_argument("--progress-seconds", type=float, default=5.0, help="progress line interval (default 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="consume the configured topics, serve metrics, publish alerts")
    run.add_argument("-c", "--config", required=True)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="embedded broker + simulated traffic with injected drift + the monitor")
    demo.add_argument("--bootstrap-servers", help="use this Kafka instead of the embedded broker")
    demo.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    demo.add_argument("--rate", type=float, default=400.0, help="events per second (default 400)")
    demo.add_argument("--window-seconds", type=float, default=5.0)
    demo.add_argument("--bad-rate", type=float, default=0.005, help="share of malformed messages")
    demo.add_argument("--metrics-port", type=int, default=9308)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)

    rp = sub.add_parser("replay", help="the same engine over a JSON-lines file, no broker")
    rp.add_argument("-c", "--config", required=True)
    rp.add_argument("--input", required=True)
    rp.add_argument("--alerts-out", help="write alerts as JSON lines (default: print one line each)")
    rp.add_argument("--metrics-out", help="write the final Prometheus exposition text")
    rp.add_argument("--dead-letter-out", help="write rejected lines' positions and reasons as JSON lines")
    rp.add_argument("--decisions-out", help="write retraining decisions as JSON lines (default: print one line each)")
    rp.set_defaults(func=cmd_replay)

    sim = sub.add_parser("simulate", help="synthetic prediction traffic, to a topic or a file")
    sim.add_argument("--bootstrap-servers")
    sim.add_argument("--topic", default="predictions")
    sim.add_argument("--output", help="write JSON lines instead of producing")
    sim.add_argument("--rate", type=float, default=100.0, help="events per second of event time")
    sim.add_argument("--duration", type=float, default=60.0, help="seconds of event time")
    sim.add_argument("--start", help="event time of the first event (ISO-8601 with offset; default now)")
    sim.add_argument("--drift-after", type=float, help="seconds after start when the drift begins")
    sim.add_argument("--drift-features", default="income,credit_score,channel")
    sim.add_argument("--drift-strength", type=float, default=1.0)
    sim.add_argument("--bad-rate", type=float, default=0.0)
    sim.add_argument("--model-id", default="credit-risk")
    sim.add_argument("--seed", type=int, default=7)
    sim.set_defaults(func=cmd_simulate)

    sch = sub.add_parser("schemas", help="JSON Schemas of the event contracts")
    sch_sub = sch.add_subparsers(dest="schemas_command", required=True)
    se = sch_sub.add_parser("export", help="write schemas/*.schema.json")
    se.add_argument("--out", default="schemas")
    se.set_defaults(func=cmd_schemas_export)

    cc = sub.add_parser("check-config", help="validate a config file (and its reference profiles)")
    cc.add_argument("-c", "--config", required=True)
    cc.set_defaults(func=cmd_check_config)

    from stream_monitor.report.command import add_parser as add_report_parser

    add_report_parser(sub)
    from stream_monitor.cli_decisions import add_parser as add_decisions_parser
    from stream_monitor.cli_reference import add_parser as add_reference_parser

    add_reference_parser(sub)

    add_decisions_parser(sub)
    apply_examples(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level if args.command != "run" or args.log_level != "WARNING" else "INFO",
                   args.log_format)
    with json_stderr(args.log_format == "json"):
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command; turn every failure into one line on stderr and an exit code (README "Exit codes")."""
    try:
        return int(args.func(args))
    except (StreamMonitorError, ValueError) as exc:
        print(error_line(str(exc), args.log_format, EXIT_USAGE), file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a file named on the command line or in the config cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(error_line(f"{where}{exc.strerror or exc}; check the path and its permissions", args.log_format,
                         EXIT_USAGE), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(error_line("interrupted", args.log_format, EXIT_INTERRUPTED), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 1, traceback on DEBUG
        log.debug("unexpected error", exc_info=True)
        print(error_line(f"unexpected error {type(exc).__name__}: {exc} (a bug: rerun with --log-level DEBUG "
                         "for the traceback and report it)", args.log_format, EXIT_UNEXPECTED), file=sys.stderr)
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())

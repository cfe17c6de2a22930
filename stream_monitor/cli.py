"""`stream-monitor` command line: run, demo, replay, simulate, reference build, schemas export, check-config."""
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
from stream_monitor.errors import EventRejected, StreamMonitorError

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


# -- reference, schemas, check-config ----------------------------------------------------------


def cmd_reference_build(args: argparse.Namespace) -> int:
    from stream_monitor.contracts.decode import EventDecoder
    from stream_monitor.contracts.events import PredictionEvent
    from stream_monitor.engine import Engine
    from stream_monitor.sources.replay import read_records

    config = load_config(args.config)
    model = args.model or config.models[0].model_id
    if config.model(model) is None:
        raise StreamMonitorError(f"model {model!r} is not in {args.config}; configured: "
                                 f"{', '.join(m.model_id for m in config.models)}")
    for m in config.models:  # the profile being built must not be required to exist
        m.reference.path = None
    suffix = Path(args.input).suffix.lower()
    if suffix in (".csv", ".parquet") or args.format in ("table", "csv", "parquet", "jsonl"):
        return _reference_from_table(args, config.model(model))  # type: ignore[arg-type]
    engine = Engine(config)
    decoder = EventDecoder(config, engine.feature_kinds())
    rejected = Counter[str]()
    passes = iter(("pass 1/2: bin edges", "pass 2/2: bin counts"))

    def events() -> Any:  # called twice: edges first, then exact bin counts
        rejected.clear()
        progress = progress_for(args, f"reference build ({next(passes, 'pass')})", "lines")
        for record in read_records(args.input):
            progress.add()
            try:
                ev: PredictionEvent = decoder.decode(record.value)
            except EventRejected as err:
                rejected[err.reason] += 1
                continue
            if ev.model_id == model:
                yield ev
        progress.done()

    profile = engine.build_reference(model, events, source=f"file:{Path(args.input).name}")
    profile.save(args.output)
    print(f"wrote {args.output}: profile {profile.profile_id}, {profile.row_count} events, "
          f"{len(profile.features)} features" + (f"; skipped invalid: {dict(rejected)}" if rejected else ""))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    import yaml

    from stream_monitor.policy.calibration import calibrate_model, planned_draws
    from stream_monitor.reference import ReferenceProfile

    config = load_config(args.config)
    model = config.model(args.model) if args.model else config.models[0]
    if model is None:
        raise StreamMonitorError(f"model {args.model!r} is not in {args.config}")
    ref_path = args.reference or model.reference.path
    if ref_path is None:
        raise StreamMonitorError(f"model {model.model_id!r} has no reference.path: build one with "
                                 "`stream-monitor reference build` and pass it with --reference")
    reference = ReferenceProfile.load(ref_path)
    print(f"calibrating {len(model.rules)} rule(s) of {model.model_id} against {reference.profile_id} "
          f"({args.draws} bootstrap windows per feature) ...", file=sys.stderr, flush=True)
    progress = progress_for(args, "calibrate", "bootstrap windows",
                            total=planned_draws(model, reference, args.draws, args.window_events))
    calibrated = calibrate_model(model, reference, window_events=args.window_events, target_rate=args.target_rate,
                                 draws=args.draws, seed=args.seed, fdr=not args.no_fdr, progress=progress.add)
    progress.done()
    raw = yaml.safe_load(Path(args.config).read_text())
    for m in raw["models"]:
        if m["model_id"] == model.model_id:
            m["rules"] = [r.model_dump(mode="json", exclude_defaults=True) for r in calibrated.rules]
    Path(args.output).write_text(
        f"# Calibrated by `stream-monitor calibrate` for {model.model_id} against {reference.profile_id}:\n"
        f"# target false-alarm rate {args.target_rate} per window and feature. Review, then commit.\n"
        + yaml.safe_dump(raw, sort_keys=False)
    )
    for rule in calibrated.rules:
        for feature, cal in sorted((rule.calibration or {}).get("per_feature", {}).items()):
            levels = ", ".join(f"{s}={t:.4g}" for s, t in cal["thresholds"].items())
            print(f"  {rule.id:10} {feature:24} {levels}")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _reference_from_table(args: argparse.Namespace, m: Any) -> int:
    """CSV / Parquet / flat JSONL rows: two passes, exact reference bin counts, no event contract."""
    from stream_monitor.reference_tables import build_profile_from_table
    from stream_monitor.sketches.embedding import RandomFourierFeatures

    kinds: dict[str, str] | None = {f.name: f.kind for f in m.features} or None
    if kinds is not None and m.monitor_prediction:
        kinds |= {"prediction.score": "numeric", "prediction.class": "categorical"}
    ref = m.reference
    profile = build_profile_from_table(
        args.input, m.model_id, kinds=kinds, bins=ref.bins, max_categories=ref.max_categories,
        binning=ref.binning, pca_components=ref.pca_components,
        rff=RandomFourierFeatures(ref.embedding_frequencies, ref.embedding_seed, ref.embedding_bandwidth),
        fmt=None if args.format in (None, "table") else args.format)
    profile.save(args.output)
    print(f"wrote {args.output}: profile {profile.profile_id}, {profile.row_count} rows, "
          f"{len(profile.features)} features")
    return 0


def cmd_reference_diff(args: argparse.Namespace) -> int:
    import json

    from stream_monitor.reference import ReferenceProfile
    from stream_monitor.reference_diff import diff_profiles

    diff = diff_profiles(ReferenceProfile.load(args.a), ReferenceProfile.load(args.b))
    text = json.dumps(diff, indent=1, sort_keys=True, default=str)
    if args.output:
        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    return 0


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

    ref = sub.add_parser("reference", help="reference profiles")
    ref_sub = ref.add_subparsers(dest="reference_command", required=True)
    rb = ref_sub.add_parser("build", help="build a profile from a JSON-lines file of prediction events")
    rb.add_argument("-c", "--config", required=True)
    rb.add_argument("--input", required=True)
    rb.add_argument("--model", help="model id (default: the first configured)")
    rb.add_argument("-o", "--output", required=True)
    rb.add_argument("--format", choices=["events", "table", "csv", "parquet", "jsonl"],
                    help="events (JSONL prediction events, validated; default for .jsonl) or a table of rows "
                         "(CSV, Parquet, flat JSONL; default for .csv/.parquet)")
    rb.set_defaults(func=cmd_reference_build)
    rd = ref_sub.add_parser("diff", help="compare two reference profiles feature by feature")
    rd.add_argument("a")
    rd.add_argument("b")
    rd.add_argument("-o", "--output", help="write the JSON here instead of printing it")
    rd.set_defaults(func=cmd_reference_diff)

    cal = sub.add_parser("calibrate", help="set rule thresholds for a target false-alarm rate per window")
    cal.add_argument("-c", "--config", required=True)
    cal.add_argument("--model", help="model id (default: the first configured)")
    cal.add_argument("--reference", help="reference profile (default: the model's reference.path)")
    cal.add_argument("--window-events", type=int, help="events per window (default: from the reference's rate)")
    cal.add_argument("--target-rate", type=float, default=0.01, help="false alarms per window and feature")
    cal.add_argument("--draws", type=int, default=400, help="bootstrap windows per feature")
    cal.add_argument("--seed", type=int, default=0)
    cal.add_argument("--no-fdr", action="store_true", help="do not turn on Benjamini-Hochberg across features")
    cal.add_argument("-o", "--output", required=True, help="the config with calibrated rules, to review")
    cal.set_defaults(func=cmd_calibrate)

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

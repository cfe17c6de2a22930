"""`stream-monitor reference build|diff` and `stream-monitor calibrate`: the reference a model is judged against,
and the thresholds calibrated from it."""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from stream_monitor.cli_support import progress_for
from stream_monitor.config import load_config
from stream_monitor.errors import EventRejected, StreamMonitorError


def add_parser(sub: Any) -> None:
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

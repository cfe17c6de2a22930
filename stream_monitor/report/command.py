"""`stream-monitor report`: replay a file through the engine and write the drift report page."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from stream_monitor.errors import StreamMonitorError


def iso_time(text: str) -> datetime:
    """An argparse type: an ISO-8601 time with a UTC offset (event times are always zoned)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time; use e.g. 2026-01-01T00:00:00+00:00"
                                         ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add one, e.g. {text}+00:00")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    rp = sub.add_parser("report", help="replay a file and write a self-contained HTML drift report for a model")
    rp.add_argument("-c", "--config", required=True)
    rp.add_argument("--input", required=True, help="JSON-lines prediction events (as for replay)")
    rp.add_argument("--model", help="model id (default: the first configured)")
    rp.add_argument("--from", dest="start", type=iso_time, help="first window start to show (ISO-8601 with offset)")
    rp.add_argument("--to", dest="end", type=iso_time, help="last window end to show (ISO-8601 with offset)")
    rp.add_argument("-o", "--output", required=True, help="the HTML file to write")
    rp.set_defaults(func=cmd_report)
    return rp


def cmd_report(args: argparse.Namespace) -> int:
    from stream_monitor.api import Monitor
    from stream_monitor.cli_support import progress_for
    from stream_monitor.report.model import in_range
    from stream_monitor.sources.replay import read_records

    monitor = Monitor.from_config(args.config)
    model = args.model or monitor.config.models[0].model_id
    if monitor.config.model(model) is None:
        raise StreamMonitorError(f"--model {model!r} is not in {args.config}; configured: "
                                 f"{', '.join(m.model_id for m in monitor.config.models)}")
    if args.start and args.end and args.end <= args.start:
        raise StreamMonitorError(f"--to {args.end.isoformat()} is not after --from {args.start.isoformat()}")
    progress = progress_for(args, "report (replay)")
    batch: list[bytes] = []
    size = monitor.config.service.batch_size
    for record in read_records(args.input):
        batch.append(record.value or b"")
        if len(batch) >= size:
            monitor.observe_batch(batch)
            progress.add(len(batch))
            batch = []
    monitor.observe_batch(batch)
    progress.add(len(batch))
    monitor.close()
    progress.done()
    html = monitor.report_html(model, start=args.start, end=args.end)
    Path(args.output).write_text(html, encoding="utf-8")
    res = monitor.results()
    shown = [w for w in res.windows if w.model_id == model and in_range(w, args.start, args.end)]
    print(f"wrote {args.output}: {model}, {len(shown)} windows in range; {res.processed} events processed, "
          f"{len(res.rejections)} rejected", file=sys.stderr)
    return 0

"""``python -m bench [--quick] [--out DIR] [--skip SECTION ...]``: the benchmark suite, one command.

Writes ``report.json`` and ``report.md`` to ``--out`` (default ``bench/results``).
Every timing is the median of several runs with its spread; every comparison is a
ratio of figures measured in the same run. ``--quick`` is a one-minute smoke run
with small counts (its numbers are not meant to be quoted).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import report

SECTIONS = ("inprocess", "broker", "lag", "memory", "peers")

#: (events per-event JSON, events batched, runs, broker events, memory counts, peer events, window, KSWIN events,
#: seconds of each live-rate lag run).
#: A window holds `window` events (event time advances 1 ms per event, so 50,000 events = 50 s): what a
#: 5-minute window holds at ~170 events/s. The statistics computed when a window closes are spread over its
#: events, so this is conservative: at a few thousand events/s a 5-minute window holds ~1M events and close
#: cost weighs 20x less; a window of a few hundred events would make it dominate unrealistically.
DEFAULT = dict(events=200_000, batched=2_000_000, runs=5, broker=200_000, memory=[1_000_000, 10_000_000],
               peers=200_000, window=50_000, kswin=2_000, lag_seconds=20)
QUICK = dict(events=5_000, batched=20_000, runs=2, broker=5_000, memory=[20_000, 60_000],
             peers=8_000, window=2_000, kswin=400, lag_seconds=3)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="about a minute, small counts (smoke run)")
    ap.add_argument("--out", default="bench/results", help="directory for report.json and report.md")
    ap.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to leave out")
    args = ap.parse_args(argv)
    p = dict(QUICK if args.quick else DEFAULT)
    window_seconds = p["window"] / 1000
    result: dict[str, Any] = {"params": p, "quick": args.quick, "machine": {
        "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "inprocess" not in args.skip:
        from bench import inprocess

        result["inprocess"] = inprocess.run(p["events"], p["batched"], p["runs"], window_seconds)
    if "broker" not in args.skip:
        from bench import broker_e2e

        try:
            result["broker"] = broker_e2e.run(p["broker"], window_seconds, result.get("inprocess"),
                                                  runs=p["runs"])
        except Exception as exc:  # noqa: BLE001 - no embedded broker here: report it, keep the rest
            result["broker"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    if "lag" not in args.skip:
        from bench import live_lag

        capacity = result.get("broker", {}).get("events_per_s")
        try:
            if capacity is None:  # section 3 skipped or failed: one short backlog run gives the capacity
                from bench import broker_e2e

                capacity = broker_e2e.run(p["broker"], window_seconds, runs=1)["events_per_s"]
            result["lag"] = live_lag.run(capacity, window_seconds, p["lag_seconds"])
        except Exception as exc:  # noqa: BLE001 - no embedded broker here: report it, keep the rest
            result["lag"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    if "memory" not in args.skip:
        from bench import memory

        result["memory"] = memory.run(p["memory"], window_seconds, "arrow" if _has_arrow() else "json")
    if "peers" not in args.skip:
        from bench import peers

        result["peers"] = peers.run(p["peers"], p["window"], p["runs"], p["kswin"])
    result["targets"] = report.targets(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "report.md").write_text(report.markdown(result))
    print(report.markdown(result))
    return result


def _has_arrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()

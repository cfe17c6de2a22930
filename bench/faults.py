"""``python -m bench.faults [--kills N] [--events N] [--soak-seconds S] [--skip kill|soak|steps] [--out FILE]``

The full-count crash-recovery and hostile-input runs whose reduced versions are in
``tests/faults/`` (same harness): 20 SIGKILLs while 100,000 events stream through one
instance, compared window by window and alert by alert with a fault-free oracle; and
a hostile-input soak (1% malformed JSON, NaN/inf, 2 MB records, wrong types, 10,000
unknown model ids) reporting dead letters, lag, series per metric and resident
memory. Uses ``KAFKA_BOOTSTRAP_SERVERS`` if set, else the embedded broker.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from faults.harness import Scenario, kill_run  # noqa: E402
from faults.soak import run_soak, summary  # noqa: E402

from stream_monitor.broker import create_topics  # noqa: E402
from stream_monitor.testing import kafka_bootstrap_from_env_or_start, unique_name  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--events", type=int, default=100_000, help="events in the kill run (all models)")
    p.add_argument("--models", type=int, default=4)
    p.add_argument("--produce-seconds", type=float, default=150.0, help="the kill run streams over this long")
    p.add_argument("--delivery", choices=["at_least_once", "exactly_once"], default="at_least_once")
    p.add_argument("--soak-events", type=int, default=200_000, help="valid events in the soak")
    p.add_argument("--soak-seconds", type=float, default=300.0)
    p.add_argument("--skip", action="append", default=[], choices=["kill", "soak"])
    p.add_argument("--seed", type=int, default=20261122)
    p.add_argument("--out", type=Path, default=Path("bench/results/faults.json"))
    args = p.parse_args(argv)

    bootstrap, stop = kafka_bootstrap_from_env_or_start()

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = unique_name(prefix)
        create_topics(bootstrap, {name: partitions})
        return name

    results: dict[str, Any] = {"bootstrap": bootstrap, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "kill" not in args.skip:
                scenario = Scenario(models=args.models, partitions=args.models,
                                    events_per_model=args.events // args.models)
                r = kill_run(bootstrap, make, Path(tmp), scenario, kills=args.kills, seed=args.seed,
                             produce_seconds=args.produce_seconds, delivery=args.delivery, timeout=900)
                results["kill"] = {"kills": r.kills, "restores": r.restores, "events": r.events,
                                   "seconds": round(r.seconds), "delivery": args.delivery,
                                   "windows": r.windows | {"problems": r.windows["problems"][:20]},
                                   "alerts": r.alerts | {"problems": r.alerts["problems"][:20]},
                                   "ok": not r.windows["problems"] and not r.alerts["problems"]}
                print(json.dumps(results["kill"], indent=1), flush=True)
            if "soak" not in args.skip:
                soak_dir = Path(tmp) / "soak"
                soak_dir.mkdir()
                s = run_soak(bootstrap, make, soak_dir, valid=args.soak_events, unknown_models=10_000, big=20,
                             produce_seconds=args.soak_seconds)
                results["soak"] = summary(s) | {"log_has_payload": s.log_has_canary,
                                                "all_dead_lettered": s.dead_letters == s.bad,
                                                "rss_timeline_mb": [(round(t), round(kb / 1024, 1))
                                                                    for t, kb in s.rss_kb[:: max(1, len(s.rss_kb)
                                                                                              // 30)]]}
                print(json.dumps(results["soak"], indent=1, default=str), flush=True)
    finally:
        stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {args.out}", file=sys.stderr)
    return results


if __name__ == "__main__":
    out = main()
    sys.exit(0 if out.get("kill", {}).get("ok", True) and out.get("soak", {}).get("all_dead_lettered", True)
             else 1)

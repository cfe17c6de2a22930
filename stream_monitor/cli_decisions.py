"""`stream-monitor decisions`: list recent decisions from the decisions topic or an audit log, as a table.

Reading the topic takes no consumer group and commits nothing: it reads every
partition from the beginning to its end at the time of the call, keeps one copy of
each decision id, and shows the newest ``--limit`` in decision-time order.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from stream_monitor.contracts.decisions import DecisionEvent
from stream_monitor.errors import StreamMonitorError

COLUMNS = ("decided_at", "model", "type", "policy", "versions", "reason", "id")


def _versions(d: DecisionEvent) -> str:
    v = d.versions
    parts = [v.current or "-"]
    if v.challenger:
        parts.append(f"vs {v.challenger}")
    if v.rollback_target:
        parts.append(f"-> {v.rollback_target}")
    return " ".join(parts)


def table(decisions: Iterable[DecisionEvent], reason_width: int = 80) -> str:
    """A plain fixed-width table, one row per decision (reasons cut to `reason_width`)."""
    rows = [(f"{d.decided_at:%Y-%m-%d %H:%M:%S}", d.model_id, d.type, f"{d.source}/{d.policy_id}", _versions(d),
             d.reason if len(d.reason) <= reason_width else d.reason[:reason_width - 1] + "…", d.decision_id[:12])
            for d in decisions]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(COLUMNS)]
    line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out)


def select(decisions: Iterable[DecisionEvent], model: str | None, type_: str | None, limit: int) -> list[DecisionEvent]:
    seen: dict[str, DecisionEvent] = {}
    for d in decisions:
        seen.setdefault(d.decision_id, d)
    chosen = [d for d in seen.values() if (model is None or d.model_id == model) and (type_ is None or d.type == type_)]
    chosen.sort(key=lambda d: (d.decided_at, d.created_at, d.decision_id))
    return chosen[-limit:] if limit > 0 else chosen


def cmd_decisions(args: argparse.Namespace) -> int:
    from stream_monitor.config import load_config
    from stream_monitor.sinks.decisions import read_audit_log, read_topic

    source: Iterable[DecisionEvent]
    if args.audit_log:
        if not Path(args.audit_log).exists():
            raise StreamMonitorError(f"{args.audit_log}: no such audit log")
        source = read_audit_log(args.audit_log)
    elif args.config:
        config = load_config(args.config)
        if args.from_audit_log:
            if config.service.audit_log is None:
                raise StreamMonitorError(f"{args.config}: service.audit_log is not set; read the topic instead")
            source = read_audit_log(config.service.audit_log)
        else:
            try:
                source = read_topic(config.kafka.librdkafka(), config.topics.decisions, timeout=args.timeout)
            except LookupError as exc:
                raise StreamMonitorError(f"{exc} on {config.kafka.bootstrap_servers} (topics.decisions)") from None
    else:
        raise StreamMonitorError("give -c CONFIG (reads topics.decisions) or --audit-log FILE")
    chosen = select(source, args.model, args.type, args.limit)
    if args.json:
        for d in chosen:
            print(d.model_dump_json())
    elif chosen:
        print(table(chosen, args.reason_width))
    else:
        print("no decisions", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("decisions", help="list recent retrain / promote / hold / rollback / blocked decisions")
    p.add_argument("-c", "--config", help="read topics.decisions on the configured cluster")
    p.add_argument("--audit-log", help="read this audit log (JSON lines) instead of the topic")
    p.add_argument("--from-audit-log", action="store_true", help="with -c: read service.audit_log, not the topic")
    p.add_argument("--model", help="only this model")
    p.add_argument("--type", choices=["retrain", "promote", "hold", "rollback", "blocked"])
    p.add_argument("--limit", type=int, default=20, help="newest N (0 = all; default 20)")
    p.add_argument("--json", action="store_true", help="one JSON decision per line instead of a table")
    p.add_argument("--reason-width", type=int, default=80)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker")
    p.set_defaults(func=cmd_decisions)

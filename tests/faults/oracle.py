"""The fault-free oracle and the comparison of window results, shared by the state and fault tests.

"Equal to the oracle" means: per window id, the same model, version, window, role,
reference version and n_events, and per feature the same exact statistics (counts,
histogram-binned PSI/JS, chi-square, category rates, missing rates: bit-identical);
statistics from moments equal to 1e-9 relative (floating-point merge order depends
on batch boundaries); KLL-based ones (KS) within the sketches' rank-error bound,
because KLL compaction is randomised and a fresh run keeps different items. Other
sketch-based statistics (p-values, Wasserstein, Cramer-von Mises) are only required
to be present in both: a tiny rank difference can move them by large factors.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from stream_monitor.config import MonitorConfig
from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.engine import Engine
from stream_monitor.engine_types import WindowReport
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sinks.files import CountingDeadLetterSink
from stream_monitor.sinks.kafka import window_id_for, window_record
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.pipeline import Pipeline

EXACT = {"n", "psi", "js_divergence", "chi2_statistic", "chi2_pvalue", "new_category_rate", "missing_rate"}
MOMENTS = {"mean", "std", "mean_shift"}
#: KS from two KLL sketches (k=300): each side within ~0.009 rank error (99%), so D within about 0.02.
KS_TOLERANCE = 0.025


class ListAlertSink:
    def __init__(self) -> None:
        self.alerts: list[AlertEvent] = []

    def publish(self, alert: AlertEvent) -> None:
        self.alerts.append(alert)

    def flush(self) -> int:
        return 0


def run_oracle(config: MonitorConfig, partitions: Sequence[Sequence[bytes]], batch: int = 500,
               engine: Engine | None = None) -> tuple[dict[str, dict[str, Any]], list[AlertEvent]]:
    """Windows (by id, as the JSON the windows topic carries) and alerts of a fault-free, unflushed run.

    Each partition's records go through the pipeline in order, partition after
    partition: a model lives in one partition, so this is every order the service
    can see them in.
    """
    engine = engine if engine is not None else Engine(config)
    alerts = ListAlertSink()
    pipeline = Pipeline(engine, MonitorMetrics(CollectorRegistry()), alerts, CountingDeadLetterSink())
    reports: list[WindowReport] = []
    for p, values in enumerate(partitions):
        for i in range(0, len(values), batch):
            chunk = [RawRecord(value=v, key=None, topic="oracle", partition=p, offset=i + j)
                     for j, v in enumerate(values[i:i + batch])]
            reports.extend(pipeline.handle(chunk).reports)
    windows = {window_id_for(r): orjson.loads(window_record(r)) for r in reports}
    assert len(windows) == len(reports), "window ids are unique per window"
    return windows, alerts.alerts


def _close(a: Any, b: Any, rel: float) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def feature_diffs(name: str, a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key in ("kind", "n", "n_reference", "binning"):
        if a.get(key) != b.get(key):
            out.append(f"{name}.{key}: {a.get(key)} != {b.get(key)}")
    sa, sb = a["stats"], b["stats"]
    if set(sa) != set(sb):
        out.append(f"{name}: statistics {sorted(set(sa) ^ set(sb))} only on one side")
    for stat in set(sa) & set(sb):
        x, y = sa[stat], sb[stat]
        if stat in EXACT and a.get("binning") == "exact":
            ok = x == y
        elif stat in EXACT or stat in MOMENTS:
            ok = _close(x, y, 1e-9) if stat in MOMENTS or a.get("binning") == "exact" else True
        elif stat == "ks_statistic":
            ok = x is not None and y is not None and abs(x - y) <= KS_TOLERANCE
        else:
            ok = True
        if not ok:
            out.append(f"{name}.{stat}: {x} != {y}")
    return out


def window_diffs(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Why two records of the same window differ (empty if they agree as the module docstring defines)."""
    out: list[str] = []
    for key in ("model_id", "model_version", "window_start", "window_end", "n_events", "role", "reference_version",
                "detections", "versions"):
        if got.get(key) != want.get(key):
            out.append(f"{key}: {got.get(key)!r} != {want.get(key)!r}")
    if set(got["features"]) != set(want["features"]):
        out.append(f"features differ: {sorted(set(got['features']) ^ set(want['features']))}")
    for name in set(got["features"]) & set(want["features"]):
        out.extend(feature_diffs(name, got["features"][name], want["features"][name]))
    for label in set(got.get("slices", {})) | set(want.get("slices", {})):
        ga, wa = got.get("slices", {}).get(label, {}), want.get("slices", {}).get(label, {})
        if set(ga) != set(wa):
            out.append(f"slice {label}: features differ")
            continue
        for name in ga:
            out.extend(feature_diffs(f"{label}/{name}", ga[name], wa[name]))
    return out


def compare_windows(published: Iterable[tuple[str, dict[str, Any]]], oracle: dict[str, dict[str, Any]]
                    ) -> dict[str, Any]:
    """Check every published window against the oracle; returns counts and the problems found."""
    copies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, rec in published:
        copies[key].append(rec)
    problems: list[str] = []
    for wid, recs in copies.items():
        want = oracle.get(wid)
        if want is None:
            problems.append(f"window {wid} ({recs[0]['window_start']}) is not in the oracle")
            continue
        for rec in recs:
            problems.extend(f"window {wid} {rec['window_start']}: {d}" for d in window_diffs(rec, want))
    missing = sorted(set(oracle) - set(copies))
    problems.extend(f"window {wid} ({oracle[wid]['window_start']}) never published" for wid in missing)
    return {"windows": len(copies), "copies": sum(len(v) for v in copies.values()),
            "duplicated": sum(1 for v in copies.values() if len(v) > 1), "missing": len(missing),
            "problems": problems}


def compare_alerts(published: Iterable[dict[str, Any]], oracle: Sequence[AlertEvent]) -> dict[str, Any]:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in published:
        by_id[a["alert_id"]].append(a)
    want = {a.alert_id: a for a in oracle}
    problems = [f"alert {i} not in the oracle" for i in sorted(set(by_id) - set(want))]
    problems += [f"oracle alert {i} ({want[i].window_start}) never published" for i in sorted(set(want) - set(by_id))]
    for i, copies in by_id.items():
        stable = {orjson.dumps({k: v for k, v in c.items() if k not in ("created_at", "evidence", "findings",
                                                                          "diagnosis")}) for c in copies}
        if len(stable) > 1:
            problems.append(f"alert {i}: copies differ")
    return {"alerts": len(by_id), "copies": sum(len(v) for v in by_id.values()),
            "duplicated": sum(1 for v in by_id.values() if len(v) > 1), "problems": problems}


def state_digest(document: dict[str, Any], exact_rules: tuple[str, ...] = ("psi",)) -> dict[str, Any]:
    """The exact part of a state snapshot: everything but the randomised sketches' bytes.

    Watermark, panes (events, histogram counts, moments' n, missing, category counts,
    detections, versions), window bookkeeping, reference identity, slice values and
    the policy state (the last value only of rules on exact statistics, `exact_rules`).
    Two runs over the same input must agree on all of it.
    """
    def sketches(fs: dict[str, Any]) -> dict[str, Any]:
        return {
            "n_events": fs["n_events"],
            "numeric": {k: {"n": v["moments"]["n"], "missing": v["missing"],
                            "histogram": (v.get("histogram") or {}).get("counts")}
                        for k, v in sorted(fs["numeric"].items())},
            "categorical": {k: {"counts": v["counts"], "missing": v["missing"]}
                            for k, v in sorted(fs["categorical"].items())},
        }

    def panes(items: list[Any]) -> dict[str, Any]:
        return {f"{v}@{s}": {"overall": sketches(p["overall"]),
                             "slices": {k: sketches(x) for k, x in sorted(p["slices"].items())},
                             "detections": p["detections"], "versions": p["versions"]} for v, s, p in items}

    out: dict[str, Any] = {}
    for mid, m in sorted(document["models"].items()):
        f = m["fields"]
        ref = f["reference"]
        out[mid] = {
            "watermark": f["watermark"], "panes": panes(f["panes"]), "next_close": f["next_close"],
            "reference_panes": panes(f["reference_panes"]), "reference_windows": f["reference_windows"],
            "reference": None if ref is None else ref.get("profile_id") or ref["profile"]["profile_id"],
            "slice_values": f["slice_values"], "last_versions": f["last_versions"],
            "policy": {v: {"incident": p["incident"],
                           "keys": [[k, {n: x for n, x in ks.items() if n != "last_value" or k[0] in exact_rules}]
                                    for k, ks in p["keys"]]} for v, p in m["policy"].items()},
        }
    return out

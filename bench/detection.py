"""Detection quality over seeded scenarios: false alarms per 1,000 windows and detection delay.

    python -m bench.detection [--quick] [--out bench/results]

Scenarios (50 numeric features N(0,1), one categorical, four regions): no drift,
abrupt mean shift of 0.25 std on one feature, gradual drift (a ramp to 0.5 std),
variance change (x1.5), a new category taking 10% of the mass, and a covariate shift
of 1 std in one region only. Methods: calibrated window statistics (PSI and KS
thresholds calibrated for a 1% false-alarm rate per window, Benjamini-Hochberg on),
the fixed industry thresholds (PSI 0.1 / 0.25, KS 0.1 / 0.2), and river's ADWIN,
KSWIN and Page-Hinkley with default settings per feature per event.

Detection delay is counted in events after the change: for window methods up to
the end of the first alerting window (when the alert can be published), for river
detectors up to the first detection on the changed feature.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from stream_monitor.config import MonitorConfig, config_from_dict
from stream_monitor.contracts.events import Prediction, PredictionEvent
from stream_monitor.detectors import make_detector
from stream_monitor.engine import Engine
from stream_monitor.policy.calibration import calibrate_model

START = datetime(2026, 1, 1, tzinfo=UTC)
RATE = 100  # events per second of event time
REGIONS = ["r0", "r1", "r2", "r3"]
CATEGORIES = ["a", "b", "c", "d", "e"]


@dataclass
class Scenario:
    name: str
    feature: str | None  # the changed feature (None: no drift)
    mutate: Callable[[np.ndarray, np.ndarray, list[str], list[str], np.ndarray], None]


def _no_change(x: np.ndarray, t: np.ndarray, cats: list[str], regions: list[str], after: np.ndarray) -> None:
    return None


def _abrupt(x: np.ndarray, t: np.ndarray, cats: list[str], regions: list[str], after: np.ndarray) -> None:
    x[after, 0] += 0.25


def _gradual(x: np.ndarray, t: np.ndarray, cats: list[str], regions: list[str], after: np.ndarray) -> None:
    ramp = np.clip((t - t[after][0]) / (t[-1] - t[after][0]), 0, 1) if after.any() else 0
    x[:, 0] += 0.5 * np.where(after, ramp, 0.0)


def _variance(x: np.ndarray, t: np.ndarray, cats: list[str], regions: list[str], after: np.ndarray) -> None:
    x[after, 1] *= 1.5


def _new_category(x: np.ndarray, t: np.ndarray, cats: list[str], regions: list[str], after: np.ndarray) -> None:
    rng = np.random.default_rng(99)
    for i in np.nonzero(after)[0]:
        if rng.random() < 0.10:
            cats[i] = "new"


def _one_slice(x: np.ndarray, t: np.ndarray, cats: list[str], regions: list[str], after: np.ndarray) -> None:
    in_slice = np.asarray([r == "r3" for r in regions])
    x[after & in_slice, 2] += 1.0


SCENARIOS = [
    Scenario("no_drift", None, _no_change),
    Scenario("abrupt_mean_0.25sd", "f0", _abrupt),
    Scenario("gradual_to_0.5sd", "f0", _gradual),
    Scenario("variance_x1.5", "f1", _variance),
    Scenario("new_category_10pct", "c0", _new_category),
    Scenario("one_slice_1sd", "f2", _one_slice),
]


def make_stream(n_features: int, n: int, seed: int, scenario: Scenario, change_at: int
                ) -> tuple[list[PredictionEvent], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    t = np.arange(n) / RATE
    cats = [CATEGORIES[i] for i in rng.integers(len(CATEGORIES), size=n)]
    regions = [REGIONS[i] for i in rng.integers(len(REGIONS), size=n)]
    after = np.arange(n) >= change_at
    scenario.mutate(x, t, cats, regions, after)
    pred = Prediction.model_construct(score=0.5, class_=None, value=None)
    events = []
    for i in range(n):
        feats: dict[str, Any] = {f"f{j}": float(v) for j, v in enumerate(x[i])}
        feats["c0"] = cats[i]
        events.append(PredictionEvent.model_construct(
            event_id=str(i), model_id="bench", model_version="v1", timestamp=START + timedelta(seconds=t[i]),
            features=feats, prediction=pred, latency_ms=None, slice={"region": regions[i]}, llm=None))
    return events, x


def base_config(n_features: int, window_events: int, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"models": [{
        "model_id": "bench", "monitor_prediction": False, "renotify_windows": 1,
        "features": [{"name": f"f{j}"} for j in range(n_features)] + [{"name": "c0", "kind": "categorical"}],
        "window": {"size_seconds": window_events / RATE},
        "slices": {"keys": ["region"], "max_values": 4},
        "rules": rules,
    }]}


FIXED_RULES = [
    {"id": "psi", "metric": "psi", "thresholds": {"warning": 0.1, "critical": 0.25}},
    {"id": "ks", "metric": "ks_statistic", "thresholds": {"warning": 0.1, "critical": 0.2}},
]


def calibrated_config(n_features: int, window_events: int, reference: Any, draws: int) -> MonitorConfig:
    rules = [*FIXED_RULES, {"id": "psi-slices", "metric": "psi", "thresholds": {"warning": 0.1},
                            "per_slice": True, "min_samples": 50}]
    cfg = config_from_dict(base_config(n_features, window_events, rules))
    model = cfg.models[0]
    cal = calibrate_model(model.model_copy(update={"rules": model.rules[:2]}), reference,
                          window_events=window_events, target_rate=0.01, draws=draws)
    slice_cal = calibrate_model(model.model_copy(update={"rules": model.rules[2:]}), reference,
                                window_events=window_events, target_rate=0.01, draws=draws)
    raw = base_config(n_features, window_events, [r.model_dump(mode="json") for r in cal.rules + slice_cal.rules])
    return config_from_dict(raw)


def window_method(config: MonitorConfig, reference: Any, events: list[PredictionEvent], change_at: int,
                  feature: str | None, window_events: int) -> dict[str, Any]:
    eng = Engine(config, references={"bench": reference})
    started = time.perf_counter()
    out = eng.process(events)
    elapsed = time.perf_counter() - started
    evaluated = [r for r in out.reports if r.role == "evaluated"]
    firing = [a for a in out.alerts if a.status == "firing"]
    change_time = START + timedelta(seconds=change_at / RATE)
    before = [a for a in firing if a.window_end <= change_time]
    windows_before = sum(1 for r in evaluated if r.window_end <= change_time)
    result: dict[str, Any] = {
        "windows": len(evaluated), "events_per_s": len(events) / elapsed,
        "windows_before_change": windows_before, "false_alarm_windows": len(before),
        "false_alarms_per_1000_windows": 1000 * len(before) / max(1, windows_before),
    }
    if feature is not None:
        hits = [a for a in firing if a.window_end > change_time and any(f.feature == feature for f in a.findings)]
        if hits:
            end = min(a.window_end for a in hits)
            result["delay_events"] = int((end - change_time).total_seconds() * RATE)
            result["delay_windows"] = result["delay_events"] / window_events
        else:
            result["delay_events"] = None
    return result


def river_method(kind: str, x: np.ndarray, change_at: int, feature: str | None, features: list[int],
                 window_events: int) -> dict[str, Any]:
    false, delay = 0, None
    started = time.perf_counter()
    for j in features:
        det = make_detector(kind)
        hits = det.update(x[:, j])
        false += sum(1 for h in hits if h < change_at)
        if feature == f"f{j}":
            after = [h for h in hits if h >= change_at]
            delay = after[0] - change_at if after else None
    elapsed = time.perf_counter() - started
    windows_before = change_at / window_events * len(features)
    return {"false_alarms_per_1000_windows": 1000 * false / max(1.0, windows_before),
            "delay_events": delay, "updates_per_s": len(features) * x.shape[0] / elapsed,
            "features_tracked": len(features)}


def run(quick: bool, out_dir: Path) -> dict[str, Any]:
    n_features = 50
    window_events = 1000
    n = 60_000 if quick else 200_000
    change_at = n // 2
    draws = 100 if quick else 300
    ref_events, _ = make_stream(n_features, 40_000, 1, SCENARIOS[0], n)
    ref_engine = Engine(config_from_dict(base_config(n_features, window_events, FIXED_RULES)))
    reference = ref_engine.build_reference("bench", ref_events, source="bench:reference")
    calibrated = calibrated_config(n_features, window_events, reference, draws)
    fixed = config_from_dict(base_config(n_features, window_events, FIXED_RULES))
    report: dict[str, Any] = {"n_features": n_features, "window_events": window_events, "events": n,
                              "change_at": change_at, "scenarios": {}}
    river_features = [0, 1, 2, 3, 4] if quick else list(range(10))
    for i, sc in enumerate(SCENARIOS):
        events, x = make_stream(n_features, n, 100 + i, sc, change_at if sc.feature else n)
        row: dict[str, Any] = {
            "calibrated+fdr": window_method(calibrated, reference, events, change_at if sc.feature else n,
                                            sc.feature, window_events),
            "fixed_thresholds": window_method(fixed, reference, events, change_at if sc.feature else n,
                                              sc.feature, window_events),
        }
        for kind in ("adwin", "page_hinkley", "kswin"):
            if sc.feature is None or sc.feature.startswith("f"):
                feats = river_features[:2] if kind == "kswin" else river_features
                row[kind] = river_method(kind, x, change_at if sc.feature else n, sc.feature, feats, window_events)
        report["scenarios"][sc.name] = row
        print(f"{sc.name}: " + ", ".join(f"{m}: far={r['false_alarms_per_1000_windows']:.1f} "
                                         f"delay={r.get('delay_events')}" for m, r in row.items()), flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "detection.json").write_text(json.dumps(report, indent=1))
    (out_dir / "detection.md").write_text(to_markdown(report))
    return report


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Detection quality ({report['n_features']} features, {report['window_events']} events per window, "
             f"{report['events']} events, change at event {report['change_at']})", "",
             "| scenario | method | false alarms / 1,000 windows | delay (events) | delay (windows) |",
             "|---|---|---|---|---|"]
    for name, row in report["scenarios"].items():
        for method, r in row.items():
            d = r.get("delay_events")
            dw = r.get("delay_windows")
            lines.append(f"| {name} | {method} | {r['false_alarms_per_1000_windows']:.1f} | "
                         f"{'-' if d is None else d} | {'-' if dw is None else f'{dw:.1f}'} |")
    lines += ["", "Pooled over the pre-change windows of every scenario (the rate the target is about):", ""]
    for method in ("calibrated+fdr", "fixed_thresholds"):
        rows = [row[method] for row in report["scenarios"].values() if "windows_before_change" in row.get(method, {})]
        false, windows = sum(r["false_alarm_windows"] for r in rows), sum(r["windows_before_change"] for r in rows)
        if windows:
            lines.append(f"- {method}: {false} of {windows} windows ({100 * false / windows:.2f}%)")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="bench/results")
    args = p.parse_args()
    run(args.quick, Path(args.out))


if __name__ == "__main__":
    main()

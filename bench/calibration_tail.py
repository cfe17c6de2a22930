"""How well calibrated p-values hold in the tail, where Benjamini-Hochberg works.

    python -m bench.calibration_tail [--windows 400] [--draws 300] [--seed 1]

Builds the detection benchmark's reference (50 numeric features N(0,1), four regions,
40,000 events), calibrates PSI and KS overall and per slice at 1,000 events per window,
then draws independent no-drift windows (the slices take their random share of each
window) and reports, per statistic and scope, P(p < a) / a for a from 1e-2 to 1e-4
(1.0 is exact; above 1 means too many small p-values) and the share of windows in
which BH at 1% over all keys rejects anything (the target: at most 1%).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import false_discovery_control

from bench.detection import SCENARIOS, base_config, make_stream
from stream_monitor.config import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.policy.calibration import calibrate_model
from stream_monitor.policy.rules import empirical_p_value
from stream_monitor.reference import NumericReference
from stream_monitor.sketches import NumericSketch
from stream_monitor.stats.compare import compare_numeric

ALPHAS = (1e-2, 1e-3, 3e-4, 1e-4)
RULES = [{"id": "psi", "metric": "psi", "thresholds": {"warning": 0.1}},
         {"id": "ks", "metric": "ks_statistic", "thresholds": {"warning": 0.1}},
         {"id": "psi-slices", "metric": "psi", "thresholds": {"warning": 0.1}, "per_slice": True},
         {"id": "ks-slices", "metric": "ks_statistic", "thresholds": {"warning": 0.1}, "per_slice": True}]


def run(windows: int, draws: int, seed: int) -> dict[str, Any]:
    n_features, window_events = 50, 1000
    started = time.perf_counter()
    config = config_from_dict(base_config(n_features, window_events, RULES))
    ref_events, _ = make_stream(n_features, 40_000, seed, SCENARIOS[0], 40_000)
    reference = Engine(config).build_reference("bench", ref_events, source="bench:reference")
    model = calibrate_model(config.models[0], reference, window_events=window_events, draws=draws, seed=seed)
    calibrated_s = time.perf_counter() - started
    by_id = {r.id: r for r in model.rules}
    labels = sorted(reference.slices)
    rng = np.random.default_rng(1000 + seed)
    p: dict[str, list[list[float]]] = {rid: [] for rid in by_id}
    for _ in range(windows):
        x = rng.normal(size=(window_events, n_features))
        region = rng.integers(len(labels), size=window_events)
        row: dict[str, list[float]] = {rid: [] for rid in by_id}
        for j in range(n_features):
            name = f"f{j}"
            scopes: list[tuple[str | None, NumericReference, np.ndarray]] = [(None, reference.features[name], x[:, j])]
            scopes += [(label, reference.slices[label][name], x[region == i, j]) for i, label in enumerate(labels)]
            for label, ref, values in scopes:
                sketch = NumericSketch(ref.edges)
                sketch.update(values)
                stats = compare_numeric(name, ref, sketch).stats
                for rid, rule in by_id.items():
                    if (label is None) == (not rule.per_slice):
                        pv = empirical_p_value(rule, name, stats[rule.metric], label, sketch.n)
                        row[rid].append(1.0 if pv is None else pv)
        for rid in by_id:
            p[rid].append(row[rid])
    arrays = {rid: np.asarray(v) for rid, v in p.items()}
    report: dict[str, Any] = {"windows": windows, "draws": draws, "seed": seed, "calibrate_seconds": calibrated_s,
                              "ratio_to_nominal": {}}
    for rid, arr in arrays.items():
        report["ratio_to_nominal"][rid] = {f"{a:g}": float(np.mean(arr < a) / a) for a in ALPHAS}
    family = np.hstack(list(arrays.values()))
    fired = sum(bool(np.any(false_discovery_control(family[w]) <= 0.01)) for w in range(windows))
    report["keys_per_window"] = int(family.shape[1])
    report["bh_windows_with_any_rejection"] = fired
    report["bh_window_false_alarm_rate"] = fired / windows
    return report


def to_markdown(r: dict[str, Any]) -> str:
    lines = [f"# Calibrated p-values in the tail ({r['windows']} no-drift windows, {r['draws']} draws per key, "
             f"seed {r['seed']})", "", "P(p < a) / a (1.0 is exact):", "",
             "| rule | " + " | ".join(f"a = {a:g}" for a in ALPHAS) + " |", "|---" * (len(ALPHAS) + 1) + "|"]
    for rid, ratios in r["ratio_to_nominal"].items():
        lines.append(f"| {rid} | " + " | ".join(f"{ratios[f'{a:g}']:.2f}" for a in ALPHAS) + " |")
    lines += ["", f"Benjamini-Hochberg at 1% over {r['keys_per_window']} keys per window: "
              f"{r['bh_windows_with_any_rejection']} of {r['windows']} windows with any rejection "
              f"({100 * r['bh_window_false_alarm_rate']:.2f}%; target <= 1%)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=400)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    report = run(args.windows, args.draws, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration_tail.json").write_text(json.dumps(report, indent=1))
    (out / "calibration_tail.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()

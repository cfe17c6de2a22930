"""Root cause in the alert: name the most likely cause category, with the evidence that points at it.

The order of the checks is the order of suspicion an on-call engineer would follow:
a broken pipeline (missing values, unknown categories) explains drift more cheaply
than a changing world; a version change inside the window (prompt, retrieval index)
is the next suspect; drift concentrated in a few slices is a segment story; only then
is it covariate shift, with or without an effect on the predictions.
"""
from __future__ import annotations

from typing import Any

from stream_monitor.contracts.alerts import Diagnosis, Finding
from stream_monitor.engine_types import WindowReport
from stream_monitor.reference import ReferenceProfile

MISSING_RATE_JUMP = 0.05
NEW_CATEGORY_RATE = 0.05


def _quality_evidence(report: WindowReport, reference: ReferenceProfile | None,
                      features: set[str]) -> dict[str, Any]:
    evidence: dict[str, Any] = {}
    for name in sorted(features):
        result = report.features.get(name)
        ref = reference.features.get(name) if reference else None
        if result is None or ref is None:
            continue
        jump = result.stats.get("missing_rate", 0.0) - ref.missing_rate
        if jump >= MISSING_RATE_JUMP:
            evidence[name] = {"missing_rate": result.stats["missing_rate"], "reference_missing_rate": ref.missing_rate}
        elif result.stats.get("new_category_rate", 0.0) >= NEW_CATEGORY_RATE:
            evidence[name] = {"new_category_rate": result.stats["new_category_rate"]}
    return evidence


def _version_changes(report: WindowReport) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, counts in report.versions.items():
        if name == "model_version":
            continue  # windows are per model version: a new version is a new series, not a change inside one
        before = set(report.previous_versions.get(name, []))
        new = sorted(set(counts) - before)
        if before and new:
            changes[name] = {"new": new, "previous": sorted(before), "counts": counts}
    return changes


def _slice_concentration(report: WindowReport, features: set[str]) -> dict[str, list[tuple[str, float]]]:
    """For each drifted feature, the tracked slices ranked by their own PSI against their reference."""
    out: dict[str, list[tuple[str, float]]] = {}
    for name in sorted(features):
        ranked = sorted(((label, res[name].stats["psi"]) for label, res in report.slices.items()
                         if name in res and "psi" in res[name].stats), key=lambda x: -x[1])
        if ranked:
            out[name] = [(label, round(v, 4)) for label, v in ranked[:3]]
    return out


def diagnose(report: WindowReport, findings: list[Finding], reference: ReferenceProfile | None) -> Diagnosis:
    features = {f.feature for f in findings if not f.feature.startswith("prediction.")}
    overall = {f.feature for f in findings if f.slice is None}
    prediction = any(f.feature.startswith("prediction.") for f in findings)
    quality = _quality_evidence(report, reference, features)
    if quality:
        return Diagnosis(cause="data_quality",
                         summary=f"data-quality change in {', '.join(quality)}: look at the pipeline first",
                         evidence={"features": quality})
    changes = _version_changes(report)
    if changes:
        what = ", ".join(f"{k} {v['previous']}->{v['new']}" for k, v in changes.items())
        return Diagnosis(cause="upstream_change", summary=f"version change inside the window: {what}",
                         evidence={"versions": changes})
    sliced = sorted({f.slice for f in findings if f.slice is not None})
    if sliced and report.slices and not (overall & features) and len(sliced) <= max(1, len(report.slices) // 3):
        return Diagnosis(cause="segment_shift", summary=f"drift concentrated in {', '.join(sliced)}",
                         evidence={"slices": sliced, "tracked_slices": len(report.slices)})
    ranked = list(dict.fromkeys(f.feature for f in findings if f.feature in features))
    evidence = {"features": ranked, "slices": sliced, "by_slice": _slice_concentration(report, set(ranked[:3]))}
    if features and prediction:
        return Diagnosis(cause="covariate_shift_with_prediction_impact",
                         summary=f"inputs shifted ({', '.join(ranked[:3])}) and the predictions followed",
                         evidence=evidence)
    if features:
        return Diagnosis(cause="covariate_shift",
                         summary=f"inputs shifted ({', '.join(ranked[:3])}); predictions stable so far",
                         evidence=evidence)
    if prediction:
        return Diagnosis(cause="prediction_drift_only",
                         summary="predictions shifted with no monitored input shifting: check unmonitored "
                                 "inputs, the model artifact and upstream feature code",
                         evidence={})
    return Diagnosis(cause="unknown", summary="no finding to explain", evidence={})

"""Section 5: the tools users would otherwise pick, on the same stream and the same windows.

Every tool gets the same per-event JSON messages and decodes them with orjson (the
floor all share; whylogs and Evidently then profile each window as one pandas
DataFrame, built inside the timed part as they would have to build it); tumbling
windows of the same number of events; the first window is
the reference. A shift is injected half-way (5 numeric features by half a standard
deviation, one categorical feature's mix). Reported: events/s (median of runs, with
spread), the first window (or event, for river) flagged after the shift, and false
alarms before it. A peer that is not installed is reported as such; its code path stays.

Separately labelled, the same rows in each side's best columnar form: stream-monitor on
batched Arrow messages, whylogs and Evidently on DataFrames built before timing. The
speed-up targets are counted on the per-event JSON rows only (same input for all).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from bench import stream
from bench.inprocess import pipeline, records
from bench.timing import measure


def _frames(messages: list[bytes], window: int) -> list[Any]:
    import pandas as pd

    frames = []
    for i in range(0, len(messages), window):
        frames.append(pd.DataFrame([orjson.loads(m)["features"] for m in messages[i : i + window]]))
    return frames


def _detection(flags: list[bool], shift_window: int) -> dict[str, Any]:
    after = [i for i, f in enumerate(flags) if f and i >= shift_window]
    return {"first_flagged_window": after[0] if after else None, "shift_window": shift_window,
            "false_alarm_windows": sum(1 for i, f in enumerate(flags) if f and 0 < i < shift_window)}


def whylogs_peer(messages: list[bytes], window: int, shift_window: int) -> dict[str, Any]:
    return whylogs_frames(_frames(messages, window), shift_window)


def whylogs_frames(frames: list[Any], shift_window: int) -> dict[str, Any]:
    if not hasattr(np, "unicode_"):
        np.unicode_ = np.str_  # type: ignore[attr-defined]  # whylogs 1.6 still names the NumPy 1 alias
    import whylogs as why
    from whylogs.viz.drift.column_drift_algorithms import calculate_drift_scores

    ref = why.log(frames[0]).view()
    flags = [False]
    for df in frames[1:]:
        scores = calculate_drift_scores(target_view=why.log(df).view(), reference_view=ref, with_thresholds=True)
        flags.append(any((s or {}).get("drift_category") == "DRIFT" for s in scores.values()))
    return _detection(flags, shift_window)


def evidently_peer(messages: list[bytes], window: int, shift_window: int) -> dict[str, Any]:
    return evidently_frames(_frames(messages, window), shift_window)


def evidently_frames(frames: list[Any], shift_window: int) -> dict[str, Any]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    flags = [False]
    for df in frames[1:]:
        snap = Report([DataDriftPreset()]).run(df, frames[0])
        flags.append(float(snap.dict()["metrics"][0]["value"]["count"]) > 0)
    return _detection(flags, shift_window)


def scipy_peer(messages: list[bytes], window: int, shift_window: int) -> dict[str, Any]:
    from scipy import stats

    frames = _frames(messages, window)
    ref = frames[0]
    alpha = 0.01 / (len(stream.NUMERIC) + len(stream.CATEGORICAL))  # Bonferroni over the features
    flags = [False]
    for df in frames[1:]:
        ps = [stats.ks_2samp(ref[c].to_numpy(), df[c].to_numpy()).pvalue for c in stream.NUMERIC]
        for c in stream.CATEGORICAL:
            table = np.array([[int((ref[c] == k).sum()) for k in stream.CATEGORIES],
                              [int((df[c] == k).sum()) for k in stream.CATEGORIES]]) + 1
            ps.append(stats.chi2_contingency(table).pvalue)
        flags.append(min(ps) < alpha)
    return _detection(flags, shift_window)


def river_peer(kind: str, limit: int | None = None) -> Callable[[list[bytes], int, int], dict[str, Any]]:
    def run(messages: list[bytes], window: int, shift_window: int) -> dict[str, Any]:
        from river import drift

        make = {"ADWIN": drift.ADWIN, "PageHinkley": drift.PageHinkley, "KSWIN": drift.KSWIN}[kind]
        detectors = {c: make() for c in stream.NUMERIC[: limit or len(stream.NUMERIC)]}
        shift = len(messages) // 2
        first, false = None, 0
        for i, m in enumerate(messages):
            feats = orjson.loads(m)["features"]
            for c, d in detectors.items():
                d.update(feats[c])
                if d.drift_detected:
                    if i < shift:
                        false += 1
                    elif first is None:
                        first = i
        return {"first_flagged_event": first, "shift_event": shift, "false_alarms": false,
                "features": len(detectors)}

    return run


def ours(messages: list[bytes], window: int, shift_window: int) -> dict[str, Any]:
    p = pipeline(window / stream.RATE)
    out_reports = []
    for b in records(messages):  # per-event JSON: one message per prediction, decoded and validated here
        out_reports += p.handle(b).reports
    out_reports += p.finish().reports
    flagged = {int((a.window_start.timestamp() * 1000 - stream.timestamp_ms(0)) // window)
               for a in p.totals.alerts}
    return _detection([i in flagged for i in range(len(out_reports))], shift_window)


#: Rows per message of the batched Arrow input (as in section 2).
ARROW_ROWS = 10_000
JSON_NAME = "stream-monitor (per-event JSON)"
ARROW_NAME = "stream-monitor (batched Arrow input)"

PEERS: dict[str, Callable[[list[bytes], int, int], dict[str, Any]]] = {
    "stream-monitor (per-event JSON)": ours,
    "whylogs": whylogs_peer,
    "evidently": evidently_peer,
    "scipy exact tests": scipy_peer,
    "river ADWIN": river_peer("ADWIN"),
    "river PageHinkley": river_peer("PageHinkley"),
}


def _columnar(n_events: int, window: int) -> dict[str, Callable[[list[bytes], int, int], dict[str, Any]]]:
    """The same rows given as columns: Arrow messages to us, pandas frames (built before timing) to the peers.

    Not the per-event comparison the speed-up targets count: each side gets its best input form
    (building the Arrow messages, like building the frames, is outside the timed part).
    """
    blk = stream.block(0, n_events, n_events)
    arrow = [stream.batch_message(stream.block(i, min(ARROW_ROWS, n_events - i), n_events), "arrow")
             for i in range(0, n_events, ARROW_ROWS)] if _has("pyarrow") else None
    frames: list[Any] | None = None

    def prebuilt() -> list[Any]:
        nonlocal frames
        if frames is None:
            frames = _frames(stream.json_messages(blk), window)
        return frames

    def ours_arrow(messages: list[bytes], window: int, shift_window: int) -> dict[str, Any]:
        if arrow is None:
            raise ImportError("pyarrow")
        return ours(arrow, window, shift_window)

    return {ARROW_NAME: ours_arrow,
            "whylogs (pre-built DataFrames)": lambda m, w, s: whylogs_frames(prebuilt(), s),
            "evidently (pre-built DataFrames)": lambda m, w, s: evidently_frames(prebuilt(), s)}


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def run(n_events: int, window: int, runs: int, kswin_events: int) -> dict[str, Any]:
    messages = stream.json_messages(stream.block(0, n_events, n_events))
    shift_window = n_events // 2 // window
    res: dict[str, Any] = {"events": n_events, "window_events": window}
    for name, fn in {**PEERS, **_columnar(n_events, window)}.items():
        detail: dict[str, Any] = {}

        def call(fn: Callable[[list[bytes], int, int], dict[str, Any]] = fn, detail: dict[str, Any] = detail) -> None:
            detail.update(fn(messages, window, shift_window))

        try:
            timing = measure(call, max(1, runs - 2), n_events)  # every timed run also gives the detection result
            res[name] = {**timing, **detail}
        except ImportError as exc:
            res[name] = {"error": f"not installed: {exc}"}
        except Exception as exc:  # noqa: BLE001 - a broken peer is reported, not fatal
            res[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    small = messages[:kswin_events // 2] + messages[n_events // 2 : n_events // 2 + kswin_events // 2]
    started = time.perf_counter()
    try:
        detail = river_peer("KSWIN", limit=1)(small, window, 0)
        res["river KSWIN (1 feature)"] = {"events_per_s": len(small) / (time.perf_counter() - started),
                                          "events": len(small), **detail}
    except ImportError as exc:
        res["river KSWIN (1 feature)"] = {"error": f"not installed: {exc}"}
    base = res[JSON_NAME].get("events_per_s")
    batched = res.get(ARROW_NAME, {}).get("events_per_s")
    for r in res.values():
        if isinstance(r, dict) and r.get("events_per_s") and base:
            r["stream_monitor_speedup"] = base / r["events_per_s"]
            if batched:
                r["stream_monitor_batched_speedup"] = batched / r["events_per_s"]
    return res

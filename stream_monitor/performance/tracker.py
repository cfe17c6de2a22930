"""Per-model outcome state beside the drift panes: label join, performance, operations, quality, LLM change points.

Lifecycle, per (model version, pane):

* rows routed to a pane (not late) update the pane's operations and quality
  accumulators and, when ``performance`` is configured, enter the join buffer and
  count as predictions of the pane's performance accumulator;
* when the engine closes a window, operations and quality are final: they are
  written to the report and judged at once; the window's performance (whatever
  labels arrived so far) is written too, and the window is *retained*;
* labels that arrive later update their pane's accumulator; every retained window
  containing that pane is recomputed (``report.performance`` is updated in place and
  the report is listed in ``EngineOutput.updates``). A window is ``provisional``
  until its label coverage reaches ``performance.min_label_coverage``; it is judged
  by the performance rules when it settles (coverage reached, or it leaves
  retention: label TTL passed or ``label_window_retention`` exceeded), and judged
  again for escalation only if later labels make it worse.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from stream_monitor.config import ModelConfig
from stream_monitor.config_outcomes import PERFORMANCE_METRICS
from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.engine_types import WindowReport
from stream_monitor.labels.join import JoinBuffer, Pending
from stream_monitor.performance.accumulators import PerformanceAccumulator
from stream_monitor.performance.operations import OTHER_VERSION, LLMStats, OperationsAccumulator, change_point
from stream_monitor.performance.quality import Contract, QualityAccumulator, resolve_contracts
from stream_monitor.policy.window_policy import (
    SOURCE_OPERATIONS,
    SOURCE_PERFORMANCE,
    SOURCE_QUALITY,
    WindowPolicy,
    verdicts,
    window_rules,
)
from stream_monitor.reference import ReferenceProfile
from stream_monitor.window_state import PREDICTION_CLASS, PREDICTION_SCORE
from stream_monitor.windows import from_ms

PaneKey = tuple[str, int]


@dataclass
class RetainedWindow:
    """A closed window whose performance late labels may still change."""

    report: WindowReport
    start_ms: int
    end_ms: int
    settled: bool = False
    published: dict[str, str] = field(default_factory=dict)


def merged_into(parts: Sequence[Any], fresh: Any) -> Any:
    """Merge mergeable accumulators into `fresh` (so no stored part is changed) and return it."""
    for p in parts:
        fresh.merge(p)
    return fresh


class ModelOutcomes:
    """Everything beyond drift that one model's windows carry (see the module docstring)."""

    def __init__(self, config: ModelConfig, kinds: dict[str, str], size_ms: int, slide_ms: int) -> None:
        self.config = config
        self.kinds = kinds
        self.size_ms, self.slide_ms = size_ms, slide_ms
        perf = config.performance
        self.join = JoinBuffer(int(perf.label_ttl_seconds * 1000), perf.max_pending_labels) if perf else None
        self.perf_panes: dict[PaneKey, PerformanceAccumulator] = {}
        self.ops_panes: dict[PaneKey, OperationsAccumulator] = {}
        self.quality_panes: dict[PaneKey, QualityAccumulator] = {}
        self.windows: dict[PaneKey, RetainedWindow] = {}
        #: The most recently settled window per model version (its performance is final enough to export).
        self.last_settled: dict[str, WindowReport] = {}
        self.baseline: PerformanceAccumulator | None = None
        self.baseline_windows = 0
        self.llm_baseline: OperationsAccumulator | None = None
        self.llm_baseline_windows = 0
        self.last_llm: dict[str, dict[str, LLMStats]] = {}
        self.policy = WindowPolicy()
        self._contracts: tuple[str | None, dict[str, Contract]] | None = None
        #: Counts since the engine last collected them (into EngineOutput).
        self.joined = 0
        self.unmatched = 0
        self.expired: Counter[str] = Counter()

    # -- configuration-derived ------------------------------------------------------------------

    def contracts(self, reference: ReferenceProfile | None) -> dict[str, Contract]:
        ref_id = reference.profile_id if reference is not None else None
        if self._contracts is None or self._contracts[0] != ref_id:
            self._contracts = (ref_id, resolve_contracts(self.config.quality, self.kinds, reference))
        return self._contracts[1]

    def rules(self, reference: ReferenceProfile | None) -> list[Any]:
        return window_rules(self.config, bool(self.contracts(reference)))

    # -- predictions ----------------------------------------------------------------------------

    def observe(self, version: str, start_ms: int, batch: Any, reference: ReferenceProfile | None) -> None:
        """Rows of one pane (``ColumnBatch``), already routed and not late."""
        key = (version, start_ms)
        ops = self.ops_panes.get(key)
        if ops is None:
            ops = self.ops_panes[key] = OperationsAccumulator(self.config.llm)
        ops.observe(self.config.llm, getattr(batch, "latency_ms", None), batch.llm)
        contracts = self.contracts(reference)
        if contracts:
            q = self.quality_panes.get(key)
            if q is None:
                q = self.quality_panes[key] = QualityAccumulator()
            q.observe(contracts, batch.numeric, batch.categorical, len(batch))
        ids = getattr(batch, "event_ids", None)
        perf = self.config.performance
        if self.join is None or perf is None or ids is None:
            return
        acc = self.perf_panes.get(key)
        if acc is None:
            acc = self.perf_panes[key] = PerformanceAccumulator(perf)
        n = len(batch)
        score = batch.numeric.get(PREDICTION_SCORE, np.full(n, np.nan))
        classes = batch.categorical.get(PREDICTION_CLASS, [None] * n)
        values = getattr(batch, "values", None)
        values = values if values is not None else np.full(n, np.nan)
        if perf.task == "classification":
            usable = (~np.isnan(score)) | np.fromiter((c is not None for c in classes), bool, n)
        else:
            usable = ~(np.isnan(score) & np.isnan(values))
        items = [(eid, (version, start_ms, t, s, c, v))
                 for eid, t, s, c, v, ok in zip(ids, batch.ts_ms.tolist(), score.tolist(), classes, values.tolist(),
                                                usable.tolist(), strict=True) if ok and eid is not None]
        added, dropped = self.join.add_many(items)
        acc.predictions += added
        self._count_expired(dropped, "capacity")
        self._count_expired(self.join.advance(int(batch.ts_ms.max())), "ttl")

    def _count_expired(self, gone: list[Pending], reason: str) -> None:
        if not gone:
            return
        self.expired[reason] += len(gone)
        for p in gone:
            acc = self.perf_panes.get((p.version, p.pane_start))
            if acc is not None:
                acc.expired += 1

    # -- window close -----------------------------------------------------------------------------

    def on_close(self, report: WindowReport, start_ms: int, now: datetime,
                 reference: ReferenceProfile | None) -> list[AlertEvent]:
        """Write operations, quality and (provisional) performance to the report; judge what is final."""
        version = report.model_version
        keys = [(version, p) for p in range(start_ms, start_ms + self.size_ms, self.slide_ms)]
        ops = merged_into([self.ops_panes[k] for k in keys if k in self.ops_panes],
                          OperationsAccumulator(self.config.llm))
        report.operations.update(ops.metrics(self.llm_baseline))
        self._change_points(version, ops, report)
        if ops.llm.n and self.llm_baseline_windows < self.config.llm.baseline_windows:
            self.llm_baseline = merged_into([ops], self.llm_baseline or OperationsAccumulator(self.config.llm))
            self.llm_baseline_windows += 1
        contracts = self.contracts(reference)
        if contracts:
            q = merged_into([self.quality_panes[k] for k in keys if k in self.quality_panes], QualityAccumulator())
            report.quality.update(q.metrics(contracts))
            report.quality.update({f"rows.{n}": float(row[0]) for n, row in q.counts.items()})
        rules = self.rules(reference)
        alerts = self.policy.evaluate(self.config, report, verdicts(rules, report, SOURCE_OPERATIONS)
                                      + verdicts(rules, report, SOURCE_QUALITY), now)
        self.ops_panes.pop((version, start_ms), None)
        self.quality_panes.pop((version, start_ms), None)
        perf = self.config.performance
        if perf is not None:
            rw = self.windows[(version, start_ms)] = RetainedWindow(report, start_ms, start_ms + self.size_ms)
            self._refresh(rw, now)
            if self._coverage(rw) >= perf.min_label_coverage:
                alerts += self._settle(rw, now, reference)
            alerts += self._retire(now, reference)
        return alerts

    def _change_points(self, version: str, ops: OperationsAccumulator, report: WindowReport) -> None:
        """A prompt or index version new in this window: its requests against those of the versions before."""
        prev = self.last_llm.get(version)
        cur = ops.versions
        if cur:
            self.last_llm[version] = dict(cur)
        if not prev or not cur:
            return
        new = sorted(set(cur) - set(prev) - {OTHER_VERSION})
        if not new:
            return
        old = sorted(set(prev) - set(new))
        before = merged_into([prev[k] for k in old] + [cur[k] for k in cur if k not in new and k in old], LLMStats())
        after = merged_into([cur[k] for k in new], LLMStats())
        if not before.n or not after.n:
            return
        parts_old = [k.split("|") for k in old if k != OTHER_VERSION]
        parts_new = [k.split("|") for k in new]
        changed = []
        if {p[0] for p in parts_old} != {p[0] for p in parts_new}:
            changed.append("llm.prompt_version")
        if {p[1] for p in parts_old} != {p[1] for p in parts_new}:
            changed.append("llm.index_version")
        cp = change_point(before, after)
        report.change_points.append({"field": " + ".join(changed) or "llm.version", "from": old, "to": new, **cp})
        report.operations.update({k: v for k, v in cp.items() if k.startswith("change.")})
        report.operations["change.n_before"], report.operations["change.n_after"] = cp["n_before"], cp["n_after"]

    # -- labels -----------------------------------------------------------------------------------

    def add_labels(self, labels: Sequence[tuple[str, object, int]], now: datetime,
                   reference: ReferenceProfile | None) -> tuple[list[WindowReport], list[AlertEvent]]:
        """Join (event_id, label, label time ms) rows; returns the retained windows that changed, and alerts."""
        perf = self.config.performance
        if self.join is None or perf is None or not labels:
            self.unmatched += len(labels)
            return [], []
        by_pane: dict[PaneKey, list[tuple[Pending, object, int]]] = {}
        for event_id, label, ts_ms in labels:
            p = self.join.take(event_id)
            if p is None or (p.version, p.pane_start) not in self.perf_panes:
                self.unmatched += 1
                continue
            by_pane.setdefault((p.version, p.pane_start), []).append((p, label, ts_ms))
        for key, rows in by_pane.items():
            self.perf_panes[key].add(perf, rows)
            self.joined += len(rows)
        self._count_expired(self.join.advance(max(t for _, _, t in labels)), "ttl")
        touched = sorted(by_pane)
        changed: list[WindowReport] = []
        alerts: list[AlertEvent] = []
        for (version, start), rw in sorted(self.windows.items()):
            if not any(v == version and start <= p < start + self.size_ms for v, p in touched):
                continue
            self._refresh(rw, now)
            changed.append(rw.report)
            if not rw.settled and self._coverage(rw) >= perf.min_label_coverage:
                alerts += self._settle(rw, now, reference)
            elif rw.settled:
                rules = self.rules(reference)
                alerts += self.policy.evaluate(self.config, rw.report, verdicts(rules, rw.report, SOURCE_PERFORMANCE),
                                               now, escalate_only=True, published=rw.published)
        alerts += self._retire(now, reference)
        return changed, alerts

    def _window_acc(self, rw: RetainedWindow) -> PerformanceAccumulator:
        assert self.config.performance is not None
        version = rw.report.model_version
        parts = [self.perf_panes[(version, p)] for p in range(rw.start_ms, rw.end_ms, self.slide_ms)
                 if (version, p) in self.perf_panes]
        return merged_into(parts, PerformanceAccumulator(self.config.performance))

    def _coverage(self, rw: RetainedWindow) -> float:
        return rw.report.performance.get("label_coverage", 0.0)

    def _refresh(self, rw: RetainedWindow, now: datetime) -> None:
        perf = self.config.performance
        assert perf is not None
        acc = self._window_acc(rw)
        m = acc.metrics(self.baseline)
        m["provisional"] = 0.0 if acc.coverage >= perf.min_label_coverage else 1.0
        if acc.newest_label_ms is not None:
            m["newest_label_age_seconds"] = max(0.0, now.timestamp() - acc.newest_label_ms / 1000.0)
        base = dict(self.baseline.metrics() if self.baseline is not None else {})
        base.update(perf.baseline)
        for name in PERFORMANCE_METRICS:
            if name != "label_coverage" and name in m and name in base:
                m[f"baseline.{name}"] = base[name]
                m[f"delta.{name}"] = m[name] - base[name]
        rw.report.performance.clear()
        rw.report.performance.update(m)

    def _settle(self, rw: RetainedWindow, now: datetime, reference: ReferenceProfile | None) -> list[AlertEvent]:
        perf = self.config.performance
        assert perf is not None
        rw.settled = True
        current = self.last_settled.get(rw.report.model_version)
        if current is None or current.window_start <= rw.report.window_start:
            self.last_settled[rw.report.model_version] = rw.report
        if self.baseline_windows < perf.baseline_windows:
            self.baseline = merged_into([self._window_acc(rw)], self.baseline or PerformanceAccumulator(perf))
            self.baseline_windows += 1
            self._refresh(rw, now)
        rules = self.rules(reference)
        return self.policy.evaluate(self.config, rw.report, verdicts(rules, rw.report, SOURCE_PERFORMANCE), now,
                                    published=rw.published)

    def _retire(self, now: datetime, reference: ReferenceProfile | None, everything: bool = False) -> list[AlertEvent]:
        """Settle and drop windows whose labels can no longer arrive, or beyond the retention cap."""
        perf = self.config.performance
        if perf is None or self.join is None:
            return []
        clock = self.join.clock_ms
        ttl = self.join.ttl_ms
        per_version = Counter(v for v, _ in self.windows)
        alerts: list[AlertEvent] = []
        for key in sorted(self.windows, key=lambda k: (k[1], k[0])):
            rw = self.windows[key]
            expired = clock is not None and rw.end_ms + ttl <= clock
            over = per_version[key[0]] > perf.label_window_retention
            if not (everything or expired or over):
                continue
            if not rw.settled:
                alerts += self._settle(rw, now, reference)
            del self.windows[key]
            per_version[key[0]] -= 1
            self.perf_panes.pop(key, None)
        return alerts

    def finish(self, now: datetime, reference: ReferenceProfile | None) -> list[AlertEvent]:
        """End of a finite input: every retained window is final."""
        return self._retire(now, reference, everything=True)

    def collect(self) -> tuple[int, int, Counter[str]]:
        """(joined, unmatched, expired by reason) since the last call."""
        out = (self.joined, self.unmatched, self.expired)
        self.joined, self.unmatched, self.expired = 0, 0, Counter()
        return out

    @property
    def pending(self) -> int:
        return len(self.join) if self.join is not None else 0

    # -- snapshot ---------------------------------------------------------------------------------

    def empty(self) -> ModelOutcomes:
        """A fresh tracker for the same model (what an instance holds for a model it does not own)."""
        return ModelOutcomes(self.config, self.kinds, self.size_ms, self.slide_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "join": self.join.to_dict() if self.join is not None else None,
            "perf_panes": [[v, s, a.to_dict()] for (v, s), a in sorted(self.perf_panes.items())],
            "ops_panes": [[v, s, a.to_dict()] for (v, s), a in sorted(self.ops_panes.items())],
            "quality_panes": [[v, s, a.to_dict()] for (v, s), a in sorted(self.quality_panes.items())],
            "windows": [[v, s, _report_out(rw)] for (v, s), rw in sorted(self.windows.items())],
            "baseline": self.baseline.to_dict() if self.baseline is not None else None,
            "baseline_windows": self.baseline_windows,
            "llm_baseline": self.llm_baseline.to_dict() if self.llm_baseline is not None else None,
            "llm_baseline_windows": self.llm_baseline_windows,
            "last_llm": {v: {k: s.to_dict() for k, s in d.items()} for v, d in self.last_llm.items()},
            "policy": {v: s.to_dict() for v, s in self.policy.series.items()},
        }

    def restore(self, d: dict[str, Any]) -> None:
        """Put a snapshot back (the configuration's TTL, cap and bins win over the snapshot's)."""
        from stream_monitor.policy.window_policy import WindowSeries

        perf, llm = self.config.performance, self.config.llm
        if perf is not None:
            self.join = (JoinBuffer.from_dict(d["join"], int(perf.label_ttl_seconds * 1000), perf.max_pending_labels)
                         if d.get("join") else JoinBuffer(int(perf.label_ttl_seconds * 1000), perf.max_pending_labels))
            self.perf_panes = {(v, int(s)): PerformanceAccumulator.from_dict(perf, a) for v, s, a in d["perf_panes"]}
            self.baseline = PerformanceAccumulator.from_dict(perf, d["baseline"]) if d.get("baseline") else None
            self.windows = {(v, int(s)): _report_in(self.config.model_id, v, w) for v, s, w in d["windows"]}
        self.baseline_windows = int(d.get("baseline_windows", 0))
        self.ops_panes = {(v, int(s)): OperationsAccumulator.from_dict(llm, a) for v, s, a in d["ops_panes"]}
        self.quality_panes = {(v, int(s)): QualityAccumulator.from_dict(a) for v, s, a in d["quality_panes"]}
        self.llm_baseline = OperationsAccumulator.from_dict(llm, d["llm_baseline"]) if d.get("llm_baseline") else None
        self.llm_baseline_windows = int(d.get("llm_baseline_windows", 0))
        self.last_llm = {v: {k: LLMStats.from_dict(s) for k, s in x.items()} for v, x in d["last_llm"].items()}
        self.policy.series = {v: WindowSeries.from_dict(s) for v, s in d["policy"].items()}


def _report_out(rw: RetainedWindow) -> dict[str, Any]:
    r = rw.report
    return {"start_ms": rw.start_ms, "end_ms": rw.end_ms, "settled": rw.settled, "published": rw.published,
            "n_events": r.n_events, "role": r.role, "reference_version": r.reference_version,
            "performance": r.performance}


def _report_in(model_id: str, version: str, d: dict[str, Any]) -> RetainedWindow:
    report = WindowReport(model_id=model_id, model_version=version, window_start=from_ms(int(d["start_ms"])),
                          window_end=from_ms(int(d["end_ms"])), n_events=int(d["n_events"]), role=d["role"],
                          reference_version=d["reference_version"], performance=dict(d["performance"]))
    return RetainedWindow(report, int(d["start_ms"]), int(d["end_ms"]), bool(d["settled"]), dict(d["published"]))

"""Per-pane operational signals: inference latency, and the LLM block (tokens, cost, guardrail actions, versions).

Why sketches and sums: like the drift sketches they merge, so a sliding window, a
restart and a replay all give the same window. Latency quantiles come from a KLL
sketch (rank error of the estimate <= ``QuantileSketch.rank_error()``, 0.68% at
k=400, 99% confidence); means, rates and cost per request are exact sums.

LLM traffic is also kept per (prompt version, index version) pair, capped at
``llm.max_versions`` pairs per pane (the rest fold into ``other``), so that a
version change can be judged as a change point: the new version's token and
refusal distributions against the version it replaced (see the tracker).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from stream_monitor.config_outcomes import LLMConfig
from stream_monitor.sketches import CategoryCounts, QuantileSketch
from stream_monitor.sketches.categorical import OTHER
from stream_monitor.stats.binned import psi
from stream_monitor.stats.quantile import ks_from_sketches

OTHER_VERSION = "other"


def version_key(llm: Any) -> str:
    """'prompt|index' of an llm block ('-' for a missing part)."""
    return f"{llm.prompt_version or '-'}|{llm.index_version or '-'}"


class LLMStats:
    """Counts, sums and token sketches of a set of LLM requests (a pane, or one version in it)."""

    def __init__(self) -> None:
        self.n = 0
        self.refusals = 0
        self.tokens_in = QuantileSketch()
        self.tokens_out = QuantileSketch()
        self.tin_sum = self.tout_sum = self.cost_sum = 0.0
        self.cost_n = 0

    def observe(self, rows: Sequence[Any], refusal: frozenset[str]) -> None:
        self.n += len(rows)
        tin = np.array([r.tokens_in for r in rows if r.tokens_in is not None], dtype=np.float64)
        tout = np.array([r.tokens_out for r in rows if r.tokens_out is not None], dtype=np.float64)
        cost = [r.cost_usd for r in rows if r.cost_usd is not None]
        self.tokens_in.update(tin)
        self.tokens_out.update(tout)
        self.tin_sum += float(tin.sum())
        self.tout_sum += float(tout.sum())
        self.cost_sum += float(sum(cost))
        self.cost_n += len(cost)
        self.refusals += sum(1 for r in rows if r.guardrail_action in refusal)

    def merge(self, other: LLMStats) -> None:
        self.n += other.n
        self.refusals += other.refusals
        self.tokens_in.merge(other.tokens_in)
        self.tokens_out.merge(other.tokens_out)
        self.tin_sum += other.tin_sum
        self.tout_sum += other.tout_sum
        self.cost_sum += other.cost_sum
        self.cost_n += other.cost_n

    def means(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.n:
            out["refusal_rate"] = self.refusals / self.n
        if self.tokens_in.n:
            out["tokens_in_mean"] = self.tin_sum / self.tokens_in.n
        if self.tokens_out.n:
            out["tokens_out_mean"] = self.tout_sum / self.tokens_out.n
        if self.cost_n:
            out["cost_per_request_usd"] = self.cost_sum / self.cost_n
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "refusals": self.refusals, "tokens_in": self.tokens_in.to_dict(),
                "tokens_out": self.tokens_out.to_dict(), "tin_sum": self.tin_sum, "tout_sum": self.tout_sum,
                "cost_sum": self.cost_sum, "cost_n": self.cost_n}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LLMStats:
        s = cls()
        s.n, s.refusals, s.cost_n = int(d["n"]), int(d["refusals"]), int(d["cost_n"])
        s.tokens_in, s.tokens_out = QuantileSketch.from_dict(d["tokens_in"]), QuantileSketch.from_dict(d["tokens_out"])
        s.tin_sum, s.tout_sum, s.cost_sum = float(d["tin_sum"]), float(d["tout_sum"]), float(d["cost_sum"])
        return s


class OperationsAccumulator:
    """Latency and LLM signals of one pane (or a window, after merging)."""

    def __init__(self, config: LLMConfig) -> None:
        self.max_versions = config.max_versions
        self.latency = QuantileSketch()
        self.latency_sum = 0.0
        self.llm = LLMStats()
        self.actions = CategoryCounts(config.max_actions)
        self.versions: dict[str, LLMStats] = {}

    def observe(self, config: LLMConfig, latency: np.ndarray | None, llm: Sequence[Any] | None) -> None:
        if latency is not None:
            present = latency[~np.isnan(latency)]
            self.latency.update(present)
            self.latency_sum += float(present.sum())
        if llm is None:
            return
        rows = [x for x in llm if x is not None]
        if not rows:
            return
        refusal = frozenset(config.refusal_actions)
        self.llm.observe(rows, refusal)
        actions = [r.guardrail_action for r in rows]
        present_actions = [a for a in actions if a is not None]
        self.actions.missing += len(actions) - len(present_actions)
        self.actions.update(present_actions)
        by_version: dict[str, list[Any]] = {}
        for r in rows:
            by_version.setdefault(version_key(r), []).append(r)
        for key, part in by_version.items():
            self._version(key).observe(part, refusal)

    def _version(self, key: str) -> LLMStats:
        if key not in self.versions and len(self.versions) >= self.max_versions:
            key = OTHER_VERSION
        return self.versions.setdefault(key, LLMStats())

    def merge(self, other: OperationsAccumulator) -> None:
        self.latency.merge(other.latency)
        self.latency_sum += other.latency_sum
        self.llm.merge(other.llm)
        self.actions.merge(other.actions)
        for key, stats in other.versions.items():
            self._version(key).merge(stats)

    def metrics(self, baseline: OperationsAccumulator | None = None) -> dict[str, float]:
        """Latency quantiles and mean, LLM token, cost and refusal figures, drift against the LLM baseline."""
        out: dict[str, float] = {}
        if self.latency.n:
            p50, p95, p99 = self.latency.quantiles([0.5, 0.95, 0.99])
            out.update(latency_p50_ms=float(p50), latency_p95_ms=float(p95), latency_p99_ms=float(p99),
                       latency_mean_ms=self.latency_sum / self.latency.n, latency_count=float(self.latency.n))
        llm = self.llm
        if not llm.n:
            return out
        out["llm_requests"] = float(llm.n)
        out.update(llm.means())
        if "tokens_out_mean" in out:
            out["response_length_mean"] = out["tokens_out_mean"]
            out["tokens_out_p95"] = float(llm.tokens_out.quantiles([0.95])[0])
        if llm.tokens_in.n:
            out["tokens_in_p95"] = float(llm.tokens_in.quantiles([0.95])[0])
        if llm.cost_n:
            out["cost_total_usd"] = llm.cost_sum
        for action, count in self.actions.counts.items():
            out[f"guardrail_rate.{'other' if action == OTHER else action}"] = count / llm.n
        if baseline is not None and baseline.llm.n:
            base = baseline.llm
            if base.tokens_in.n and llm.tokens_in.n:
                out["tokens_in_ks"] = ks_from_sketches(base.tokens_in, llm.tokens_in)[0]
            if base.tokens_out.n and llm.tokens_out.n:
                out["tokens_out_ks"] = ks_from_sketches(base.tokens_out, llm.tokens_out)[0]
            cats = sorted(k for k in baseline.actions.counts if k != OTHER)
            if cats and self.actions.n:
                out["guardrail_psi"] = psi(np.asarray(baseline.actions.vector(cats), dtype=np.float64),
                                           np.asarray(self.actions.vector(cats), dtype=np.float64))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"latency": self.latency.to_dict(), "latency_sum": self.latency_sum, "llm": self.llm.to_dict(),
                "actions": self.actions.to_dict(), "versions": {k: v.to_dict() for k, v in self.versions.items()}}

    @classmethod
    def from_dict(cls, config: LLMConfig, d: dict[str, Any]) -> OperationsAccumulator:
        acc = cls(config)
        acc.latency = QuantileSketch.from_dict(d["latency"])
        acc.latency_sum = float(d["latency_sum"])
        acc.llm = LLMStats.from_dict(d["llm"])
        acc.actions = CategoryCounts.from_dict(d["actions"])
        acc.versions = {k: LLMStats.from_dict(v) for k, v in d["versions"].items()}
        return acc


def change_point(before: LLMStats, after: LLMStats) -> dict[str, float]:
    """Metrics of the requests after a prompt/index version change against those before it."""
    out: dict[str, float] = {"n_before": float(before.n), "n_after": float(after.n)}
    if before.tokens_in.n and after.tokens_in.n:
        out["change.tokens_in_ks"] = ks_from_sketches(before.tokens_in, after.tokens_in)[0]
    if before.tokens_out.n and after.tokens_out.n:
        out["change.tokens_out_ks"] = ks_from_sketches(before.tokens_out, after.tokens_out)[0]
        mb, ma = before.tout_sum / before.tokens_out.n, after.tout_sum / after.tokens_out.n
        out["tokens_out_mean_before"], out["tokens_out_mean_after"] = mb, ma
        if mb > 0:
            out["change.tokens_out_mean_ratio"] = ma / mb
    if before.n and after.n:
        rb, ra = before.refusals / before.n, after.refusals / after.n
        out["refusal_rate_before"], out["refusal_rate_after"] = rb, ra
        out["change.refusal_rate_delta"] = ra - rb
    return out

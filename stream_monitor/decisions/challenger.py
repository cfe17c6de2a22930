"""Champion / challenger: pair two versions' predictions of the same request with its label, then judge.

The pairing convention (no contract change): a shadow deployment publishes the
challenger's prediction of a request as an ordinary prediction event with the
**same ``event_id``** and its own ``model_version``. The buffer keys pending requests
by ``event_id``; once a request has predictions from two versions and its label
(from the label topic, in any order), one *pair* is complete: per-request quality of
each version (correctness, log-loss, Brier, absolute error), latency and cost.

Memory is bounded twice: at most ``max_pending`` requests wait for a partner or a
label (the oldest are dropped first, and counted), and at most ``max_samples``
complete pairs are kept per version pair (the newest).

The verdict (:func:`judge`) is ``promote`` only when the lower bound of the quality
difference (the more conservative of the bootstrap and paired-t intervals) exceeds
the margin, with enough pairs, and latency / cost increases stay within their limits
at the upper bound of their intervals; otherwise ``hold``, with all the numbers.
"""
from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_monitor.decisions.config import ChampionChallengerConfig
from stream_monitor.decisions.paired import PairedComparison, compare_paired

Label = float | str | bool
_EPS = 1e-15


@dataclass(frozen=True)
class Answer:
    """One version's answer to one request."""

    score: float | None = None
    class_: str | None = None
    value: float | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None


@dataclass
class _Pending:
    answers: dict[str, Answer] = field(default_factory=dict)
    label: Label | None = None
    has_label: bool = False


@dataclass(frozen=True)
class PairSample:
    """Per-request figures of one complete pair (a = first version of the sorted pair, b = second)."""

    quality_a: float
    quality_b: float
    latency_a: float
    latency_b: float
    cost_a: float
    cost_b: float


def _binary(label: Label, positive: str) -> float | None:
    if isinstance(label, bool):
        return 1.0 if label else 0.0
    if isinstance(label, int | float):
        return float(label) if label in (0, 1) else None
    return 1.0 if label == positive else 0.0


def label_text(label: Label) -> str:
    """A label as the class string a prediction would carry: bools as 'true'/'false', 1.0 as '1'."""
    if isinstance(label, bool):
        return "true" if label else "false"
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label)


def quality(metric: str, answer: Answer, label: Label, cfg: ChampionChallengerConfig) -> float | None:
    """Per-request quality, oriented so that higher is better (losses are negated); None if not computable."""
    if metric == "accuracy":
        if answer.class_ is not None:
            return 1.0 if answer.class_ == label_text(label) else 0.0
        y = _binary(label, cfg.positive_label)
        if answer.score is None or y is None:
            return None
        return 1.0 if (answer.score >= cfg.score_threshold) == (y == 1.0) else 0.0
    if metric in ("log_loss", "brier"):
        y = _binary(label, cfg.positive_label)
        if answer.score is None or y is None:
            return None
        p = min(max(answer.score, _EPS), 1 - _EPS)
        if metric == "brier":
            return -((p - y) ** 2)
        return y * math.log(p) + (1 - y) * math.log(1 - p)  # = -log_loss
    if metric == "abs_error":
        if answer.value is None or isinstance(label, str | bool):
            return None
        return -abs(answer.value - float(label))
    raise ValueError(f"unknown paired metric {metric!r}")


class ShadowPairs:
    """The pairing buffer and the complete pairs of one model."""

    def __init__(self, cfg: ChampionChallengerConfig) -> None:
        self.cfg = cfg
        self.pending: OrderedDict[str, _Pending] = OrderedDict()
        self.pairs: dict[tuple[str, str], deque[PairSample]] = {}
        self.dropped = 0
        self.incomplete = 0  # pairs whose quality could not be computed (no score for log-loss, ...)

    def observe(self, event_id: str, version: str, answer: Answer) -> None:
        entry = self.pending.get(event_id)
        if entry is None:
            entry = self.pending[event_id] = _Pending()
            self._bound()
        entry.answers[version] = answer
        self._complete(event_id, entry)

    def observe_label(self, event_id: str, label: Label) -> None:
        entry = self.pending.get(event_id)
        if entry is None:
            entry = self.pending[event_id] = _Pending()
            self._bound()
        entry.label, entry.has_label = label, True
        self._complete(event_id, entry)

    def _bound(self) -> None:
        while len(self.pending) > self.cfg.max_pending:
            self.pending.popitem(last=False)
            self.dropped += 1

    def _complete(self, event_id: str, entry: _Pending) -> None:
        if not entry.has_label or len(entry.answers) < 2 or entry.label is None:
            return
        del self.pending[event_id]
        versions = sorted(entry.answers)
        for i, a in enumerate(versions):
            for b in versions[i + 1:]:
                self._add(a, b, entry.answers[a], entry.answers[b], entry.label)

    def _add(self, a: str, b: str, ans_a: Answer, ans_b: Answer, label: Label) -> None:
        qa = quality(self.cfg.metric, ans_a, label, self.cfg)
        qb = quality(self.cfg.metric, ans_b, label, self.cfg)
        if qa is None or qb is None:
            self.incomplete += 1
            return
        nan = math.nan
        sample = PairSample(
            qa, qb,
            ans_a.latency_ms if ans_a.latency_ms is not None else nan,
            ans_b.latency_ms if ans_b.latency_ms is not None else nan,
            ans_a.cost_usd if ans_a.cost_usd is not None else nan,
            ans_b.cost_usd if ans_b.cost_usd is not None else nan,
        )
        self.pairs.setdefault((a, b), deque(maxlen=self.cfg.max_samples)).append(sample)

    def versions_paired_with(self, version: str) -> list[str]:
        return sorted({b if a == version else a for a, b in self.pairs if version in (a, b)})

    def samples(self, champion: str, challenger: str) -> tuple[np.ndarray, ...] | None:
        """(quality, latency, cost) of (champion, challenger) as arrays, or None if never paired."""
        a, b = sorted((champion, challenger))
        got = self.pairs.get((a, b))
        if not got:
            return None
        arr = np.array([(s.quality_a, s.quality_b, s.latency_a, s.latency_b, s.cost_a, s.cost_b) for s in got])
        if champion == a:
            return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5]
        return arr[:, 1], arr[:, 0], arr[:, 3], arr[:, 2], arr[:, 5], arr[:, 4]

    # -- checkpoint ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "pending": [[eid, {v: list(_answer_tuple(a)) for v, a in e.answers.items()}, e.label, e.has_label]
                        for eid, e in self.pending.items()],
            "pairs": [[a, b, [list(s.__dict__.values()) for s in d]] for (a, b), d in self.pairs.items()],
            "dropped": self.dropped, "incomplete": self.incomplete,
        }

    def load(self, data: dict[str, Any]) -> None:
        self.pending = OrderedDict()
        for eid, answers, label, has_label in data.get("pending", []):
            self.pending[eid] = _Pending({v: Answer(*a) for v, a in answers.items()}, label, has_label)
        self.pairs = {(a, b): deque((PairSample(*s) for s in samples), maxlen=self.cfg.max_samples)
                      for a, b, samples in data.get("pairs", [])}
        self.dropped = int(data.get("dropped", 0))
        self.incomplete = int(data.get("incomplete", 0))


def _answer_tuple(a: Answer) -> tuple[Any, ...]:
    return (a.score, a.class_, a.value, a.latency_ms, a.cost_usd)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one champion/challenger evaluation."""

    promote: bool
    reason: str
    n: int
    quality: PairedComparison
    latency: PairedComparison | None
    cost: PairedComparison | None
    means: dict[str, float]


def _finite_pairs(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    ok = np.isfinite(x) & np.isfinite(y)
    return (y[ok] - x[ok]) if int(ok.sum()) >= 2 else None


def judge(cfg: ChampionChallengerConfig, champion: str, challenger: str,
          data: tuple[np.ndarray, ...]) -> Verdict | None:
    """Promote or hold for a pair with at least ``min_samples`` labelled pairs; None with fewer."""
    q_champ, q_chal, lat_champ, lat_chal, cost_champ, cost_chal = data
    n = int(q_champ.size)
    if n < cfg.min_samples:
        return None
    seed = cfg.seed
    quality_cmp = compare_paired(q_chal - q_champ, cfg.confidence, cfg.bootstrap_resamples, seed)
    lat_d = _finite_pairs(lat_champ, lat_chal)
    cost_d = _finite_pairs(cost_champ, cost_chal)
    latency_cmp = compare_paired(lat_d, cfg.confidence, cfg.bootstrap_resamples, seed) if lat_d is not None else None
    cost_cmp = compare_paired(cost_d, cfg.confidence, cfg.bootstrap_resamples, seed) if cost_d is not None else None
    sign = -1.0 if cfg.metric != "accuracy" else 1.0  # report losses as losses
    means = {f"{cfg.metric}.champion": sign * float(q_champ.mean()),
             f"{cfg.metric}.challenger": sign * float(q_chal.mean())}
    if lat_d is not None:
        means.update({"latency_ms.champion": float(np.nanmean(lat_champ)),
                      "latency_ms.challenger": float(np.nanmean(lat_chal))})
    if cost_d is not None:
        means.update({"cost_usd.champion": float(np.nanmean(cost_champ)),
                      "cost_usd.challenger": float(np.nanmean(cost_chal))})
    est, low = quality_cmp.t.estimate, quality_cmp.lower
    conf = f"{cfg.confidence:.0%}"
    problems = []
    if low <= cfg.margin:
        problems.append(f"{cfg.metric} gain {est:+.4f} (lower {conf} bound {low:+.4f}) does not exceed the "
                        f"margin {cfg.margin:g}")
    if cfg.max_latency_increase_ms is not None:
        if latency_cmp is None:
            problems.append("latency unknown for the pairs (latency_ms missing)")
        elif latency_cmp.upper > cfg.max_latency_increase_ms:
            problems.append(f"latency increase up to {latency_cmp.upper:.2f} ms exceeds "
                            f"{cfg.max_latency_increase_ms:g} ms")
    if cfg.max_cost_increase_usd is not None:
        if cost_cmp is None:
            problems.append("cost unknown for the pairs (llm.cost_usd missing)")
        elif cost_cmp.upper > cfg.max_cost_increase_usd:
            problems.append(f"cost increase up to {cost_cmp.upper:.6f} USD exceeds {cfg.max_cost_increase_usd:g}")
    if problems:
        reason = f"hold {champion}: challenger {challenger} on {n} labelled pairs: " + "; ".join(problems)
        return Verdict(False, reason, n, quality_cmp, latency_cmp, cost_cmp, means)
    reason = (f"promote {challenger} over {champion}: {cfg.metric} gain {est:+.4f}, {conf} interval "
              f"[{low:+.4f}, {quality_cmp.upper:+.4f}] above the margin {cfg.margin:g} on {n} labelled pairs")
    return Verdict(True, reason, n, quality_cmp, latency_cmp, cost_cmp, means)

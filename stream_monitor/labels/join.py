"""The join buffer: predictions waiting for their label, bounded in time and in entries.

Why bounded twice: labels arrive minutes to days after the prediction and some never
do. An unbounded map would grow with every unlabelled request until the process
dies. So each waiting prediction has a time to live in *event time* (the newest
prediction or label time seen for the model, so a replay and a live run agree) and
the map has a hard cap on entries. Whatever leaves without a label is counted by
reason (``ttl``: waited its full TTL; ``capacity``: pushed out by the cap, oldest
first), never dropped silently.

Entries are kept in arrival order (an ``OrderedDict``), which is event-time order up
to the stream's disorder; expiry walks from the oldest end and stops at the first
entry still within its TTL, so an entry can outlive its TTL by at most that disorder.
Measured memory: about 400 bytes per waiting prediction (event id of ~30 characters
included; ``tests/labels/test_join_buffer.py``).
"""
from __future__ import annotations

import math
from collections import Counter, OrderedDict
from typing import Any, NamedTuple

REASONS = ("ttl", "capacity")


class Pending(NamedTuple):
    """What the join needs of one prediction: where it was counted and what it said."""

    version: str
    pane_start: int
    ts_ms: int
    score: float  # NaN when the prediction had no score
    cls: str | None
    value: float  # NaN when the prediction had no value


def normalise_label(label: object) -> str:
    """One spelling per class: bools and integral numbers as '1'/'0'/'3', other numbers and strings as is.

    Why: producers send ``true``, ``1``, ``1.0`` or ``"1"`` for the same class; the
    comparison with ``positive_class`` and with ``prediction.class`` must not depend on that.
    """
    if isinstance(label, bool):
        return "1" if label else "0"
    if isinstance(label, int | float):
        x = float(label)
        return str(int(x)) if math.isfinite(x) and x.is_integer() else repr(x)
    return str(label)


class JoinBuffer:
    """Bounded map event_id -> :class:`Pending`, with TTL by event time and a max-entries cap."""

    def __init__(self, ttl_ms: int, max_entries: int) -> None:
        if ttl_ms <= 0:
            raise ValueError(f"ttl_ms must be > 0, got {ttl_ms}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.ttl_ms = ttl_ms
        self.max_entries = max_entries
        #: Values are plain tuples in :class:`Pending`'s field order (cheaper to build than the named tuple).
        self._entries: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self.clock_ms: int | None = None
        self.evicted: Counter[str] = Counter()
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._entries

    def add(self, event_id: str, pending: Pending) -> list[Pending]:
        """Hold a prediction; returns the entries the cap pushed out (oldest first). A repeated id is ignored."""
        entries = self._entries
        if event_id in entries:
            self.duplicates += 1
            return []
        entries[event_id] = pending
        return self._over_cap()

    def _over_cap(self) -> list[Pending]:
        entries = self._entries
        dropped: list[Pending] = []
        while len(entries) > self.max_entries:
            dropped.append(Pending._make(entries.popitem(last=False)[1]))
        if dropped:
            self.evicted["capacity"] += len(dropped)
        return dropped

    def add_many(self, items: list[tuple[str, tuple[Any, ...]]]) -> tuple[int, list[Pending]]:
        """:meth:`add` for a batch of (event_id, fields of Pending as a plain tuple), with C-level dict
        operations: (entries added, entries the cap pushed out)."""
        entries = self._entries
        fresh = [item for item in items if item[0] not in entries]
        before = len(entries)
        entries.update(fresh)
        added = len(entries) - before
        self.duplicates += len(items) - added
        return added, self._over_cap()

    def take(self, event_id: str) -> Pending | None:
        """The prediction of ``event_id``, removed from the buffer; None if unknown, expired or already joined."""
        found = self._entries.pop(event_id, None)
        return Pending._make(found) if found is not None else None

    def advance(self, ts_ms: int) -> list[Pending]:
        """Move the event-time clock to ``ts_ms`` (never back) and expire what waited longer than the TTL."""
        if self.clock_ms is not None and ts_ms <= self.clock_ms:
            return []
        self.clock_ms = ts_ms
        cutoff = ts_ms - self.ttl_ms
        entries = self._entries
        expired: list[Pending] = []
        while entries:
            first = next(iter(entries.values()))
            if first[2] >= cutoff:  # ts_ms
                break
            expired.append(Pending._make(entries.popitem(last=False)[1]))
        if expired:
            self.evicted["ttl"] += len(expired)
        return expired

    # -- snapshot -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Columnar, versions dictionary-encoded: a checkpoint of 10^5 waiting predictions stays a few MB."""
        versions: dict[str, int] = {}
        rows = [(k, Pending._make(v)) for k, v in self._entries.items()]
        return {
            "ttl_ms": self.ttl_ms, "max_entries": self.max_entries, "clock_ms": self.clock_ms,
            "evicted": dict(self.evicted), "duplicates": self.duplicates,
            "ids": [k for k, _ in rows],
            "version": [versions.setdefault(p.version, len(versions)) for _, p in rows],
            "versions": list(versions),
            "pane": [p.pane_start for _, p in rows], "ts": [p.ts_ms for _, p in rows],
            "score": [None if p.score != p.score else p.score for _, p in rows],
            "cls": [p.cls for _, p in rows],
            "value": [None if p.value != p.value else p.value for _, p in rows],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], ttl_ms: int | None = None, max_entries: int | None = None) -> JoinBuffer:
        """Restore; the configured TTL and cap (when given) win over the snapshot's."""
        buf = cls(ttl_ms or int(d["ttl_ms"]), max_entries or int(d["max_entries"]))
        buf.clock_ms = d.get("clock_ms")
        buf.evicted = Counter({str(k): int(v) for k, v in d.get("evicted", {}).items()})
        buf.duplicates = int(d.get("duplicates", 0))
        names = d["versions"]
        nan = float("nan")
        for i, event_id in enumerate(d["ids"]):
            score, value = d["score"][i], d["value"][i]
            buf._entries[event_id] = Pending(names[d["version"][i]], int(d["pane"][i]), int(d["ts"][i]),
                                             nan if score is None else float(score), d["cls"][i],
                                             nan if value is None else float(value))
        while len(buf._entries) > buf.max_entries:
            buf._entries.popitem(last=False)
            buf.evicted["capacity"] += 1
        return buf

"""Category frequencies with a hard cap: tracked categories are counted exactly, the rest fold into OTHER."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from stream_monitor.sketches import _codec
from stream_monitor.sketches.distinct import DEFAULT_LG_K, DistinctCount

OTHER = "__other__"


class CategoryCounts:
    """Exact counts for up to ``max_categories`` values plus one OTHER bucket, and a distinct-count estimate.

    The reference profile fixes which categories are tracked (``known``); a window
    counts those and folds everything else into OTHER, so a brand-new category
    shows up as mass in OTHER (:attr:`new_category_count`, ``new_category_rate``)
    rather than as unbounded state, and as a rise in :attr:`distinct`.

    Exactness: with ``known`` set (every window once a reference exists), or while
    no more than ``max_categories`` distinct values have been seen, counts are exact
    and merging the sketches of two halves of a stream gives exactly the sketch of
    the whole. Without ``known`` and beyond the cap (building a reference), the
    top-k fold is a heuristic: a category folded early and seen again later restarts
    from zero, so kept counts are lower bounds; the reference build keeps 10x the
    cap for that reason.
    """

    def __init__(self, max_categories: int = 50, known: list[str] | None = None, *,
                 distinct_lg_k: int = DEFAULT_LG_K) -> None:
        if max_categories < 1:
            raise ValueError(f"max_categories must be >= 1, got {max_categories}")
        self.max_categories = max_categories
        self.known: list[str] | None = list(known) if known is not None else None
        self.counts: Counter[str] = Counter()
        self.missing = 0
        self.distinct: DistinctCount | None = DistinctCount(distinct_lg_k)

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    @property
    def new_category_count(self) -> int:
        """Values outside the tracked categories (all of OTHER). Without ``known`` there is no "new": 0."""
        return self.counts.get(OTHER, 0) if self.known is not None else 0

    def update(self, values: Iterable[str]) -> None:
        self.update_counts(Counter(values))

    def update_counts(self, batch: Counter[str]) -> None:
        """Add a batch already counted (keys in order of first appearance, as ``Counter(values)`` keeps them).

        The HLL takes each distinct value once, in that order, which leaves it in exactly
        the state feeding every value would: a repeat never changes an HLL.
        """
        self.counts.update(batch)
        if self.distinct is not None:
            self.distinct.update(batch.keys())
        self._fold()

    def _fold(self) -> None:
        keep = set(self.known) if self.known is not None else None
        if keep is None and len(self.counts) <= self.max_categories + (OTHER in self.counts):
            return
        if keep is None:
            ranked = [k for k, _ in self.counts.most_common() if k != OTHER]
            keep = set(ranked[: self.max_categories])
        extra = [k for k in self.counts if k not in keep and k != OTHER]
        for k in extra:
            self.counts[OTHER] += self.counts.pop(k)

    def merge(self, other: CategoryCounts) -> None:
        self.counts.update(other.counts)
        self.missing += other.missing
        if self.distinct is not None and other.distinct is not None:
            self.distinct.merge(other.distinct)
        else:
            self.distinct = None
        self._fold()

    def vector(self, categories: list[str]) -> list[int]:
        """Counts in the order of `categories` (the reference's), with everything else in a final OTHER slot."""
        listed = set(categories)
        rest = sum(c for k, c in self.counts.items() if k not in listed)
        return [self.counts.get(k, 0) for k in categories] + [rest]

    def to_bytes(self) -> bytes:
        plain = {"max_categories": self.max_categories, "known": self.known,
                 "counts": {str(k): int(v) for k, v in self.counts.items()}, "missing": self.missing}
        parts = {"counts": orjson.dumps(plain)}
        if self.distinct is not None:
            parts["distinct"] = self.distinct.to_bytes()
        return _codec.pack("categorical", parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> CategoryCounts:
        parts = _codec.unpack(data, "categorical")
        c = cls._from_plain(orjson.loads(parts["counts"]))
        c.distinct = DistinctCount.from_bytes(parts["distinct"]) if "distinct" in parts else None
        return c

    def to_dict(self) -> dict[str, Any]:
        return {"max_categories": self.max_categories, "known": self.known, "counts": dict(self.counts),
                "missing": self.missing, "distinct": self.distinct.to_dict() if self.distinct is not None else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoryCounts:
        c = cls._from_plain(data)
        c.distinct = DistinctCount.from_dict(data["distinct"]) if data.get("distinct") else None
        return c

    @classmethod
    def _from_plain(cls, data: dict[str, Any]) -> CategoryCounts:
        c = cls(int(data["max_categories"]), data.get("known"))
        c.counts = Counter({str(k): int(v) for k, v in data["counts"].items()})
        c.missing = int(data.get("missing", 0))
        return c

"""Category frequencies with a hard cap: the first `max_categories` seen are counted, the rest fold into OTHER."""
from __future__ import annotations

from collections import Counter
from typing import Any

OTHER = "__other__"


class CategoryCounts:
    """Exact counts for up to ``max_categories`` values plus one OTHER bucket: bounded memory, exact merge.

    The reference profile fixes which categories are tracked; a window counts those
    and folds everything else into OTHER, so a brand-new category shows up as mass
    in OTHER (and as ``new_category_rate``) rather than as unbounded state.
    """

    def __init__(self, max_categories: int = 50, known: list[str] | None = None) -> None:
        if max_categories < 1:
            raise ValueError(f"max_categories must be >= 1, got {max_categories}")
        self.max_categories = max_categories
        self.known: list[str] | None = list(known) if known is not None else None
        self.counts: Counter[str] = Counter()
        self.missing = 0

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def update(self, values: list[str]) -> None:
        self.counts.update(values)
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
        self._fold()

    def vector(self, categories: list[str]) -> list[int]:
        """Counts in the order of `categories` (the reference's), with everything else in a final OTHER slot."""
        listed = set(categories)
        rest = sum(c for k, c in self.counts.items() if k not in listed)
        return [self.counts.get(k, 0) for k in categories] + [rest]

    def to_dict(self) -> dict[str, Any]:
        return {"max_categories": self.max_categories, "known": self.known, "counts": dict(self.counts),
                "missing": self.missing}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoryCounts:
        c = cls(int(data["max_categories"]), data.get("known"))
        c.counts = Counter({str(k): int(v) for k, v in data["counts"].items()})
        c.missing = int(data.get("missing", 0))
        return c

"""Versioned reference profiles: what "no drift" looks like for one model.

A profile is one JSON file holding, per feature, the bin edges and counts (numeric:
quantile edges; categorical: the tracked categories), a KLL sketch for KS and
Wasserstein, and moments, plus metadata: profile id, content hash, source, row
count, time span, creation time and the stream-monitor version. The profile id is
``<model_id>-<first 12 hex of the content hash>``; alerts carry it as
``reference_version``, so every alert names exactly what it was compared with.
Loading recomputes the hash and refuses a file that was edited by hand.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from stream_monitor import __version__
from stream_monitor.errors import ProfileError
from stream_monitor.sketches import CategoryCounts, NumericSketch, QuantileSketch
from stream_monitor.sketches.categorical import OTHER

PROFILE_FORMAT = "stream-monitor/reference-profile"
PROFILE_FORMAT_VERSION = 1


@dataclass
class NumericReference:
    edges: np.ndarray
    counts: np.ndarray
    quantiles: QuantileSketch
    n: int
    mean: float
    std: float
    missing: int

    kind = "numeric"

    @property
    def missing_rate(self) -> float:
        total = self.n + self.missing
        return self.missing / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "quantiles": self.quantiles.to_dict(),
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "missing": self.missing,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericReference:
        return cls(
            edges=np.asarray(d["edges"], dtype=np.float64),
            counts=np.asarray(d["counts"], dtype=np.float64),
            quantiles=QuantileSketch.from_dict(d["quantiles"]),
            n=int(d["n"]),
            mean=float(d["mean"]),
            std=float(d["std"]),
            missing=int(d["missing"]),
        )


@dataclass
class CategoricalReference:
    categories: list[str]
    counts: np.ndarray  # len(categories) + 1: the last slot is OTHER
    missing: int

    kind = "categorical"

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def missing_rate(self) -> float:
        total = self.n + self.missing
        return self.missing / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "categorical", "categories": self.categories, "counts": self.counts.tolist(),
                "missing": self.missing}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalReference:
        return cls(categories=list(d["categories"]), counts=np.asarray(d["counts"], dtype=np.float64),
                   missing=int(d["missing"]))


FeatureReference = NumericReference | CategoricalReference


@dataclass
class ReferenceProfile:
    model_id: str
    features: dict[str, FeatureReference]
    source: str
    row_count: int
    time_span: tuple[str | None, str | None]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    stream_monitor_version: str = __version__
    version_basis: str = "content"
    content_hash: str = ""

    @property
    def profile_id(self) -> str:
        """The reference version alerts carry.

        For a profile built from a file it is the content hash. For one built from the
        first windows of the stream it is the hash of that span's identity (model,
        source, rows, time span): the KLL sketches inside use random compaction, so
        two runs over the same stream hold slightly different bytes, yet they are the
        same reference and must give the same alert ids.
        """
        if self.version_basis == "span":
            span = json.dumps([self.model_id, self.source, self.row_count, list(self.time_span)])
            return f"{self.model_id}-s{hashlib.sha256(span.encode()).hexdigest()[:11]}"
        return f"{self.model_id}-{self.content_hash[:12]}"

    def _body(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "format_version": PROFILE_FORMAT_VERSION,
            "model_id": self.model_id,
            "source": self.source,
            "row_count": self.row_count,
            "time_span": list(self.time_span),
            "version_basis": self.version_basis,
            "features": {name: f.to_dict() for name, f in sorted(self.features.items())},
        }

    @staticmethod
    def _hash(body: dict[str, Any]) -> str:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def seal(self) -> ReferenceProfile:
        """Compute the content hash (and so the profile id) from everything else."""
        self.content_hash = self._hash(self._body())
        return self

    def to_dict(self) -> dict[str, Any]:
        body = self._body()  # created_at and the writer's version are metadata, outside the hash
        body["created_at"] = self.created_at
        body["stream_monitor_version"] = self.stream_monitor_version
        body["content_hash"] = self.content_hash
        body["profile_id"] = self.profile_id
        return body

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False))
        return p

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "profile") -> ReferenceProfile:
        if data.get("format") != PROFILE_FORMAT:
            raise ProfileError(f"{source}: not a stream-monitor reference profile (format={data.get('format')!r})")
        if data.get("format_version") != PROFILE_FORMAT_VERSION:
            raise ProfileError(f"{source}: profile format_version {data.get('format_version')} is not supported "
                               f"(this stream-monitor reads {PROFILE_FORMAT_VERSION}); "
                               "rebuild it with `reference build`")
        features: dict[str, FeatureReference] = {}
        for name, fd in data["features"].items():
            kind = NumericReference if fd["kind"] == "numeric" else CategoricalReference
            features[name] = kind.from_dict(fd)
        profile = cls(
            model_id=data["model_id"],
            features=features,
            source=data["source"],
            row_count=int(data["row_count"]),
            time_span=(data["time_span"][0], data["time_span"][1]),
            created_at=data["created_at"],
            stream_monitor_version=data["stream_monitor_version"],
            version_basis=data.get("version_basis", "content"),
        )
        expected = data.get("content_hash", "")
        actual = cls._hash(profile._body())
        if expected != actual:
            raise ProfileError(f"{source}: content hash mismatch (file says {expected[:12] or 'nothing'}, "
                               f"content gives {actual[:12]}); the profile was modified, rebuild it")
        profile.content_hash = actual
        return profile

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except OSError as exc:
            raise ProfileError(f"{p}: cannot read reference profile ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise ProfileError(f"{p}: reference profile is not valid JSON ({exc})") from None
        return cls.from_dict(data, str(p))


def quantile_edges(sketch: QuantileSketch, bins: int) -> np.ndarray:
    """Inner edges at ranks 1/bins .. (bins-1)/bins.

    Repeated values collapse, so a near-constant feature gets fewer bins.
    """
    if sketch.n == 0:
        return np.asarray([0.0])
    edges = np.unique(sketch.quantiles(np.arange(1, bins) / bins))
    return edges[np.isfinite(edges)]


def build_profile(
    model_id: str,
    numeric: dict[str, NumericSketch],
    categorical: dict[str, CategoryCounts],
    *,
    bins: int,
    max_categories: int,
    source: str,
    row_count: int,
    time_span: tuple[str | None, str | None],
    version_basis: str = "content",
) -> ReferenceProfile:
    """Turn the sketches of a reference span into a sealed profile."""
    features: dict[str, FeatureReference] = {}
    for name, s in numeric.items():
        edges = quantile_edges(s.quantiles, bins)
        counts, _ = s.bin_counts(edges)
        features[name] = NumericReference(edges=edges, counts=counts, quantiles=s.quantiles, n=s.n,
                                          mean=s.moments.mean, std=s.moments.std if s.n > 1 else 0.0,
                                          missing=s.missing)
    for name, c in categorical.items():
        ranked = [k for k, _ in c.counts.most_common() if k != OTHER][:max_categories]
        categories = sorted(ranked)
        features[name] = CategoricalReference(categories=categories,
                                              counts=np.asarray(c.vector(categories), dtype=np.float64),
                                              missing=c.missing)
    return ReferenceProfile(model_id=model_id, features=features, source=source, row_count=row_count,
                            time_span=time_span, version_basis=version_basis).seal()

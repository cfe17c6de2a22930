"""Versioned reference profiles: what "no drift" looks like for one model.

A profile is one JSON file holding, per feature, the bin edges and counts (numeric:
quantile edges by default; categorical: the tracked categories), a KLL sketch for
KS and Cramér-von Mises, a t-digest for Wasserstein-1, and moments; for embedding
features the mean, the random-feature map and its mean, and the top principal
components. Plus metadata: profile id, content hash, source, row
count, time span, creation time and the stream-monitor version. The profile id is
``<model_id>-<first 12 hex of the content hash>``; alerts carry it as
``reference_version``, so every alert names exactly what it was compared with.
Loading recomputes the hash and refuses a file that was edited by hand.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from stream_monitor import __version__
from stream_monitor.errors import ProfileError
from stream_monitor.sketches import CategoryCounts, NumericSketch, QuantileSketch
from stream_monitor.sketches.categorical import OTHER
from stream_monitor.sketches.embedding import EmbeddingSketch, EmbeddingSpace, RandomFourierFeatures
from stream_monitor.sketches.histogram import BinningStrategy, make_edges
from stream_monitor.sketches.histogram import quantile_edges as quantile_edges
from stream_monitor.sketches.tdigest import TDigestSketch
from stream_monitor.stats.embedding import PCAReference, top_components

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
    tdigest: TDigestSketch | None = None  # absent in profiles written before W1 moved to t-digests

    kind = "numeric"

    @property
    def missing_rate(self) -> float:
        total = self.n + self.missing
        return self.missing / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {
            "kind": "numeric",
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "quantiles": self.quantiles.to_dict(),
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "missing": self.missing,
        }
        if self.tdigest is not None:  # only when present, so older profiles keep their content hash
            d["tdigest"] = self.tdigest.to_dict()
        return d

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
            tdigest=TDigestSketch.from_dict(d["tdigest"]) if d.get("tdigest") else None,
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


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f8").tobytes()).decode()


def _unb64(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").astype(np.float64)


@dataclass
class EmbeddingReference:
    """An embedding feature's reference: mean, spread, random-feature mean map and top principal components.

    Arrays are stored as base64 little-endian float64 so the file is exact and
    compact (a 1,024-d profile with 10 components is about 125 KB).
    """

    dim: int
    n: int
    missing: int
    mean: np.ndarray
    total_variance: float  # trace of the (population) covariance
    rff: dict[str, Any]  # RandomFourierFeatures.spec(): seed, frequencies, bandwidth, dim
    rff_mean: np.ndarray
    components: np.ndarray  # (k, dim), orthonormal rows
    eigenvalues: np.ndarray  # (k,)
    residual_variance: float
    _space: EmbeddingSpace | None = field(default=None, repr=False, compare=False)

    kind = "embedding"

    @property
    def missing_rate(self) -> float:
        total = self.n + self.missing
        return self.missing / total if total else 0.0

    def space(self) -> EmbeddingSpace:
        """The map and components every window compared with this reference must use (built once)."""
        if self._space is None:
            self._space = EmbeddingSpace(RandomFourierFeatures.from_spec(self.rff),
                                         self.components if self.components.size else None, self.mean)
        return self._space

    def new_sketch(self) -> EmbeddingSketch:
        """An empty window sketch in this reference's space."""
        return EmbeddingSketch(self.space())

    def pca(self) -> PCAReference:
        return PCAReference(self.components, self.eigenvalues, self.residual_variance, self.n)

    @classmethod
    def from_sketch(cls, sketch: EmbeddingSketch, components: int = 10) -> EmbeddingReference:
        """Summarise a sketch built with ``track_covariance=True`` over the reference span."""
        if sketch.n < 2 or sketch.dim is None:
            raise ProfileError("an embedding reference needs at least two vectors")
        cov = sketch.covariance()
        comps, eig, resid = top_components(cov, components)
        return cls(dim=sketch.dim, n=sketch.n, missing=sketch.missing + sketch.invalid, mean=sketch.mean,
                   total_variance=float(np.trace(cov)), rff=sketch.space.rff.spec(),
                   rff_mean=sketch.rff_sum / sketch.n, components=comps, eigenvalues=eig,
                   residual_variance=resid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "embedding", "dim": self.dim, "n": self.n, "missing": self.missing,
            "mean": _b64(self.mean), "total_variance": self.total_variance, "rff": dict(self.rff),
            "rff_mean": _b64(self.rff_mean), "components": _b64(self.components.ravel()),
            "eigenvalues": _b64(self.eigenvalues), "residual_variance": self.residual_variance,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbeddingReference:
        dim = int(d["dim"])
        return cls(dim=dim, n=int(d["n"]), missing=int(d["missing"]), mean=_unb64(d["mean"]),
                   total_variance=float(d["total_variance"]), rff=dict(d["rff"]),
                   rff_mean=_unb64(d["rff_mean"]), components=_unb64(d["components"]).reshape(-1, dim),
                   eigenvalues=_unb64(d["eigenvalues"]), residual_variance=float(d["residual_variance"]))


FeatureReference = NumericReference | CategoricalReference | EmbeddingReference
_KINDS: dict[str, Any] = {"numeric": NumericReference, "categorical": CategoricalReference,
                          "embedding": EmbeddingReference}


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
    slices: dict[str, dict[str, FeatureReference]] = field(default_factory=dict)
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
        } | ({"slices": {label: {name: f.to_dict() for name, f in sorted(feats.items())}
                         for label, feats in sorted(self.slices.items())}} if self.slices else {})

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
        profile = cls(
            model_id=data["model_id"],
            features=_features_from_dict(data["features"]),
            slices={label: _features_from_dict(fs) for label, fs in data.get("slices", {}).items()},
            source=data["source"],
            row_count=int(data["row_count"]),
            time_span=(data["time_span"][0], data["time_span"][1]),
            created_at=data["created_at"],
            stream_monitor_version=data["stream_monitor_version"],
            version_basis=data.get("version_basis", "content"),
        )
        expected = data.get("content_hash", "")
        # The hash covers the hashed fields as stored in the file: re-serialising the
        # sketches is not guaranteed to give the same bytes (KLL flags can change).
        actual = cls._hash({k: data[k] for k in profile._body() if k in data})
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


def _features_from_dict(data: dict[str, Any]) -> dict[str, FeatureReference]:
    out: dict[str, FeatureReference] = {}
    kinds: dict[str, Any] = {"numeric": NumericReference, "categorical": CategoricalReference,
                             "embedding": EmbeddingReference}
    for name, fd in data.items():
        out[name] = kinds[fd["kind"]].from_dict(fd)
    return out


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
    embedding: dict[str, EmbeddingSketch] | None = None,
    binning: BinningStrategy = "quantile",
    edges: dict[str, Sequence[float]] | None = None,
    pca_components: int = 10,
    version_basis: str = "content",
    slices: dict[str, tuple[dict[str, NumericSketch], dict[str, CategoryCounts]]] | None = None,
) -> ReferenceProfile:
    """Turn the sketches of a reference span (and of each tracked slice) into a sealed profile.

    Numeric bin edges follow `binning` ("quantile": equal reference mass per bin;
    "uniform": equal width between the 0.5% and 99.5% quantiles) unless `edges`
    gives them for a feature. Reference bin counts are exact when the sketch already
    has a histogram on those edges (a two-pass build from a file), else estimated
    from the KLL sketch. Embedding sketches must have been built with
    ``track_covariance=True``.
    """
    features: dict[str, FeatureReference] = {}
    edges = edges or {}
    for name, s in numeric.items():
        e = make_edges(s.quantiles, bins, edges.get(name, binning))
        counts, _ = s.bin_counts(e)
        features[name] = NumericReference(edges=e, counts=counts, quantiles=s.quantiles, n=s.n,
                                          mean=s.moments.mean, std=s.moments.std if s.n > 1 else 0.0,
                                          missing=s.missing, tdigest=s.tdigest)
    for name, c in categorical.items():
        ranked = [k for k, _ in c.counts.most_common() if k != OTHER][:max_categories]
        categories = sorted(ranked)
        features[name] = CategoricalReference(categories=categories,
                                              counts=np.asarray(c.vector(categories), dtype=np.float64),
                                              missing=c.missing)
    for name, e_sketch in (embedding or {}).items():
        features[name] = EmbeddingReference.from_sketch(e_sketch, pca_components)
    slice_refs = {
        label: build_profile(model_id, n, c, bins=bins, max_categories=max_categories, source=source, row_count=0,
                             time_span=time_span, binning=binning, edges=edges).features
        for label, (n, c) in (slices or {}).items()
    }
    return ReferenceProfile(model_id=model_id, features=features, source=source, row_count=row_count,
                            time_span=time_span, version_basis=version_basis, slices=slice_refs).seal()

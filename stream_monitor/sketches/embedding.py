"""Embedding (vector) features: additive sums that make MMD, mean-embedding and PCA drift mergeable.

Per window an :class:`EmbeddingSketch` keeps only sums, so merging is addition and
memory does not grow with traffic: the count, the sum of vectors (mean embedding),
the sum of squared norms (total variance), the sum of random Fourier features
(the kernel mean embedding behind MMD), and the sum and sum of squares of the
projections onto the reference's top principal components. Only a sketch that is
building a reference also keeps the d x d second-moment matrix, from which the
reference's principal components are computed (8 MiB at d=1024, in those windows only).

Everything a window must share with its reference to be comparable (the random
feature map and the principal components) lives in one :class:`EmbeddingSpace`;
the reference profile stores it (seed, frequencies, bandwidth, components), so
windows rebuild exactly the same map.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from stream_monitor.sketches import _codec

DEFAULT_RFF_FREQUENCIES = 256
DEFAULT_RFF_SEED = 20240917
MAX_DIM = 4096
_BANDWIDTH_SAMPLE = 512
_CHUNK_ROWS = 4096


@lru_cache(maxsize=16)
def _frequencies(dim: int, count: int, seed: int, bandwidth: float) -> np.ndarray:
    """W with columns ~ N(0, I / bandwidth^2): the Gaussian kernel's spectral measure (Rahimi & Recht 2007)."""
    w = np.random.default_rng(seed).standard_normal((dim, count)) / bandwidth
    w.setflags(write=False)
    return w


def median_heuristic(x: np.ndarray, sample: int = _BANDWIDTH_SAMPLE) -> float:
    """Median pairwise Euclidean distance of the first `sample` rows (Gretton et al. 2012).

    With fewer than two distinct rows, the root mean squared norm (a value of the
    same order for centred or normalised embeddings) so the map is always defined.
    """
    s = np.asarray(x[:sample], dtype=np.float64)
    if s.shape[0] >= 2:
        sq = np.einsum("ij,ij->i", s, s)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (s @ s.T), 0.0)
        med = float(np.sqrt(np.median(d2[np.triu_indices(s.shape[0], 1)])))
        if med > 0:
            return med
    rms = float(np.sqrt(np.mean(np.einsum("ij,ij->i", s, s)))) if s.size else 0.0
    return rms if rms > 0 else 1.0


class RandomFourierFeatures:
    """z(x) = [cos(Wx), sin(Wx)] / sqrt(M), so that z(x).z(y) estimates exp(-|x-y|^2 / (2 bandwidth^2)).

    ``dim`` and ``bandwidth`` may be left unset: the first batch fixes them (the
    bandwidth by the median heuristic). Share one instance between every window
    that will be merged, so that all of them use the same map.
    """

    def __init__(self, num_frequencies: int = DEFAULT_RFF_FREQUENCIES, seed: int = DEFAULT_RFF_SEED,
                 bandwidth: float | None = None, dim: int | None = None) -> None:
        if not 1 <= num_frequencies <= 8192:
            raise ValueError(f"num_frequencies must be between 1 and 8192, got {num_frequencies}")
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
        if dim is not None and not 1 <= dim <= MAX_DIM:
            raise ValueError(f"dim must be between 1 and {MAX_DIM}, got {dim}")
        self.num_frequencies = num_frequencies
        self.seed = seed
        self.bandwidth = bandwidth
        self.dim = dim

    @property
    def fitted(self) -> bool:
        return self.dim is not None and self.bandwidth is not None

    @property
    def num_features(self) -> int:
        return 2 * self.num_frequencies

    def fit(self, x: np.ndarray) -> None:
        """Fix whatever is still unset from a first batch of vectors (no-op once fitted)."""
        if self.dim is None:
            self.dim = int(x.shape[1])
        if self.bandwidth is None:
            self.bandwidth = median_heuristic(x)

    def transform(self, x: np.ndarray) -> np.ndarray:
        if not self.fitted:
            raise ValueError("RandomFourierFeatures is not fitted: call fit() with a first batch")
        proj = x @ _frequencies(self.dim, self.num_frequencies, self.seed, self.bandwidth)  # type: ignore[arg-type]
        return np.hstack([np.cos(proj), np.sin(proj)]) / np.sqrt(self.num_frequencies)

    def spec(self) -> dict[str, Any]:
        return {"num_frequencies": self.num_frequencies, "seed": self.seed, "bandwidth": self.bandwidth,
                "dim": self.dim}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> RandomFourierFeatures:
        return cls(int(spec["num_frequencies"]), int(spec["seed"]), spec.get("bandwidth"), spec.get("dim"))


class EmbeddingSpace:
    """What a window shares with its reference: the feature map, the principal components and their centre."""

    def __init__(self, rff: RandomFourierFeatures | None = None, components: np.ndarray | None = None,
                 center: np.ndarray | None = None) -> None:
        self.rff = rff if rff is not None else RandomFourierFeatures()
        self.components = None if components is None else np.atleast_2d(np.asarray(components, np.float64))
        if self.components is not None and center is None:
            raise ValueError("components need their center (the reference mean)")
        self.center = None if center is None else np.asarray(center, np.float64)

    def fingerprint(self) -> str | None:
        """Identity of the map; None until fitted. Two sketches merge only if these are equal."""
        if not self.rff.fitted:
            return None
        h = hashlib.sha256(json.dumps(self.rff.spec(), sort_keys=True).encode())
        if self.components is not None and self.center is not None:
            h.update(_codec.floats(self.components))
            h.update(_codec.floats(self.center))
        return h.hexdigest()[:16]


class EmbeddingSketch:
    """Additive per-window summary of one vector feature (see the module docstring)."""

    def __init__(self, space: EmbeddingSpace | None = None, *, track_covariance: bool = False) -> None:
        self.space = space if space is not None else EmbeddingSpace()
        self.track_covariance = track_covariance
        self.n = 0
        self.missing = 0
        self.invalid = 0
        self.dim: int | None = self.space.rff.dim
        self.sum: np.ndarray | None = None
        self.sum_sq_norm = 0.0
        self.rff_sum = np.zeros(self.space.rff.num_features)
        k = 0 if self.space.components is None else self.space.components.shape[0]
        self.proj_sum = np.zeros(k)
        self.proj_sq_sum = np.zeros(k)
        self.second_moment: np.ndarray | None = None

    def update_rows(self, rows: Sequence[Sequence[float] | None]) -> None:
        """Add event values as they come: None is missing, a vector of another length is invalid."""
        good = [r for r in rows if r is not None]
        self.missing += len(rows) - len(good)
        if not good:
            return
        dim = self.dim if self.dim is not None else len(good[0])
        same = [r for r in good if len(r) == dim]
        self.invalid += len(good) - len(same)
        if same:
            self.update(np.asarray(same, dtype=np.float64))

    def update(self, vectors: np.ndarray) -> None:
        """Add an (n, d) array; rows holding a NaN count as missing."""
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"expected an (n, d) array, got shape {x.shape}")
        bad = np.isnan(x).any(axis=1)
        self.missing += int(bad.sum())
        x = x[~bad]
        if not x.shape[0]:
            return
        if self.dim is None:
            self.dim = int(x.shape[1])
        if x.shape[1] != self.dim or not 1 <= self.dim <= MAX_DIM:
            raise ValueError(f"embedding dimension {x.shape[1]} does not match this sketch's {self.dim}")
        self.space.rff.fit(x)
        if self.space.rff.dim != self.dim:
            raise ValueError(f"embedding dimension {self.dim} does not match the feature map's {self.space.rff.dim}")
        self._ensure_arrays()
        for start in range(0, x.shape[0], _CHUNK_ROWS):
            self._add(x[start:start + _CHUNK_ROWS])

    def _ensure_arrays(self) -> None:
        if self.sum is None:
            self.sum = np.zeros(self.dim)  # type: ignore[arg-type]
        if self.track_covariance and self.second_moment is None:
            self.second_moment = np.zeros((self.dim, self.dim))  # type: ignore[arg-type]

    def _add(self, x: np.ndarray) -> None:
        self.n += x.shape[0]
        self.sum += x.sum(axis=0)  # type: ignore[operator]
        self.sum_sq_norm += float(np.einsum("ij,ij->", x, x))
        self.rff_sum += self.space.rff.transform(x).sum(axis=0)
        if self.space.components is not None:
            p = (x - self.space.center) @ self.space.components.T
            self.proj_sum += p.sum(axis=0)
            self.proj_sq_sum += np.einsum("ij,ij->j", p, p)
        if self.second_moment is not None:
            self.second_moment += x.T @ x

    def merge(self, other: EmbeddingSketch) -> None:
        if other.n == 0 and other.sum is None:
            self.missing += other.missing
            self.invalid += other.invalid
            return
        if self.n == 0 and self.sum is None:
            self.space, self.dim = other.space, other.dim
            self.rff_sum = np.zeros_like(other.rff_sum)
            self.proj_sum, self.proj_sq_sum = np.zeros_like(other.proj_sum), np.zeros_like(other.proj_sq_sum)
        elif self.space.fingerprint() != other.space.fingerprint():
            raise ValueError("cannot merge embedding sketches built with different feature maps or components")
        self._ensure_arrays()
        self.n += other.n
        self.missing += other.missing
        self.invalid += other.invalid
        self.sum += other.sum  # type: ignore[operator]
        self.sum_sq_norm += other.sum_sq_norm
        self.rff_sum += other.rff_sum
        self.proj_sum += other.proj_sum
        self.proj_sq_sum += other.proj_sq_sum
        if self.second_moment is not None:
            if other.second_moment is None:
                raise ValueError("cannot merge a sketch without second moments into one that tracks them")
            self.second_moment += other.second_moment

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.n if self.n and self.sum is not None else np.full(self.dim or 0, np.nan)

    def covariance(self) -> np.ndarray:
        """Population covariance (divides by n); needs ``track_covariance``."""
        if self.second_moment is None or not self.n:
            raise ValueError("this sketch does not track second moments (track_covariance=False) or is empty")
        mu = self.mean
        return self.second_moment / self.n - np.outer(mu, mu)

    def part_sizes(self) -> dict[str, int]:
        sizes = {k: len(v) for k, v in self._arrays().items()}
        sizes["scalars"] = 4 * 8
        return sizes

    def _arrays(self) -> dict[str, bytes]:
        arrays = {"rff_sum": _codec.floats(self.rff_sum), "proj_sum": _codec.floats(self.proj_sum),
                  "proj_sq_sum": _codec.floats(self.proj_sq_sum)}
        if self.sum is not None:
            arrays["sum"] = _codec.floats(self.sum)
        if self.second_moment is not None:
            arrays["second_moment"] = _codec.floats(self.second_moment.ravel())
        return arrays

    def to_bytes(self) -> bytes:
        header = json.dumps(self._header(), sort_keys=True).encode()
        return _codec.pack("embedding", {"header": header, **self._arrays()})

    @classmethod
    def from_bytes(cls, data: bytes, space: EmbeddingSpace | None = None) -> EmbeddingSketch:
        parts = _codec.unpack(data, "embedding")
        arrays = {k: _codec.read_floats(v) for k, v in parts.items() if k != "header"}
        return cls._restore(json.loads(parts["header"]), arrays, space)

    def to_dict(self) -> dict[str, Any]:
        arrays = {k: base64.b64encode(v).decode() for k, v in self._arrays().items()}
        return {**self._header(), "arrays": arrays}

    @classmethod
    def from_dict(cls, data: dict[str, Any], space: EmbeddingSpace | None = None) -> EmbeddingSketch:
        arrays = {k: _codec.read_floats(base64.b64decode(v)) for k, v in data["arrays"].items()}
        return cls._restore(data, arrays, space)

    def _header(self) -> dict[str, Any]:
        return {"n": self.n, "missing": self.missing, "invalid": self.invalid, "dim": self.dim,
                "sum_sq_norm": self.sum_sq_norm, "track_covariance": self.track_covariance,
                "rff": self.space.rff.spec(), "space": self.space.fingerprint(),
                "has_components": self.space.components is not None}

    @classmethod
    def _restore(cls, header: dict[str, Any], arrays: dict[str, np.ndarray],
                 space: EmbeddingSpace | None) -> EmbeddingSketch:
        """Rebuild a sketch; a sketch with components needs its reference's space passed back in."""
        if space is None:
            if header["has_components"]:
                raise ValueError("this embedding sketch projects onto reference components: pass the reference's space")
            space = EmbeddingSpace(RandomFourierFeatures.from_spec(header["rff"]))
        if header["space"] is not None and space.fingerprint() != header["space"]:
            raise ValueError("the given space is not the one this embedding sketch was built with")
        s = cls(space, track_covariance=bool(header["track_covariance"]))
        s.n, s.missing, s.invalid = int(header["n"]), int(header["missing"]), int(header["invalid"])
        s.dim, s.sum_sq_norm = header["dim"], float(header["sum_sq_norm"])
        s.rff_sum, s.proj_sum, s.proj_sq_sum = arrays["rff_sum"], arrays["proj_sum"], arrays["proj_sq_sum"]
        s.sum = arrays.get("sum")
        if "second_moment" in arrays and s.dim is not None:
            s.second_moment = arrays["second_moment"].reshape(s.dim, s.dim)
        return s

"""Mergeable, serialisable summaries of one feature in one window.

Every sketch here has the same small surface: ``update(values)`` with a whole numpy
column (or array of vectors) at a time, ``merge(other)``, ``to_dict()`` /
``from_dict()`` (JSON-friendly, for profiles and checkpoints) and ``to_bytes()`` /
``from_bytes()`` (compact, for partial window sketches sent between instances).
Merging the sketches of two halves of a stream gives the sketch of the whole stream
(exactly for counts, moments, histograms and embedding sums; register-exactly for
HLL; within the documented rank error for KLL), which is what lets partitions,
instances and restarts combine state.
"""
from __future__ import annotations

from stream_monitor.sketches.categorical import CategoryCounts
from stream_monitor.sketches.distinct import DistinctCount
from stream_monitor.sketches.embedding import EmbeddingSketch, EmbeddingSpace, RandomFourierFeatures
from stream_monitor.sketches.histogram import FixedEdgeHistogram, make_edges
from stream_monitor.sketches.moments import Moments
from stream_monitor.sketches.numeric import NumericSketch
from stream_monitor.sketches.quantiles import QuantileSketch
from stream_monitor.sketches.tdigest import TDigestSketch

__all__ = [
    "CategoryCounts",
    "DistinctCount",
    "EmbeddingSketch",
    "EmbeddingSpace",
    "FixedEdgeHistogram",
    "Moments",
    "NumericSketch",
    "QuantileSketch",
    "RandomFourierFeatures",
    "TDigestSketch",
    "make_edges",
]

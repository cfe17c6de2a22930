"""Mergeable, serialisable summaries of one feature in one window.

Every sketch here has the same small surface: ``update(values)`` with a whole numpy
column at a time, ``merge(other)``, ``to_dict()`` / ``from_dict()``. Merging the
sketches of two halves of a stream gives the sketch of the whole stream (exactly for
counts and histograms, within the documented rank error for KLL), which is what
lets partitions, instances and restarts combine state.
"""
from __future__ import annotations

from stream_monitor.sketches.categorical import CategoryCounts
from stream_monitor.sketches.histogram import FixedEdgeHistogram
from stream_monitor.sketches.moments import Moments
from stream_monitor.sketches.numeric import NumericSketch
from stream_monitor.sketches.quantiles import QuantileSketch

__all__ = ["CategoryCounts", "FixedEdgeHistogram", "Moments", "NumericSketch", "QuantileSketch"]

"""Online drift detectors behind one small protocol; river's implementations, wrapped, not re-implemented."""
from __future__ import annotations

from stream_monitor.detectors.base import Detector
from stream_monitor.detectors.river_detectors import DETECTORS, RiverDetector, make_detector

__all__ = ["DETECTORS", "Detector", "RiverDetector", "make_detector"]

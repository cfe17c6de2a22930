"""Drift reports people can read: a self-contained HTML page per model (``stream-monitor report``, the Python
API) and the running service's status page at ``/`` on its metrics port. See docs/report.md."""
from __future__ import annotations

from stream_monitor.report.html import render_report
from stream_monitor.report.model import Histogram, ModelView, collect
from stream_monitor.report.status import status_page

__all__ = ["Histogram", "ModelView", "collect", "render_report", "status_page"]

"""The drift report and the status page in a real browser: they render, log nothing, and show the charts.

Headless Chromium loads the page written by ``stream-monitor report`` (file://) and
the service's status page (http://, served by the same server code as ``run``):

- no console message at all (errors, uncaught exceptions, CSP violations: the CSP
  forbids fetching anything, so a page that tried would log one) - the control test
  shows the same check catching an error and a blocked fetch;
- the DOM has one histogram chart per binned feature and the two timelines;
- the screenshot (kept as ``report.png`` / ``status.png`` in the test's temp dir) is a
  real image with the charts' colours on it, not a blank page.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import yaml
from helpers import DRIFTED, drifted_stream, monitor_config, write_jsonl
from PIL import Image
from prometheus_client import CollectorRegistry
from report.chromium import render, screenshot

from stream_monitor.cli import main
from stream_monitor.engine import Engine
from stream_monitor.report.charts import CURRENT_COLOUR, REFERENCE_COLOUR
from stream_monitor.report.server import start_server
from stream_monitor.report.status import status_page
from stream_monitor.sinks.base import ConsoleAlertSink
from stream_monitor.sinks.files import CountingDeadLetterSink
from stream_monitor.sinks.metrics import MonitorMetrics
from stream_monitor.sources.pipeline import Pipeline
from stream_monitor.sources.replay import replay

#: Features with bins: the simulator's numeric and categorical features plus prediction.score / .class.
BINNED_FEATURES = 15


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def _pixels_near(image: Image.Image, colour: tuple[int, int, int], tol: int = 12) -> int:
    rgb = image.convert("RGB")
    return sum(n for n, c in rgb.getcolors(maxcolors=1 << 20) or []
               if all(abs(a - b) <= tol for a, b in zip(c, colour, strict=True)))


def check_screenshot(path: Path, size: tuple[int, int]) -> Image.Image:
    assert path.stat().st_size > 20_000, "a screenshot of charts is not a few bytes"
    image = Image.open(path)
    assert image.size == size
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    background = max(colours)[0] / (size[0] * size[1])
    assert len(colours) > 50 and background < 0.9, "not a blank page"
    return image


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("report-input")
    events, config = tmp / "events.jsonl", tmp / "monitor.yaml"
    write_jsonl(events, drifted_stream().messages)
    config.write_text(yaml.safe_dump(monitor_config()))
    return events, config


def test_console_check_catches_errors_and_blocked_fetches(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
                    "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
                    '<img src="https://example.invalid/x.png"><script>console.error("boom")</script></body></html>')
    rendered = render(page.as_uri(), tmp_path)
    assert any("boom" in m for m in rendered.console)
    assert any("Content Security Policy" in m for m in rendered.console)


def test_report_renders_without_console_errors_and_shows_the_charts(tmp_path, events_file):
    events, config = events_file
    out = tmp_path / "report.html"
    assert main(["report", "-c", str(config), "--input", str(events), "-o", str(out), "--no-progress"]) == 0
    html = out.read_text()
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html), "self-contained"

    rendered = render(out.as_uri(), tmp_path)
    assert rendered.console == []
    dom = rendered.dom
    assert dom.count('class="chart hist"') == BINNED_FEATURES
    for feature in DRIFTED:
        assert f'class="chart hist" data-feature="{feature}"' in dom
    assert dom.count('class="chart timeline"') == 2
    assert 'id="diagnosis"' in dom and "covariate shift" in dom
    assert 'id="alerts"' in dom and "retrain" in dom

    shot = screenshot(out.as_uri(), tmp_path / "report.png", tmp_path)
    image = check_screenshot(shot, (1400, 2000))
    assert _pixels_near(image, _rgb(CURRENT_COLOUR)) > 2_000, "current-window bars and lines are drawn"
    assert _pixels_near(image, _rgb(REFERENCE_COLOUR)) > 2_000, "reference bars are drawn"


def test_status_page_served_by_the_service_endpoint_renders(tmp_path, events_file):
    events, config = events_file
    from stream_monitor.config import load_config

    engine = Engine(load_config(config))
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    metrics.attach(engine)
    replay(Pipeline(engine, metrics, ConsoleAlertSink(lambda _line: None), CountingDeadLetterSink()), events)
    server, thread = start_server(0, "127.0.0.1", registry, lambda: status_page(engine, metrics.lock))
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        rendered = render(url, tmp_path)
        shot = screenshot(url, tmp_path / "status.png", tmp_path, window="1200,900")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert rendered.console == []
    assert 'data-model="credit-risk"' in rendered.dom
    assert rendered.dom.count('class="chart spark"') == 5, "top 5 drifted features with their trend"
    reference = engine.models["credit-risk"].reference
    assert reference is not None and reference.profile_id in rendered.dom
    check_screenshot(shot, (1200, 900))


def test_status_and_metrics_share_the_port(events_file):
    """`/` is the page, `/metrics` (and any other path, as before) the Prometheus exposition."""
    import urllib.request

    _events, config = events_file
    from stream_monitor.config import load_config

    engine = Engine(load_config(config))
    registry = CollectorRegistry()
    MonitorMetrics(registry).attach(engine)
    server, thread = start_server(0, "127.0.0.1", registry, lambda: status_page(engine))
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with urllib.request.urlopen(f"{base}/", timeout=5) as resp:
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
            assert "No window closed yet" in resp.read().decode()
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            assert "stream_monitor_up" in resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert threading.active_count() >= 1

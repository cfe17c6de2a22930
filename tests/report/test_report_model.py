"""The numbers on the report: histograms against numpy on the same data, window choice, range, escaping."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from stream_monitor import Monitor
from stream_monitor.reference import CategoricalReference, NumericReference
from stream_monitor.report import collect, render_report
from stream_monitor.report.html import incident_spans
from stream_monitor.report.model import bin_labels, current_window, histogram

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = 10
N = 2000
CATEGORIES = ["a", "b", "c"]


def _events(x: np.ndarray, c: list[str], start: datetime, name: str = "x") -> list[dict[str, object]]:
    step = WINDOW / len(x)
    return [{"event_id": f"e{start.timestamp()}-{i}", "model_id": "m", "model_version": "v1",
             "timestamp": (start + timedelta(seconds=i * step)).isoformat(),
             "features": {name: float(v), "c": cat}, "prediction": {"score": 0.5}}
            for i, (v, cat) in enumerate(zip(x, c, strict=True))]


def _monitor(name: str = "x") -> Monitor:
    return Monitor.from_config({"models": [{
        "model_id": "m", "owner": "team", "monitor_prediction": False,
        "features": [{"name": name, "kind": "numeric"}, {"name": "c", "kind": "categorical"}],
        "window": {"size_seconds": WINDOW}, "reference": {"from_stream_windows": 1, "bins": 8},
        "rules": [{"id": "psi", "metric": "psi", "thresholds": {"warning": 0.1, "critical": 0.25}}],
    }]})


@pytest.fixture(scope="module")
def data() -> dict[str, object]:
    rng = np.random.default_rng(3)
    ref_x, cur_x = rng.normal(0, 1, N), rng.normal(0.7, 1.3, N)
    ref_c = list(rng.choice(CATEGORIES, N, p=[0.5, 0.3, 0.2]))
    cur_c = list(rng.choice([*CATEGORIES, "new"], N, p=[0.2, 0.3, 0.3, 0.2]))
    monitor = _monitor()
    early_x = rng.normal(0.7, 1.3, N)
    monitor.observe_batch(_events(ref_x, ref_c, T0))
    # Its pane opens before the reference exists (same batch as the close): bins estimated from KLL.
    monitor.observe_batch(_events(early_x, cur_c, T0 + timedelta(seconds=WINDOW)))
    # Opens after: counted exactly in the reference's bins.
    monitor.observe_batch(_events(cur_x, cur_c, T0 + timedelta(seconds=2 * WINDOW)))
    monitor.observe_batch(_events(cur_x[:5], cur_c[:5], T0 + timedelta(seconds=3 * WINDOW)))  # a stub window
    monitor.close()
    return {"monitor": monitor, "ref_x": ref_x, "cur_x": cur_x, "early_x": early_x, "ref_c": ref_c, "cur_c": cur_c}


def test_histograms_equal_numpy_counts_over_the_reference_bins(data):
    monitor: Monitor = data["monitor"]  # type: ignore[assignment]
    res = monitor.results()
    view = collect(monitor.engine, "m", res.windows, res.alerts)
    assert view.current is res.windows[2], "the latest full window, not the 5-event stub"
    reference = monitor.engine.models["m"].reference
    assert reference is not None
    hist = {h.feature: h for h in view.histograms}

    x_ref = reference.features["x"]
    assert isinstance(x_ref, NumericReference)
    # Independent count: right-closed bins (-inf, e0], (e0, e1], ..., (e_last, inf) with numpy.
    bins = np.searchsorted(x_ref.edges, data["cur_x"], side="left")
    expected = np.bincount(bins, minlength=len(x_ref.edges) + 1) / N
    assert hist["x"].binning == "exact"
    np.testing.assert_allclose(hist["x"].current, expected, rtol=0, atol=1e-12)
    early = histogram("x", x_ref, res.windows[1].features["x"])
    assert early is not None and early.binning == "sketch"
    early_expected = np.bincount(np.searchsorted(x_ref.edges, data["early_x"], side="left"),
                                 minlength=len(x_ref.edges) + 1) / N
    np.testing.assert_allclose(early.current, early_expected, rtol=0, atol=0.01)  # KLL rank error, k=400
    ref_bins = np.bincount(np.searchsorted(x_ref.edges, data["ref_x"], side="left"),
                           minlength=len(x_ref.edges) + 1) / N
    # The stream-built reference's counts come from its KLL sketch: within the sketch's rank error.
    np.testing.assert_allclose(hist["x"].reference, ref_bins, rtol=0, atol=0.02)
    assert hist["x"].labels == bin_labels(x_ref.edges.tolist(), len(x_ref.counts))
    assert len(hist["x"].labels) == len(expected)

    c_ref = reference.features["c"]
    assert isinstance(c_ref, CategoricalReference)
    cur_c: list[str] = data["cur_c"]  # type: ignore[assignment]
    ref_c: list[str] = data["ref_c"]  # type: ignore[assignment]
    order = [*c_ref.categories]
    np.testing.assert_allclose(hist["c"].current[:-1], [cur_c.count(k) / N for k in order], atol=1e-12)
    assert hist["c"].current[-1] == pytest.approx(cur_c.count("new") / N, abs=1e-12)  # OTHER
    np.testing.assert_allclose(hist["c"].reference[:-1], [ref_c.count(k) / N for k in order], atol=1e-12)
    assert hist["x"].psi == view.current.features["x"].stats["psi"]


def test_bin_labels_are_right_closed_with_open_ends():
    assert bin_labels([1.0, 2.5, 40000.0], 4) == ["≤ 1", "1 – 2.5", "2.5 – 40k", "> 40k"]
    assert bin_labels([1.0, 2.0], 5) == [f"bin {i}" for i in range(5)]


def test_window_range_and_current_window(data):
    monitor: Monitor = data["monitor"]  # type: ignore[assignment]
    res = monitor.results()
    assert [w.role for w in res.windows] == ["reference", "evaluated", "evaluated", "evaluated"]
    assert current_window(res.windows, 200) is res.windows[2]
    assert current_window(res.windows, 10_000) is res.windows[3], "nothing big enough: the latest"
    view = collect(monitor.engine, "m", res.windows, res.alerts, start=T0 + timedelta(seconds=WINDOW),
                   end=T0 + timedelta(seconds=2 * WINDOW))
    assert [w.window_start for w in view.windows] == [T0 + timedelta(seconds=WINDOW)]
    empty = collect(monitor.engine, "m", res.windows, res.alerts, start=T0 + timedelta(days=1))
    assert empty.windows == [] and empty.current is None and empty.histograms == []
    assert "No evaluated window in this range" in render_report(empty)


def test_report_page_shows_alerts_diagnosis_and_escapes_names():
    rng = np.random.default_rng(5)
    name = 'a<b>&"x'
    monitor = _monitor(name)
    cats = ["a"] * N
    monitor.observe_batch(_events(rng.normal(0, 1, N), cats, T0, name))
    monitor.observe_batch(_events(rng.normal(3, 1, N), cats, T0 + timedelta(seconds=WINDOW), name))
    monitor.close()
    alerts = monitor.alerts()
    assert alerts and alerts[0].status == "firing"
    html = monitor.report_html()
    assert name not in html and "a&lt;b&gt;&amp;&quot;x" in html
    assert alerts[0].alert_id[:12] in html and "retrain" in html and 'id="diagnosis"' in html
    assert html.count('class="chart hist"') == 2 and html.count('class="chart timeline"') >= 1
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)
    res = monitor.results()
    view = collect(monitor.engine, "m", res.windows, res.alerts)
    (since, until, severity), = incident_spans(view)
    assert since == alerts[0].window_start and until == res.windows[-1].window_end and severity == "critical"


def test_decisions_in_range_are_listed_with_type_reason_and_failed_gates(data):
    from stream_monitor.contracts.decisions import DecisionEvent, DecisionVersions, GateResult

    monitor: Monitor = data["monitor"]  # type: ignore[assignment]
    res = monitor.results()
    at = T0 + timedelta(seconds=2 * WINDOW)
    decisions = [DecisionEvent(
        decision_id=f"{i:032x}", model_id=model, type="blocked", source="trigger", policy_id="drift-retrain",
        reason="income PSI 0.9 < 1.0 > but labels <too few>", versions=DecisionVersions(current="v1"),
        gates=[GateResult(gate="label_coverage", passed=False, value=0.1, limit=0.5, detail="10% labelled")],
        decided_at=at + timedelta(days=i), created_at=at) for i, model in enumerate(["m", "m", "other"])]
    view = collect(monitor.engine, "m", res.windows, res.alerts, end=at + timedelta(hours=1), decisions=decisions)
    assert [d.decision_id for d in view.decisions] == [decisions[0].decision_id]
    html = render_report(view)
    section = html[html.index('id="decisions"'):]
    assert "blocked" in section and "label_coverage" in section and "drift-retrain" in section
    assert "&lt;too few&gt;" in section and "<too few>" not in html


def test_engine_history_is_bounded_and_reset_with_the_model():
    from stream_monitor.config import config_from_dict
    from stream_monitor.state import reset_model

    rng = np.random.default_rng(8)
    monitor = Monitor(config_from_dict({"service": {"history_windows": 2}, "models": [{
        "model_id": "m", "monitor_prediction": False, "features": [{"name": "x"}, {"name": "c", "kind": "categorical"}],
        "window": {"size_seconds": WINDOW}, "reference": {"from_stream_windows": 1}}]}))
    for w in range(5):
        monitor.observe_batch(_events(rng.normal(0, 1, 300), ["a"] * 300, T0 + timedelta(seconds=w * WINDOW)))
    monitor.close()
    kept = list(monitor.engine.history[("m", "v1")])
    assert [w.window_start for w in kept] == [w.window_start for w in monitor.results().windows[-2:]]
    reset_model(monitor.engine, "m", None)
    assert ("m", "v1") not in monitor.engine.history and "m" not in monitor.engine.alert_history

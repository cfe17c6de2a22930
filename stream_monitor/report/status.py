"""The service's status page (``/`` on the metrics port): the current state of every model at a glance.

Per model: the reference in use, the latest closed window of each version, the
most drifted features with their recent trend, the open incident and the last
alerts. It reads the engine's bounded history under the same lock as the metrics
collector, so a page is a consistent snapshot; it renders without the lock held.
"""
from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from stream_monitor import __version__
from stream_monitor.contracts.alerts import AlertEvent
from stream_monitor.engine import Engine
from stream_monitor.engine_types import WindowReport
from stream_monitor.report.charts import sparkline
from stream_monitor.report.html import page, severity_badge
from stream_monitor.report.model import current_window, rule_thresholds, top_drifted

#: Windows shown in each sparkline.
TREND_WINDOWS = 30
REFRESH_SECONDS = 10


@dataclass
class _ModelState:
    model_id: str
    owner: str | None
    reference: str | None
    reference_progress: str
    histories: dict[str, list[WindowReport]]
    incidents: list[tuple[str, dict[str, object]]]
    alerts: list[AlertEvent]
    psi_limit: float | None
    min_samples: int


def _snapshot(engine: Engine) -> list[_ModelState]:
    out = []
    for mid, mm in engine.models.items():
        histories = {v: list(h)[-TREND_WINDOWS:] for (m, v), h in sorted(engine.history.items()) if m == mid}
        incidents = [(v, {"severity": s.incident.published_severity, "opened": s.incident.opened_at_window,
                          "windows": s.incident.windows_open, "feature": s.incident.top.get("feature")})
                     for (m, v), s in sorted(engine.policy.series.items()) if m == mid and s.incident is not None]
        limits = rule_thresholds(mm.config).get("psi", {})
        out.append(_ModelState(
            model_id=mid, owner=mm.config.owner,
            reference=mm.reference.profile_id if mm.reference is not None else None,
            reference_progress=f"{mm.reference_windows}/{mm.config.reference.from_stream_windows} windows",
            histories=histories, incidents=incidents, alerts=list(engine.alert_history.get(mid, ()))[-5:],
            psi_limit=min(limits.values()) if limits else None,
            min_samples=min((r.min_samples for r in mm.config.rules), default=1)))
    return out


def _version_rows(state: _ModelState) -> str:
    rows = []
    for version, history in state.histories.items():
        last = history[-1]
        judged = current_window(history, state.min_samples) or last  # a stub window has no PSI to rank by
        top = top_drifted(judged, limit=5)
        trend = "".join(
            f'<div>{escape(name)} <b>{value:.3f}</b> '
            + sparkline([w.features[name].stats.get("psi") if name in w.features else None for w in history],
                        limit=state.psi_limit)
            + "</div>" for name, value in top) or '<span class="muted">–</span>'
        if judged is not last and top:
            trend += f'<div class="muted">from the window ending {judged.window_end:%H:%M:%S}</div>'
        rows.append(f"<tr><td>{escape(version)}</td><td>{last.window_start:%H:%M:%S} – {last.window_end:%H:%M:%S}"
                    f"<br><span class=\"muted\">{last.window_end:%Y-%m-%d}</span></td><td>{escape(last.role)}</td>"
                    f"<td>{last.n_events:,}</td><td>{trend}</td></tr>")
    if not rows:
        return '<p class="muted">No window closed yet.</p>'
    return ("<table><tr><th>version</th><th>latest window</th><th>role</th><th>events</th>"
            f"<th>top drifted features (PSI, last {TREND_WINDOWS} windows)</th></tr>{''.join(rows)}</table>")


def _model_section(state: _ModelState) -> str:
    ref = (escape(state.reference) if state.reference
           else f'<span class="muted">forming from the stream ({escape(state.reference_progress)})</span>')
    if state.incidents:
        incidents = "".join(
            f"<p>{severity_badge(str(i['severity']))} open incident on {escape(v)}: top feature "
            f"<b>{escape(str(i['feature']))}</b>, since window {escape(str(i['opened']))[11:19]}, "
            f"{i['windows']} window(s)</p>" for v, i in state.incidents)
    else:
        incidents = f"<p>{severity_badge('ok', 'no open incident')}</p>"
    alerts = "".join(f"<li>{escape(a.one_line())}</li>" for a in reversed(state.alerts))
    alerts_html = f"<h3>Last alerts</h3><ul>{alerts}</ul>" if alerts else ""
    return (f'<section class="model" data-model="{escape(state.model_id)}"><h2>{escape(state.model_id)}</h2>'
            f'<p class="muted">owner {escape(state.owner or "–")} · reference {ref}</p>{incidents}'
            f"{_version_rows(state)}{alerts_html}</section>")


def status_page(engine: Engine, lock: threading.Lock | None = None, *, now: datetime | None = None) -> str:
    """The status page HTML; `lock` is the one the pipeline holds while it changes engine state."""
    guard: AbstractContextManager[object] = lock if lock is not None else nullcontext()
    with guard:
        states = _snapshot(engine)
    when = now or datetime.now(UTC)
    body = "".join(_model_section(s) for s in states)
    body += '<p class="muted">Metrics: <a href="/metrics">/metrics</a> · refreshes every 10 s</p>'
    return page("stream-monitor status", f"{len(states)} model(s) · {when:%Y-%m-%d %H:%M:%S} UTC · "
                f"stream-monitor {__version__}", body, refresh_seconds=REFRESH_SECONDS)

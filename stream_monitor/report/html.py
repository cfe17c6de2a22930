"""The drift report: one self-contained HTML page per model and window range.

Everything is inline (CSS, SVG charts); the page has no script and a
Content-Security-Policy that forbids loading anything, so it opens offline, can be
mailed or attached to a ticket, and shows exactly what the monitor computed.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape

from stream_monitor import __version__
from stream_monitor.contracts.alerts import SEVERITY_ORDER, AlertEvent
from stream_monitor.contracts.decisions import DecisionEvent
from stream_monitor.engine_types import WindowReport
from stream_monitor.report.charts import SEVERITY_COLOURS, histogram_chart, line_chart
from stream_monitor.report.model import ModelView, top_drifted

#: Features drawn per timeline chart (the most drifted ones); the rest are listed in the table.
TIMELINE_FEATURES = 8

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f8fafc;color:#0f172a}
header{background:#0f172a;color:#f8fafc;padding:18px 28px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#cbd5e1;font-size:13px}
main{padding:18px 28px;max-width:1400px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:14px 18px;margin:0 0 16px}
h2{font-size:16px;margin:0 0 10px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px} .card span{font-size:12px;color:#475569}
.grid{display:flex;flex-wrap:wrap;gap:14px}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e2e8f0;vertical-align:top}
th{background:#f1f5f9}
.sev{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:11.5px}
.muted{color:#64748b} pre{background:#f1f5f9;padding:8px;border-radius:6px;font-size:12px;overflow-x:auto}
.diag{border-left:4px solid #dc2626}
"""


def page(title: str, subtitle: str, body: str, *, refresh_seconds: int | None = None) -> str:
    """The shared page shell (report and status page): inline CSS, no script, nothing fetched."""
    refresh = f'<meta http-equiv="refresh" content="{refresh_seconds}">' if refresh_seconds else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header><main>{body}</main></body></html>")


def severity_badge(severity: str, text: str | None = None) -> str:
    colour = SEVERITY_COLOURS.get(severity, "#059669")
    return f'<span class="sev" style="background:{colour}">{escape(text or severity)}</span>'


def _card(value: str, label: str) -> str:
    return f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _t(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if dt else "–"


def _summary(view: ModelView) -> str:
    evaluated = view.evaluated
    firing = [a for a in view.alerts if a.status == "firing"]
    worst = max(((w, name, v) for w in evaluated for name, v in top_drifted(w, limit=1)),
                key=lambda x: x[2], default=None)
    cards = [_card(str(len(evaluated)), "windows evaluated"),
             _card(str(len(view.windows) - len(evaluated)), "reference windows"),
             _card(f"{sum(w.n_events for w in view.windows):,}", "events in windows"),
             _card(f"{len(firing)} / {len(view.alerts) - len(firing)}", "alerts firing / resolved")]
    if worst is not None:
        cards.append(_card(f"{worst[2]:.3f}", f"highest PSI: {worst[1]} ({worst[0].window_end:%H:%M})"))
    inc = view.open_incident
    cards.append(_card(inc["severity"] if inc else "none", "open incident" + (
        f" since {inc['opened_at_window'][11:19]}" if inc else "")))
    return f'<section><h2>Summary</h2><div class="cards">{"".join(cards)}</div></section>'


def _diagnosis(view: ModelView) -> str:
    alert = view.diagnosed
    if alert is None or alert.diagnosis is None:
        return ('<section><h2>Diagnosis</h2><p class="muted">No firing alert in this range, so nothing to '
                "diagnose.</p></section>")
    d = alert.diagnosis
    evidence = json.dumps(d.evidence, indent=2, default=str, sort_keys=True)
    return (f'<section class="diag" id="diagnosis"><h2>Diagnosis: {escape(d.cause.replace("_", " "))}</h2>'
            f"<p>{escape(d.summary)}</p><p class=\"muted\">From alert {escape(alert.alert_id[:12])} "
            f"(window {_t(alert.window_start)} – {_t(alert.window_end)}), action "
            f"<b>{escape(alert.action)}</b>.</p><pre>{escape(evidence)}</pre></section>")


def _timeline(view: ModelView, statistic: str, title: str) -> str:
    windows = [w for w in view.evaluated if any(statistic in r.stats for r in w.features.values())]
    if not windows:
        return ""
    peak: dict[str, float] = {}
    for w in windows:
        for name, r in w.features.items():
            v = r.stats.get(statistic)
            if v is not None and math.isfinite(v):
                peak[name] = max(peak.get(name, -math.inf), v)
    reverse = not statistic.endswith("pvalue")
    names = sorted(peak, key=lambda n: (-peak[n] if reverse else peak[n], n))[:TIMELINE_FEATURES]
    series = {n: [w.features[n].stats.get(statistic) if n in w.features else None for w in windows]
              for n in names}
    shown = f" ({len(names)} of {len(peak)} features, the most drifted)" if len(peak) > len(names) else ""
    return line_chart(f"{title}{shown}", [w.window_end for w in windows], series,
                      thresholds=view.thresholds.get(statistic), bands=incident_spans(view),
                      statistic=statistic)


def incident_spans(view: ModelView) -> list[tuple[datetime, datetime, str]]:
    """(first firing window start, resolving window start or the last window's end, highest severity) per incident."""
    last = max((w.window_end for w in view.windows), default=None)
    spans: dict[str, list[object]] = {}
    for a in view.alerts:
        key = a.incident_id or a.alert_id
        span = spans.setdefault(key, [a.window_start, last or a.window_end, a.severity])
        if a.status == "resolved":
            span[1] = a.window_start
        elif SEVERITY_ORDER[a.severity] > SEVERITY_ORDER[str(span[2])]:
            span[2] = a.severity
    return [(s[0], s[1], str(s[2])) for s in spans.values()]  # type: ignore[misc]


def _histograms(view: ModelView) -> str:
    if view.current is None:
        return ('<section><h2>Reference vs current</h2><p class="muted">No evaluated window in this range '
                "(the reference may still be forming from the first windows).</p></section>")
    cur = view.current
    charts = "".join(histogram_chart(h) for h in sorted(view.histograms, key=lambda h: -(h.psi or 0.0)))
    return (f'<section id="histograms"><h2>Reference vs current window ({_t(cur.window_start)} – '
            f"{_t(cur.window_end)}, {cur.n_events:,} events, version {escape(cur.model_version)})</h2>"
            f'<p class="muted">Share of values per reference bin (numeric: bins of the reference quantiles; '
            f"categorical: the reference's categories, then {escape('__other__')}). Sorted by PSI.</p>"
            f'<div class="grid">{charts}</div></section>')


def _findings(alert: AlertEvent, limit: int = 4) -> str:
    seen: list[str] = []
    for f in alert.findings:
        label = f"{f.feature}{f'[{f.slice}]' if f.slice else ''} {f.metric}={f.value:.3g}"
        if label not in seen:
            seen.append(label)
    more = f" (+{len(seen) - limit})" if len(seen) > limit else ""
    return escape(", ".join(seen[:limit]) or f"{alert.feature} {alert.metric}={alert.value:.3g}") + more


def _alerts(alerts: Iterable[AlertEvent]) -> str:
    rows = []
    for a in alerts:
        badge = severity_badge("info", "resolved") if a.status == "resolved" else severity_badge(a.severity)
        cause = escape(a.diagnosis.cause) if a.diagnosis else "–"
        rows.append(f"<tr><td>{_t(a.window_start)} – {a.window_end:%H:%M:%S}</td><td>{badge}</td>"
                    f"<td>{escape(a.kind)}</td><td><b>{escape(a.action)}</b></td><td>{_findings(a)}</td>"
                    f"<td>{cause}</td><td class=\"muted\">{escape((a.incident_id or '')[:12])}</td>"
                    f"<td class=\"muted\">{escape(a.alert_id[:12])}</td></tr>")
    if not rows:
        return '<section id="alerts"><h2>Alerts and decisions</h2><p class="muted">No alerts.</p></section>'
    return ('<section id="alerts"><h2>Alerts and decisions</h2><table><tr><th>window</th><th>status</th>'
            "<th>kind</th><th>decision</th><th>findings (ranked)</th><th>diagnosis</th><th>incident</th>"
            f"<th>alert id</th></tr>{''.join(rows)}</table></section>")


DECISION_COLOURS = {"retrain": "critical", "rollback": "critical", "blocked": "warning", "hold": "info",
                    "promote": "ok"}


def _decisions(decisions: Iterable[DecisionEvent]) -> str:
    rows = []
    for d in decisions:
        v = d.versions
        versions = ", ".join(f"{k} {x}" for k, x in (("current", v.current), ("challenger", v.challenger),
                                                      ("rollback to", v.rollback_target)) if x) or "–"
        failed = ", ".join(g.gate for g in d.gates if not g.passed) or "–"
        rows.append(f"<tr><td>{_t(d.decided_at)}</td><td>{severity_badge(DECISION_COLOURS.get(d.type, 'info'), d.type)}"
                    f"</td><td>{escape(d.source)} / {escape(d.policy_id)}</td><td>{escape(d.reason)}</td>"
                    f"<td>{escape(versions)}</td><td>{escape(failed)}</td>"
                    f"<td class=\"muted\">{escape(d.decision_id[:12])}</td></tr>")
    if not rows:
        return ""
    return ('<section id="decisions"><h2>Retraining decisions</h2><table><tr><th>decided</th><th>decision</th>'
            "<th>source / policy</th><th>reason</th><th>versions</th><th>failed gates</th><th>id</th></tr>"
            f"{''.join(rows)}</table></section>")


def _windows(windows: list[WindowReport]) -> str:
    rows = []
    for w in windows:
        top = ", ".join(f"{n} {v:.3f}" for n, v in top_drifted(w, limit=3)) or "–"
        rows.append(f"<tr><td>{_t(w.window_start)}</td><td>{_t(w.window_end)}</td>"
                    f"<td>{escape(w.model_version)}</td><td>{escape(w.role)}</td><td>{w.n_events:,}</td>"
                    f"<td>{escape(top)}</td></tr>")
    return ('<section id="windows"><h2>Windows</h2><table><tr><th>start</th><th>end</th><th>version</th>'
            f"<th>role</th><th>events</th><th>top PSI</th></tr>{''.join(rows)}</table></section>")


def _reference(view: ModelView) -> str:
    ref = view.reference
    if ref is None:
        return ('<section><h2>Reference profile</h2><p class="muted">None yet: the first windows of the stream '
                "become the reference.</p></section>")
    return (f'<section id="reference"><h2>Reference profile</h2><table>'
            f"<tr><th>version</th><td>{escape(ref.profile_id)}</td></tr>"
            f"<tr><th>source</th><td>{escape(ref.source)}</td></tr>"
            f"<tr><th>rows</th><td>{ref.row_count:,}</td></tr>"
            f"<tr><th>time span</th><td>{escape(str(ref.time_span[0]))} – {escape(str(ref.time_span[1]))}</td></tr>"
            f"<tr><th>created</th><td>{escape(ref.created_at)}</td></tr></table></section>")


def render_report(view: ModelView, *, generated_at: datetime | None = None) -> str:
    """The whole report page for one model as a string (write it with ``Path.write_text``)."""
    when = generated_at or datetime.now(UTC)
    start, end = view.range
    span = f"windows {_t(start) if start else 'from the start'} to {_t(end) if end else 'the end'}"
    subtitle = (f"owner {view.owner or '–'} · {span} · reference {view.reference.profile_id if view.reference else '–'}"
                f" · generated {when:%Y-%m-%d %H:%M:%S} UTC by stream-monitor {__version__}")
    body = [_summary(view), _diagnosis(view)]
    timelines = [_timeline(view, "psi", "PSI per feature over time"),
                 _timeline(view, "ks_statistic", "KS statistic per feature over time")]
    if any(timelines):
        body.append(f'<section id="timeline"><h2>Drift scores over time</h2>{"".join(timelines)}</section>')
    body += [_histograms(view), _alerts(view.alerts), _decisions(view.decisions), _windows(view.windows),
             _reference(view)]
    return page(f"Drift report: {view.model_id}", subtitle, "".join(body))

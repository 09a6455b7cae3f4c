"""`edgekit diff --html`: the layers in order with their SNR as a curve, the tolerance as a line, the first
divergent layer marked; one self-contained page."""

from __future__ import annotations

import html

from edgekit.layerdiff.report import DiffReport

_W, _H, _M = 760, 260, 44  # the plot's width, height, margin (px)


def render(report: DiffReport) -> str:
    esc = html.escape
    first = report.first_divergent
    rows = "".join(
        f"<tr{' class=first' if r is first else ''}><td>{i}</td><td>{esc(r.layer)}</td><td>{esc(r.kind)}</td>"
        f"<td>{esc(r.quantization or '')}</td><td>{_fmt(r.metrics.get('snr_db'), '.1f', 'exact')}</td>"
        f"<td>{_fmt(r.metrics.get('median_channel_snr_db'), '.1f', 'exact')}</td>"
        f"<td>{_fmt(r.metrics.get('cosine'), '.5f')}</td><td>{_fmt(r.metrics.get('max_abs'), '.3g')}</td>"
        f"<td>{_fmt(r.added_error, '.2e')}</td><td>{_verdict(r, first)}</td></tr>"
        for i, r in enumerate(report.layers)
    )
    headline = (
        f"First divergent layer: <strong>{esc(first.layer)}</strong>" if first else "No layer is past the tolerance."
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in report.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgekit diff: {esc(report.artifact)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}}
td:nth-child(-n+4),th:nth-child(-n+4){{text-align:left}} tr.first td{{color:#b00;font-weight:600}}
svg text{{font-size:11px}}
</style></head><body>
<h1>{esc(report.artifact)} ({esc(report.runtime)}) vs {esc(report.reference)}</h1>
<p>{headline} &middot; {report.samples} samples &middot; metric {esc(report.metric)}
{"" if report.threshold is None else f"(tolerance {report.threshold:g})"} &middot;
{sum(r.compared for r in report.layers)} of {len(report.layers)} weighted layers compared</p>
{_curve(report)}
<table id="layers"><thead><tr><th>#</th><th>layer</th><th>kind</th><th>quantization</th><th>SNR dB</th>
<th>median channel</th><th>cosine</th><th>max |diff|</th><th>added error</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""


def _verdict(row, first) -> str:
    if not row.compared:
        return f"not compared: {html.escape(row.unmatched or '')}"
    return "first divergent" if row is first else ("ok" if row.passed else "past tolerance")


def _fmt(value, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _curve(report: DiffReport) -> str:
    """SNR (dB) per layer in order; exact layers sit at the top of the axis."""
    points = [(i, r.metrics.get("snr_db")) for i, r in enumerate(report.layers) if r.compared]
    if not points:
        return ""
    finite = [v for _, v in points if v is not None]
    top = max([*finite, report.threshold or 0, 1.0]) + 5
    bottom = min([*finite, report.threshold or 0, 0.0]) - 5
    n = max(len(report.layers) - 1, 1)
    x = lambda i: _M + i / n * (_W - 2 * _M)
    y = lambda v: _H - _M - ((top if v is None else v) - bottom) / (top - bottom) * (_H - 2 * _M)
    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in points)
    first = report.first_divergent
    dots = "".join(
        f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="{6 if report.layers[i] is first else 3}" '
        f'fill="{"#d62728" if report.layers[i] is first else "#1f77b4"}"><title>'
        f"{html.escape(report.layers[i].layer)}: {_fmt(v, '.1f', 'exact')} dB</title></circle>"
        for i, v in points
    )
    tolerance = (
        f'<line x1="{_M}" x2="{_W - _M}" y1="{y(report.threshold):.1f}" y2="{y(report.threshold):.1f}" '
        f'stroke="#d62728" stroke-dasharray="4 3"/><text x="{_W - _M + 4}" y="{y(report.threshold) + 4:.1f}">'
        f"{report.threshold:g} dB</text>"
        if report.metric == "snr" and report.threshold is not None
        else ""
    )
    return (
        f'<svg id="snr" width="{_W}" height="{_H}" role="img" aria-label="SNR per layer">'
        f'<line x1="{_M}" y1="{_H - _M}" x2="{_W - _M}" y2="{_H - _M}" stroke="#888"/>'
        f'<line x1="{_M}" y1="{_M}" x2="{_M}" y2="{_H - _M}" stroke="#888"/>'
        f'<text x="4" y="{_M - 8}">SNR dB</text><text x="{_W / 2:.0f}" y="{_H - 10}">layers in order</text>'
        f'<polyline points="{line}" fill="none" stroke="#1f77b4"/>{tolerance}{dots}</svg>'
    )

"""edgekit report: one self-contained HTML page (inline SVG and CSS, no script, nothing fetched) from
evaluate, benchmark, pipeline, search and demo JSON: the comparison table, accuracy against latency with size
(the Pareto front marked), and the latency distribution of every file on every device."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import UsageError


@dataclass
class Row:
    """One file on one device: what the results say about it."""

    artifact: str
    device: str = "-"
    accuracy: float | None = None
    f1: float | None = None
    p50: float | None = None
    p90: float | None = None
    size_mb: float | None = None
    samples: list[float] = field(default_factory=list)
    pareto: bool = False


def read_results(files: list[Path]) -> list[Row]:
    """Rows from `edgekit evaluate --json`, `edgekit benchmark --json` and `demo-results.json`, joined by file."""
    accuracy: dict[str, tuple[float | None, float | None]] = {}
    rows: dict[tuple[str, str], Row] = {}
    for file in files:
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"{file} is not readable JSON: {e}.") from None
        kind = _kind(data)
        if kind is None:
            raise UsageError(
                f"{file} is not a result edgekit writes.",
                hint="Give the --json of edgekit evaluate or benchmark, a pipeline's last-run.json, a search's "
                "search.json, or a demo's demo-results.json.",
            )
        if kind == "evaluate":
            accuracy[Path(data["artifact"]).name] = (data["metrics"].get("accuracy"), data["metrics"].get("f1_macro"))
        elif kind == "benchmark":
            for run in data:
                name, device = Path(run["artifact"]).name, run.get("device", "local")
                latency = run["latency_ms"]
                rows[name, device] = Row(name, device, p50=latency.get("p50"), p90=latency.get("p90"),
                                         size_mb=run.get("size_bytes", 0) / 1e6,
                                         samples=list(run.get("samples_ms") or []))  # fmt: skip
        elif kind == "search":
            for trial in data["trials"]:  # a trial that failed has no file to show
                if trial["status"] != "failed" and "same_file_as" not in trial:
                    accuracy[trial["name"]] = (trial.get("accuracy"), None)
                    rows[trial["name"], data["bench_device"]] = Row(
                        trial["name"], data["bench_device"], p50=trial.get("p50_ms"), p90=trial.get("p90_ms"),
                        size_mb=trial["size_bytes"] / 1e6,
                    )  # fmt: skip
        elif kind == "pipeline":
            try:
                _pipeline_rows(data, rows, accuracy)
            except (KeyError, TypeError, AttributeError, ValueError) as e:
                said = f"{file} looks like a pipeline's last-run.json but is not one edgekit wrote ({e!r})."
                raise UsageError(said) from None
        else:
            for r in data["classifier"]["targets"]:
                if "file" in r:
                    accuracy[r["file"]] = (r.get("accuracy"), r.get("f1_macro"))
                    rows.setdefault((r["file"], "in-process"), Row(r["file"], "in-process", p50=r.get("p50_ms"),
                                                                  size_mb=r["size_bytes"] / 1e6))  # fmt: skip
    for name, (acc, f1) in accuracy.items():
        matched = [row for (n, _), row in rows.items() if n == name]
        for row in matched or [rows.setdefault((name, "-"), Row(name))]:
            row.accuracy, row.f1 = acc, f1
    out = sorted(rows.values(), key=lambda r: (r.device, r.p50 if r.p50 is not None else float("inf")))
    _mark_pareto(out)
    return out


def _pipeline_rows(data: dict, rows: dict[tuple[str, str], Row], accuracy: dict) -> None:
    """A pipeline's last-run.json: one file per target of each combination, named after both."""
    for combination in data.get("combinations", [data]):
        for target, figures in (combination.get("targets") or {}).items():
            name = f"{combination['name']}: {target}" if combination.get("name") else target
            accuracy[name] = (figures.get("accuracy"), figures.get("f1_macro"))
            for device, p90 in (figures.get("p90_ms") or {}).items():
                p50 = (figures.get("p50_ms") or {}).get(device)
                rows[name, device] = Row(name, device, p50=p50, p90=p90, size_mb=figures["size_bytes"] / 1e6)
            if not figures.get("p90_ms"):
                rows[name, "-"] = Row(name, "-", size_mb=figures["size_bytes"] / 1e6)


def _kind(data: Any) -> str | None:
    if isinstance(data, dict) and "metrics" in data and "artifact" in data:
        return "evaluate"
    if isinstance(data, list) and data and all(isinstance(r, dict) and "latency_ms" in r for r in data):
        return "benchmark"
    if isinstance(data, dict) and isinstance(data.get("classifier"), dict) and "targets" in data["classifier"]:
        return "demo"
    if isinstance(data, dict) and "pipeline" in data and isinstance(data.get("steps"), list):
        return "pipeline"
    if isinstance(data, dict) and isinstance(data.get("trials"), list) and "front" in data and "choices" in data:
        return "search"
    return None


def _mark_pareto(rows: list[Row]) -> None:
    """Per device: the files no other file beats on both accuracy (higher) and p50 latency (lower)."""
    from edgekit.release.pareto import pareto_front

    for device in {r.device for r in rows}:
        scored = [r for r in rows if r.device == device and r.accuracy is not None and r.p50 is not None]
        for r in pareto_front(scored, lambda r: (-(r.accuracy or 0.0), r.p50 or 0.0)):
            r.pareto = True


def render(rows: list[Row], title: str = "edgekit report") -> str:
    """The page: table, scatter per device, latency distributions."""
    if not rows:
        raise UsageError("The results hold no file to report on.")
    esc = html.escape
    table = "".join(
        f"<tr{' class=pareto' if r.pareto else ''}><td>{esc(r.artifact)}</td><td>{esc(r.device)}</td>"
        f"<td>{_fmt(r.accuracy, '.4f')}</td><td>{_fmt(r.f1, '.4f')}</td><td>{_fmt(r.p50, '.3f')}</td>"
        f"<td>{_fmt(r.p90, '.3f')}</td><td>{_fmt(r.size_mb, '.2f')}</td><td>{'yes' if r.pareto else ''}</td></tr>"
        for r in rows
    )
    devices = sorted({r.device for r in rows})
    scatters = "".join(_scatter(device, [r for r in rows if r.device == device]) for device in devices)
    boxes = "".join(_boxes(device, [r for r in rows if r.device == device]) for device in devices)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}}
td:first-child,th:first-child{{text-align:left}}
tr.pareto td{{font-weight:600}} figure{{display:inline-block;margin:1em 2em 1em 0}} svg text{{font-size:11px}}
</style></head><body>
<h1>{esc(title)}</h1>
<table id="comparison"><thead><tr><th>file</th><th>device</th><th>accuracy</th><th>macro-F1</th><th>p50 ms</th>
<th>p90 ms</th><th>MB</th><th>Pareto</th></tr></thead><tbody>{table}</tbody></table>
<h2>Accuracy, latency and size</h2>{scatters or "<p>No file has both accuracy and latency.</p>"}
<h2>Latency distributions</h2>{boxes or "<p>No latency results.</p>"}
</body></html>
"""


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _scatter(device: str, rows: list[Row]) -> str:
    """Accuracy (y) against p50 latency (x); circle area by size; the Pareto front joined and filled."""
    pts = [(r, r.p50, r.accuracy) for r in rows if r.accuracy is not None and r.p50 is not None]
    if not pts:
        return ""
    w, h, m = 520, 320, 50
    top = max(t for _, t, _ in pts) * 1.1
    low, high = min(a for _, _, a in pts), max(a for _, _, a in pts)
    pad = max((high - low) * 0.15, 0.002)
    x, y = _scale(0, top, m, w - 20), _scale(low - pad, high + pad, h - m, 20)
    biggest = max((r.size_mb or 0) for r, _, _ in pts) or 1.0
    front = sorted(((t, a) for r, t, a in pts if r.pareto))
    path = " ".join(f"{x(t):.1f},{y(a):.1f}" for t, a in front)
    dots = "".join(
        f'<circle class="point" cx="{x(t):.1f}" cy="{y(a):.1f}" r="{4 + 10 * ((r.size_mb or 0) / biggest) ** 0.5:.1f}" '
        f'fill="{"#d62728" if r.pareto else "#1f77b4"}" fill-opacity=".6"><title>{html.escape(r.artifact)}: '
        f"{a:.4f}, {t:.3f} ms, {_fmt(r.size_mb, '.2f')} MB</title></circle>"
        + (f'<text x="{x(t) + 8:.1f}" y="{y(a) - 6:.1f}">{html.escape(r.artifact)}</text>' if r.pareto else "")
        for r, t, a in pts
    )
    return (
        f'<figure><svg class="scatter" width="{w}" height="{h}" role="img" aria-label="accuracy vs latency on '
        f'{html.escape(device)}"><line x1="{m}" y1="{h - m}" x2="{w - 20}" y2="{h - m}" stroke="#888"/>'
        f'<line x1="{m}" y1="20" x2="{m}" y2="{h - m}" stroke="#888"/>'
        f'<polyline points="{path}" fill="none" stroke="#d62728" stroke-dasharray="4 3"/>{dots}'
        f'<text x="{w / 2:.0f}" y="{h - 15}">p50 latency, ms (0 to {top:.2f})</text>'
        f'<text x="5" y="15">accuracy ({low:.3f} to {high:.3f})</text></svg>'
        f"<figcaption>{html.escape(device)}: red, named = Pareto front (nothing is both more accurate and "
        "faster); circle area = size; hover a circle for its file</figcaption></figure>"
    )


def _boxes(device: str, rows: list[Row]) -> str:
    """One box per file: quartiles and 1st-99th percentile whiskers of its samples (or p50 and p90)."""
    import numpy as np

    timed = [r for r in rows if r.samples or r.p50 is not None]
    if not timed:
        return ""
    stats: list[tuple[str, float, float, float, float, float]] = []
    for r in timed:
        if r.samples:
            p1, q1, med, q3, p99 = (float(v) for v in np.percentile(r.samples, [1, 25, 50, 75, 99]))
            stats.append((r.artifact, p1, q1, med, q3, p99))
        else:
            p50 = r.p50 or 0.0
            stats.append((r.artifact, p50, p50, p50, r.p90 or p50, r.p90 or p50))
    w, row_h, left = 620, 26, 230
    h = 40 + row_h * len(stats)
    x = _scale(0, max(s[5] for s in stats) * 1.05, left, w - 20)
    parts = []
    for i, (name, p1, q1, med, q3, p99) in enumerate(stats):
        cy = 20 + row_h * i + row_h / 2
        parts.append(
            f'<g class="box"><text x="5" y="{cy + 4:.0f}">{html.escape(name)}</text>'
            f'<line x1="{x(p1):.1f}" y1="{cy}" x2="{x(p99):.1f}" y2="{cy}" stroke="#555"/>'
            f'<rect x="{x(q1):.1f}" y="{cy - 8}" width="{max(x(q3) - x(q1), 1):.1f}" height="16" fill="#9ecae1" '
            f'stroke="#3182bd"/><line x1="{x(med):.1f}" y1="{cy - 8}" x2="{x(med):.1f}" y2="{cy + 8}" '
            f'stroke="#08306b" stroke-width="2"/><title>{html.escape(name)}: median {med:.3f} ms</title></g>'
        )
    axis = f'<text x="{left}" y="{h - 5}">0 to {max(s[5] for s in stats) * 1.05:.2f} ms</text>'
    return (
        f'<figure><svg class="latency" width="{w}" height="{h}" role="img" aria-label="latency on '
        f'{html.escape(device)}">{"".join(parts)}{axis}</svg><figcaption>{html.escape(device)}: boxes are '
        "the middle half of the samples, whiskers the 1st to 99th percentile</figcaption></figure>"
    )


def write_report(results: list[str | Path], out: str | Path, title: str = "edgekit report") -> Path:
    """Render `results` into `out` (written atomically)."""
    from edgekit.artifact import write_text_atomic

    out = Path(out)
    page = render(read_results([Path(r) for r in results]), title)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, page)
    return out

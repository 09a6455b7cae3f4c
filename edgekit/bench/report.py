"""The benchmark comparison table (speed-up against the first artifact)."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def print_runs(runs: list[dict]) -> None:
    table = Table(title="edgekit benchmark (latency in ms; each process fresh)")
    for col in ("artifact", "thr", "batch", "p50", "p90", "p99", "p50 95% CI", "init", "first", "peak MB",
                "per s", "size MB", "gzip MB", "speed-up", "flags"):
        table.add_column(col, justify="left" if col in ("artifact", "flags") else "right")
    first_p50: dict[tuple[int, int], float] = {}
    for run in runs:
        lat = run["latency_ms"]
        key = (run["threads"], run["batch"])
        first_p50.setdefault(key, lat["p50"])
        ci = lat.get("median_ci95")
        flags = ", ".join(f for f, on in (("noisy", run["noisy"]), ("drift", run["drift_flag"])) if on)
        table.add_row(Path(run["artifact"]).name, str(run["threads"]), str(run["batch"]), f"{lat['p50']:.3f}",
                      f"{lat['p90']:.3f}", f"{lat['p99']:.3f}", f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-",
                      f"{run['init_ms']:.1f}", f"{run['first_inference_ms']:.2f}",
                      f"{run['peak_rss_mb']:.0f}" if run["peak_rss_mb"] else "-", f"{run['throughput_per_s']:.0f}",
                      f"{run['size_bytes'] / 1e6:.2f}", f"{run['size_gzip_bytes'] / 1e6:.2f}",
                      f"{first_p50[key] / lat['p50']:.2f}x", flags)
    Console(width=max(150, Console().width)).print(table)

"""The benchmark comparison table (speed-up against the first artifact)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def print_runs(runs: list[dict], stderr: bool = False) -> None:
    table = Table(title="edgekit benchmark (latency in ms; each process fresh)")
    for col in (
        "artifact",
        "thr",
        "batch",
        "p50",
        "p90",
        "p99",
        "p50 95% CI",
        "init",
        "first",
        "peak MB",
        "per s",
        "size MB",
        "gzip MB",
        "speed-up",
        "GFLOP/s",
        "η",
        "flags",
    ):
        table.add_column(
            col,
            justify="left" if col in ("artifact", "flags") else "right",
            overflow="fold",
            min_width=18 if col == "artifact" else None,
        )
    first_p50: dict[tuple[int, int], float] = {}
    for run in runs:
        lat = run["latency_ms"]
        key = (run["threads"], run["batch"])
        ci = lat.get("median_ci95")
        flags = ", ".join(f for f, on in (("noisy", run["noisy"]), ("drift", run["drift_flag"])) if on)
        central = lat["p50"] if lat.get("p50") is not None else lat["mean"]  # native tools may give only a mean
        first_p50.setdefault(key, central)
        fed = run.get("batch_fed", run["batch"])
        batch = str(run["batch"]) if fed == run["batch"] else f"{fed} (asked {run['batch']})"
        table.add_row(
            Path(run["artifact"]).name,
            str(run["threads"]),
            batch,
            _f(lat.get("p50"), 3),
            _f(lat.get("p90"), 3),
            _f(lat.get("p99"), 3),
            f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-",
            _f(run["init_ms"], 1),
            _f(run["first_inference_ms"], 2),
            _f(run["peak_rss_mb"], 0),
            _f(run["throughput_per_s"], 0),
            f"{run['size_bytes'] / 1e6:.2f}",
            f"{run['size_gzip_bytes'] / 1e6:.2f}",
            _speedup(run, first_p50[key] / central),
            _f((run.get("work") or {}).get("achieved_gflops"), 1),
            _f((run.get("work") or {}).get("efficiency"), 2),
            flags,
        )
    Console(width=max(200, Console().width), stderr=stderr).print(table)


def _speedup(run: dict, plain: float) -> str:
    """The speed ratio to the first artifact: from paired rounds with its 95 % interval where there are enough."""
    ratio = run.get("ratio_to_first")
    if not ratio:
        return f"{plain:.2f}x"
    return f"{ratio['ratio']:.3f}x ±{ratio['half_width'] * 100:.1f}%"


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"

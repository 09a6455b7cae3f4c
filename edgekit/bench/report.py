"""The benchmark comparison table (speed-up against the first artifact)."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

# every column, and the ones kept on a terminal narrower than WIDE (an 80-column one, a CI log): the JSON
# always has every figure
COMPACT = ("artifact", "thr", "batch", "p50", "p90", "init", "peak MB", "size MB", "speed-up", "flags")
SHORT = {"peak MB": "RSS MB", "size MB": "MB", "speed-up": "x first"}  # narrower headers on a narrow terminal
WIDE = 160


def print_runs(runs: list[dict], stderr: bool = False, width: int | None = None) -> None:
    """The comparison table, fitted to the terminal: every column where it is wide, the main ones otherwise."""
    console = Console(stderr=stderr, width=width)
    rows = [_cells(run, runs) for run in runs]
    columns = list(rows[0]) if rows else list(COMPACT)
    narrow = console.width < WIDE
    title = "edgekit benchmark (ms; fresh processes)"
    if narrow:
        columns = [c for c in columns if c in COMPACT and (c != "flags" or any(r["flags"] for r in rows))]
        same = [c for c in ("thr", "batch") if len({r[c] for r in rows}) == 1]  # said once, in the title
        columns = [c for c in columns if c not in same]
        if rows and same:
            title = f"edgekit benchmark (ms; {', '.join(f'{c} {rows[0][c]}' for c in same)}; fresh processes)"
        for row, run in zip(rows, runs):  # the ratio without its interval
            ratio = run.get("ratio_to_first")
            row["speed-up"] = f"{ratio['ratio']:.2f}x" if ratio else row["speed-up"].split(" ")[0]
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD if narrow else box.HEAVY_HEAD,
        pad_edge=not narrow,
        collapse_padding=narrow,
    )
    for col in columns:
        table.add_column(
            SHORT.get(col, col) if narrow else col,
            justify="left" if col in ("artifact", "flags") else "right",
            overflow="fold",
            min_width=min(32, max(len(r[col]) for r in rows)) if col == "artifact" and rows else None,
        )
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    console.print(table)
    if narrow:
        console.print("p99, intervals, first inference, throughput, gzip size, GFLOP/s, η: --json or a wider terminal")


def _cells(run: dict, runs: list[dict]) -> dict[str, str]:
    lat = run["latency_ms"]
    central = lat["p50"] if lat.get("p50") is not None else lat["mean"]  # native tools may give only a mean
    first = next(r for r in runs if (r["threads"], r["batch"]) == (run["threads"], run["batch"]))["latency_ms"]
    first_central = first["p50"] if first.get("p50") is not None else first["mean"]
    ci = lat.get("median_ci95")
    fed = run.get("batch_fed", run["batch"])
    work = run.get("work") or {}
    return {
        "artifact": Path(run["artifact"]).name,
        "thr": str(run["threads"]),
        "batch": str(run["batch"]) if fed == run["batch"] else f"{fed} (asked {run['batch']})",
        "p50": _f(lat.get("p50"), 3),
        "p90": _f(lat.get("p90"), 3),
        "p99": _f(lat.get("p99"), 3),
        "p50 95% CI": f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-",
        "init": _f(run["init_ms"], 1),
        "first": _f(run["first_inference_ms"], 2),
        "peak MB": _f(run["peak_rss_mb"], 0),
        "per s": _f(run["throughput_per_s"], 0),
        "size MB": f"{run['size_bytes'] / 1e6:.2f}",
        "gzip MB": f"{run['size_gzip_bytes'] / 1e6:.2f}",
        "speed-up": _speedup(run, first_central / central),
        "GFLOP/s": _f(work.get("achieved_gflops"), 1),
        "η": _f(work.get("efficiency"), 2),
        "flags": ", ".join(f for f, on in (("noisy", run["noisy"]), ("drift", run["drift_flag"])) if on),
    }


def _speedup(run: dict, plain: float) -> str:
    """The speed ratio to the first artifact: from paired rounds with its 95 % interval where there are enough."""
    ratio = run.get("ratio_to_first")
    if not ratio:
        return f"{plain:.2f}x"
    return f"{ratio['ratio']:.3f}x ±{ratio['half_width'] * 100:.1f}%"


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_generation_runs(runs: list[dict], stderr: bool = False) -> None:
    """The generation table: time to first token, prefill and decode speed, per-token latency, memory, size; a
    setting every run shares is said once, in the title (intervals and each process's figures: the JSON)."""
    rows = [
        {
            "artifact": Path(run["artifact"]).name,
            "threads": str(run["threads"]),
            "prompt": str(run["prompt_tokens"]),
            "new": str(run["new_tokens"]),
            "TTFT ms": f"{run['time_to_first_token_ms']['median']:.1f}",
            "prefill tok/s": f"{run['prefill_tokens_per_s']['median']:.0f}" if run["prefill_tokens_per_s"] else "-",
            "decode tok/s": f"{run['decode_tokens_per_s']['median']:.1f}",
            "p50 ms": _ms(run["token_latency_ms"].get("p50")),
            "p99 ms": _ms(run["token_latency_ms"].get("p99")),
            "RSS MB": f"{run['peak_rss_mb']:.0f}" if run["peak_rss_mb"] else "-",
            "size MB": f"{run['size_bytes'] / 1e6:.1f}",
        }
        for run in runs
    ]
    same = [c for c in ("threads", "prompt", "new") if rows and len({r[c] for r in rows}) == 1]
    said = ", ".join(f"{c} {rows[0][c]}" for c in same)
    table = Table(title=f"edgekit benchmark --generate ({said + '; ' if said else ''}medians over fresh processes)")
    table.box, table.collapse_padding, table.pad_edge = box.SIMPLE_HEAD, True, False
    columns = [c for c in (rows[0] if rows else {}) if c not in same]
    for col in columns:  # headers a word a line and the file name folding: every column fits 80 characters
        if col == "artifact":
            table.add_column(col, overflow="fold", min_width=min(14, max(len(r[col]) for r in rows)), ratio=1)
        else:
            table.add_column(col.replace(" ", "\n"), justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    Console(stderr=stderr).print(table)


def _ms(value: float | None) -> str:
    """A per-token latency cell: '-' where the runtime's own tool gave no percentiles."""
    return "-" if value is None else f"{value:.2f}"

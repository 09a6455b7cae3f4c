"""trtexec, TensorRT's own command-line tool: the build and benchmark command lines edgekit gives it, and its
logs parsed into edgekit's fields (performance summary, TensorRT version, GPU, parser errors).

Its summary lines read `Latency: min = 5.38 ms, max = ..., mean = ..., median = ..., percentile(90%) = ...`;
the percentiles listed depend on the version (8.x: one, 10.x: 90, 95 and 99 by default). No raw samples.
"""

from __future__ import annotations

import re
from typing import Any

from edgekit.backends.tensorrt.profiles import Profile, shapes_argument
from edgekit.errors import EdgekitError

_NUM = r"([-+0-9.eE]+)"
# trtexec's summary name -> edgekit's field
_SERIES = {
    "Latency": "latency_ms",  # host latency: H2D + GPU compute + D2H, per inference
    "GPU Compute Time": "gpu_compute_ms",
    "Enqueue Time": "enqueue_ms",
    "H2D Latency": "h2d_ms",
    "D2H Latency": "d2h_ms",
}
WELL_KNOWN_PATHS = ("trtexec", "/usr/src/tensorrt/bin/trtexec")  # PATH, then where JetPack and NGC images put it


def _series(line: str) -> dict[str, float]:
    """`min = 1 ms, max = 2 ms, ..., percentile(90%) = 3 ms` -> {"min": 1, ..., "p90": 3}."""
    out: dict[str, float] = {}
    for key, value in re.findall(r"(min|max|mean|median|percentile\(\d+(?:\.\d+)?%\))\s*=\s*" + _NUM, line):
        if key.startswith("percentile"):
            key = "p" + format(float(key[len("percentile(") : -2]), "g")  # percentile(90%) -> p90
        elif key == "median":
            key = "p50"
        out[key] = float(value)
    return out


def parse_performance(text: str) -> dict[str, Any]:
    """The `=== Performance summary ===` of a trtexec run, as edgekit's native-tool run fields."""
    start = text.find("=== Performance summary ===")
    if start < 0:
        raise EdgekitError(
            "trtexec printed no performance summary; it failed or was interrupted.", hint=text.strip()[-500:]
        )
    summary = text[start:]
    out: dict[str, Any] = {"tool": "trtexec"}
    for name, field in _SERIES.items():
        match = re.search(rf"\]\s*{re.escape(name)}:\s*(min = .*)", summary)
        if match:
            out[field] = _series(match.group(1))
    if "latency_ms" not in out:
        raise EdgekitError("trtexec's performance summary has no Latency line.", hint=summary[:500])
    latency = out["latency_ms"]
    for key in ("p50", "p90", "p99", "std"):
        latency.setdefault(key, None)
    throughput = re.search(r"Throughput:\s*" + _NUM + r"\s*qps", summary)
    out["throughput_qps"] = float(throughput.group(1)) if throughput else None
    out["init_ms"] = None  # trtexec reports no load time in its summary
    out["first_inference_ms"] = None
    out.update(parse_device(text))
    return out


def parse_device(text: str) -> dict[str, Any]:
    """TensorRT version, GPU name and compute capability from a trtexec log (build or benchmark)."""
    out: dict[str, Any] = {}
    for key, pattern in (
        ("tensorrt_version", r"TensorRT version:\s*([0-9.]+)"),
        ("gpu", r"Selected Device:\s*(.+?)\s*$"),
        ("compute_capability", r"Compute Capability:\s*([0-9.]+)"),
    ):
        match = re.search(pattern, text, re.MULTILINE)
        if match:
            out[key] = match.group(1)
    if "tensorrt_version" not in out:  # `&&&& RUNNING TensorRT.trtexec [TensorRT v101303]` -> 10.13.3
        banner = re.search(r"\[TensorRT v(\d+)\]", text)
        if banner:
            out["tensorrt_version"] = _version_from_banner(banner.group(1))
    return out


def _version_from_banner(digits: str) -> str:
    """trtexec's banner packs the version as MMmmpp (101303 -> 10.13.3) or Mmmpp (8601 -> 8.6.1)."""
    major = digits[:-4] or "0"
    return f"{int(major)}.{int(digits[-4:-2])}.{int(digits[-2:])}"


def parse_parser_errors(text: str) -> list[str]:
    """The ONNX parser's complaints in a trtexec log (`While parsing node number 0 [Conv]:`, `ERROR: ...`,
    `No importer registered for op: X`, `[E] ...` lines), without the generic last line when there are others."""
    pattern = re.compile(r"While parsing node|ERROR:|No importer registered|In node|Assertion failed|\[E\]")
    lines = [re.sub(r"^\[[^]]*\]\s*(\[[A-Z]\]\s*)?", "", ln).strip() for ln in text.splitlines() if pattern.search(ln)]
    specific = [ln for ln in lines if ln and "Failed to parse onnx file" not in ln]
    return specific or [ln for ln in lines if ln]


def build_command(
    trtexec: str,
    onnx: str,
    engine: str,
    flags: tuple[str, ...],
    profiles: list[Profile],
    timing_cache: str,
    layer_info: str,
    workspace_mib: int,
) -> list[str]:
    """trtexec builds the engine (no inference) with the export's precision flags and profiles, a timing
    cache for repeatable builds, and the per-layer report (names, precisions) as JSON."""
    argv = [
        trtexec,
        f"--onnx={onnx}",
        f"--saveEngine={engine}",
        f"--timingCacheFile={timing_cache}",
        f"--memPoolSize=workspace:{workspace_mib}M",
        "--profilingVerbosity=detailed",
        f"--exportLayerInfo={layer_info}",
        "--skipInference",
    ]
    argv += [f"--{flag.lower()}" for flag in flags]  # FP16 -> --fp16, INT8 -> --int8
    if profiles:
        argv += [f"--{which}Shapes={shapes_argument(profiles, which)}" for which in ("min", "opt", "max")]
    return argv


def benchmark_command(tool: str, model: str, threads: int, runs: int, warmup: int) -> list[str]:
    """trtexec times a built engine (threads do not apply to the GPU; warm-up is in milliseconds there)."""
    return [tool, f"--loadEngine={model}", f"--iterations={runs}", f"--warmUp={max(200, warmup * 20)}"]

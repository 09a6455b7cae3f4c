"""This machine's measured GEMM peak, fp32 and int8, per thread count: the roof the benchmark's achieved
GFLOP/s is held against (efficiency = time the work would take at peak / the time it took).

Measured with ONNX Runtime's own GEMM kernels (MatMul and MatMulInteger on a 256x1024 by 1024x1024
product, best of several runs), so the peak is what the runtime can reach here, not a datasheet number.
Cached per CPU model and thread count under the edgekit cache; a few seconds the first time.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np

from edgekit.cache import cache_dir, write_cache_file
from edgekit.catalog.detect import cpu_model

M, K, N = 256, 1024, 1024
REPEATS = 20


def _model(int8: bool) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        a = helper.make_tensor_value_info("a", TensorProto.UINT8, [M, K])
        weight = numpy_helper.from_array(rng.integers(-127, 128, (K, N), dtype=np.int8), "w")
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        y = helper.make_tensor_value_info("y", TensorProto.INT32, [M, N])
    else:
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [M, K])
        weight = numpy_helper.from_array(rng.standard_normal((K, N)).astype(np.float32), "w")
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [M, N])
    graph = helper.make_graph([node], "gemm", [a], [y], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _gflops(int8: bool, threads: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(_model(int8), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    feed = {"a": rng.integers(0, 256, (M, K), dtype=np.uint8) if int8 else rng.standard_normal((M, K), np.float32)}
    session.run(None, feed)
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        session.run(None, feed)
        best = min(best, time.perf_counter() - start)
    return 2 * M * K * N / best / 1e9


def peak_gflops(threads: int) -> dict[str, Any]:
    """{"fp32": GFLOP/s, "int8": GOP/s, "cpu": ..., "threads": ...}, measured once per machine and cached."""
    cpu = cpu_model()
    key = hashlib.sha256(cpu.encode()).hexdigest()[:12]
    path = cache_dir() / "peak" / f"{key}-t{threads}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = {
        "fp32": round(_gflops(False, threads), 2),
        "int8": round(_gflops(True, threads), 2),
        "cpu": cpu,
        "threads": threads,
        "method": f"ONNX Runtime MatMul / MatMulInteger {M}x{K}x{N}, best of {REPEATS}",
    }
    write_cache_file(path, lambda tmp: tmp.write_text(json.dumps(result)))
    return result


def efficiency(work: dict[str, Any], seconds: float, peak: dict[str, Any]) -> float | None:
    """Time the work would take at this machine's peak (int8 and float work at their own peaks), over the
    time it took: 1.0 is the roofline."""
    if seconds <= 0 or not work.get("flops"):
        return None
    ideal = work["int8_flops"] / (peak["int8"] * 1e9) + work["float_flops"] / (peak["fp32"] * 1e9)
    return ideal / seconds

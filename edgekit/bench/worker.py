"""One benchmark repetition in a fresh process: load, first inference, warm-up, timed runs, memory.

Self-contained on purpose (standard library + numpy + the runtime): edgekit pushes this file to
ssh hosts and runs it with the host's own Python, so it must not import edgekit.
Prints one JSON object on stdout.

    python worker.py MODEL --threads N --batch N --warmup N --min-runs N --min-time S [--seed N]
"""
import argparse
import json
import os
import sys
import time


def read_status_kb(field):
    """A field of /proc/self/status in kB (VmHWM: peak resident set), or None where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def read_smaps_rollup_kb():
    """Rss and Pss of this process now, from /proc/self/smaps_rollup (kB)."""
    out = {}
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                key = line.split(":")[0]
                if key in ("Rss", "Pss"):
                    out[key.lower() + "_kb"] = int(line.split()[1])
    except OSError:
        pass
    return out


def make_inputs(specs, batch, seed):
    """Random inputs for (name, dtype, shape) specs: dim 0 dynamic = batch, other dynamic dims = 64."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feed = {}
    for name, dtype, shape in specs:
        dims = []
        for i, d in enumerate(shape):
            dims.append(d if isinstance(d, int) and d > 0 else (batch if i == 0 else 64))
        if "float" in dtype:
            feed[name] = rng.standard_normal(dims).astype(dtype)
        elif "mask" in name:
            feed[name] = np.ones(dims, dtype=dtype)
        elif "type" in name:
            feed[name] = np.zeros(dims, dtype=dtype)
        else:
            feed[name] = rng.integers(0, 100, dims).astype(dtype)
    return feed


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
              "tensor(bool)": "bool"}


def import_onnxruntime():
    import onnxruntime

    return onnxruntime


def load_onnxruntime(ort, path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    specs = [(i.name, _ORT_TYPES.get(i.type, "float32"), list(i.shape)) for i in session.get_inputs()]
    names = [o.name for o in session.get_outputs()]

    def infer(feed):
        return session.run(names, feed)

    infer.session = session
    return specs, infer, {"onnxruntime": ort.__version__}


def import_litert():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, {"ai_edge_litert": _version("ai-edge-litert")}
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, {"tflite_runtime": _version("tflite-runtime")}


def load_litert(imported, path, threads):
    Interpreter, version = imported
    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    specs = [(d["name"], d["dtype"].__name__, [int(x) for x in d["shape_signature"]]) for d in details]
    outputs = interpreter.get_output_details()

    def infer(feed):
        current = {d["index"]: list(d["shape"]) for d in interpreter.get_input_details()}
        if any(current[d["index"]] != list(feed[d["name"]].shape) for d in details):
            for d in details:
                interpreter.resize_tensor_input(d["index"], feed[d["name"]].shape)
            interpreter.allocate_tensors()
        for d in details:
            interpreter.set_tensor(d["index"], feed[d["name"]])
        interpreter.invoke()
        return [interpreter.get_tensor(o["index"]) for o in outputs]

    return specs, infer, version


def import_torch_lite():
    import torch
    from torch.jit.mobile import _load_for_lite_interpreter

    return torch, _load_for_lite_interpreter


def load_torch_lite(imported, path, threads, specs=None):
    """PyTorch Mobile lite interpreter; the file records no inputs, so they come from --inputs."""
    torch, load = imported
    if not specs:
        raise ValueError("a .ptl file needs --inputs (the harness passes them from the sidecar)")
    torch.set_num_threads(threads)
    module = load(path)

    def infer(feed):
        with torch.inference_mode():
            return module(*[torch.from_numpy(feed[name]) for name, _, _ in specs])

    return specs, infer, {"torch": torch.__version__}


def import_executorch():
    import torch
    from executorch.runtime import Runtime

    return torch, Runtime


def load_executorch(imported, path, threads, specs=None):
    """ExecuTorch program: names from --inputs, shapes as the program fixed them (exported at batch 1)."""
    torch, Runtime = imported
    if not specs:
        raise ValueError("a .pte file needs --inputs (the harness passes them from the sidecar)")
    method = Runtime.get().load_program(path).load_method("forward")
    meta = method.metadata
    specs = [(name, dtype, list(meta.input_tensor_meta(i).sizes())) for i, (name, dtype, _) in enumerate(specs)]

    def infer(feed):
        return method.execute([torch.from_numpy(feed[name]) for name, _, _ in specs])

    return specs, infer, {"executorch": _version("executorch"), "torch": torch.__version__}


def _version(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return "unknown"


# suffix -> (import the runtime, load a model with it); import time is kept apart from init time
LOADERS = {".onnx": (import_onnxruntime, load_onnxruntime), ".tflite": (import_litert, load_litert),
           ".ptl": (import_torch_lite, load_torch_lite), ".pte": (import_executorch, load_executorch)}


def environment():
    """What the numbers were measured on: CPU, cores, governor, OS, Python and runtime versions."""
    import platform

    env = {"machine": platform.machine(), "system": platform.system(), "release": platform.release(),
           "python": sys.version.split()[0], "cpu_count": os.cpu_count(), "cpu_model": platform.processor()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name") or line.startswith("Hardware"):
                env["cpu_model"] = line.split(":", 1)[1].strip()
                break
        flags = set()
        for line in text.splitlines():
            if line.startswith("flags") or line.startswith("Features"):
                flags.update(line.split(":", 1)[1].split())
        env["cpu_flags"] = sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma", "asimd", "asimddp", "i8mm", "sve"})
    except OSError:
        pass
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") as f:
            env["governor"] = f.read().strip()
    except OSError:
        env["governor"] = None
    try:
        env["affinity_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    for module in ("numpy", "onnxruntime", "ai_edge_litert"):
        try:
            env[module] = __import__(module).__version__
        except Exception:
            pass
    return env


def main(argv=None):
    if argv is None and sys.argv[1:2] == ["--env"]:
        print(json.dumps(environment()))
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--min-runs", type=int, default=50)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--max-runs", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inputs", help="JSON list of [name, dtype, shape] for files that do not record them")
    args = parser.parse_args(argv)
    suffix = os.path.splitext(args.model)[1]
    if suffix not in LOADERS:
        print(json.dumps({"error": "no runtime for %s files in the benchmark worker" % suffix}))
        return 2
    clock = time.perf_counter  # monotonic, on the device
    import_runtime, load = LOADERS[suffix]
    start = clock()
    try:
        imported = import_runtime()
    except ImportError as e:
        print(json.dumps({"error": "missing runtime on this host: %s" % e}))
        return 3
    import_ms = (clock() - start) * 1e3
    baseline_kb = read_status_kb("VmHWM")
    start = clock()
    given = [tuple(x) for x in json.loads(args.inputs)] if args.inputs else None
    specs, infer, versions = load(imported, args.model, args.threads, *([given] if given else []))
    init_ms = (clock() - start) * 1e3
    after_load_kb = read_status_kb("VmHWM")
    feed = make_inputs(specs, args.batch, args.seed)
    start = clock()
    infer(feed)
    first_ms = (clock() - start) * 1e3
    for _ in range(args.warmup):
        infer(feed)
    samples = []
    began = clock()
    while len(samples) < args.max_runs and (len(samples) < args.min_runs or clock() - began < args.min_time):
        t0 = clock()
        infer(feed)
        samples.append((clock() - t0) * 1e3)
    import numpy

    result = {
        "import_ms": import_ms, "init_ms": init_ms, "first_inference_ms": first_ms, "samples_ms": samples,
        "peak_rss_kb": read_status_kb("VmHWM"), "peak_rss_after_load_kb": after_load_kb,
        "baseline_rss_kb": baseline_kb, "smaps_rollup": read_smaps_rollup_kb(),
        "memory_method": "VmHWM from /proc/self/status" if after_load_kb is not None else "unavailable",
        "inputs": {k: list(v.shape) for k, v in feed.items()}, "runtime_versions": versions,
        "python": sys.version.split()[0], "numpy": numpy.__version__, "pid": os.getpid(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

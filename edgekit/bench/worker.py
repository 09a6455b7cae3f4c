"""One benchmark repetition in a fresh process: load, first inference, warm-up, timed runs, memory.

Self-contained on purpose (standard library + numpy + the runtime): edgekit pushes this file, synthetic.py
and the artifact's backend loader (backends/<runtime>/worker_loader.py) to the device and runs it with
the device's own Python, so it must not import edgekit. Prints one JSON object on stdout.

    python worker.py MODEL --loader LOADER.py --synthetic synthetic.py --threads N --batch N ...

With --serve it runs the file for edgekit instead (edgekit/bench/remote.py is the other end): it loads it once,
then answers each feed it reads on stdin with the outputs on stdout, in frames (a kind byte, J for JSON or N for
an .npz read with allow_pickle off; an 8-byte big-endian length; the payload) until a Q frame or the end of input.
"""

import argparse
import json
import os
import re
import sys
import time

LOAD_FAILED = 4  # exit status when the runtime cannot load the file: the file is bad, not the device
# a line of a runtime's error that only names a C++ source location (OpenVINO), skipped in the one-line message
# (here and in edgekit.errors.first_line, which has its own copy: this file cannot import edgekit)
WHERE = re.compile(r"^(Exception from \S+:\d+:|Check '.*' failed at \S+:\d+:)$")


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


def make_inputs(specs, batch, seed, synthetic_array, free_dim=64, names=None):
    """Inputs for (name, dtype, shape) specs by edgekit's one rule (synthetic.py, pushed with this file):
    dim 0 dynamic = batch, other dynamic dims = free_dim (64: the sequence length, for text models). `names`:
    the source's name of a file input the file names otherwise (TFLite's serving_default_args_2 is the
    token_type_ids, which must be zeros), which is what the rule reads."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feed = {}
    for name, dtype, shape in specs:
        dims = [d if isinstance(d, int) and d > 0 else (batch if i == 0 else free_dim) for i, d in enumerate(shape)]
        feed[name] = synthetic_array((names or {}).get(name, name), dtype, dims, rng)
    return feed


def import_file(path, name):
    """A module pushed with this file: the backend's loader (worker_loader.py of its folder), synthetic.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path  # a .py file always has both
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def environment(modules=()):
    """What the numbers were measured on: CPU, cores, governor, OS, Python, and the versions of numpy and of
    `modules` (the runtimes of the files to run, as their backends name them)."""
    import platform

    env: dict[str, object] = {
        "machine": platform.machine(),
        "system": platform.system(),
        "release": platform.release(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpu_model": platform.processor(),
    }
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
        env["cpu_flags"] = sorted(
            flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "fma", "asimd", "asimddp", "i8mm", "sve"}
        )
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
    for module in ("numpy", *modules):
        try:
            env[module] = __import__(module).__version__
        except Exception:
            pass
    return env


def main(argv=None):
    # before any runtime loads, --env's version probe included: over ssh the worker starts in a clean
    # environment, without edgekit's setting (edgekit/__init__.py says why)
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    if argv is None and sys.argv[1:2] == ["--env"]:  # --env [RUNTIME_MODULE ...]
        print(json.dumps(environment(sys.argv[2:])))
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--loader", required=True, help="the backend's worker_loader.py for this file type")
    parser.add_argument("--synthetic", help="edgekit's synthetic.py (how inputs are invented; not with --serve)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--min-runs", type=int, default=50)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--max-runs", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--free-dim", type=int, default=64, help="size of every free non-batch input dim")
    parser.add_argument("--inputs", help="JSON list of [name, dtype, shape] for files that do not record them")
    parser.add_argument("--names", help="JSON {file input: the source's name} where the file renamed its inputs")
    parser.add_argument("--serve", action="store_true", help="run feeds from stdin instead of timing (see above)")
    args = parser.parse_args(argv)
    loader = import_file(args.loader, "edgekit_worker_loader")
    if args.serve:
        return serve(args, loader)
    if not args.synthetic:
        parser.error("--synthetic is required to time the file")
    clock = time.perf_counter  # monotonic, on the device
    start = clock()
    try:
        imported = loader.import_runtime()
    except ImportError as e:
        print(json.dumps({"error": f"missing runtime on this host: {e}"}))
        return 3
    import_ms = (clock() - start) * 1e3
    baseline_kb = read_status_kb("VmHWM")
    start = clock()
    given = [tuple(x) for x in json.loads(args.inputs)] if args.inputs else None
    try:
        specs, infer, versions = loader.load(imported, args.model, args.threads, *([given] if given else []))
    except Exception as e:  # a corrupt or truncated file: one line for the user, not the runtime's traceback
        print(json.dumps({"error": f"the runtime cannot load it: {one_line(e)}"}))
        return LOAD_FAILED
    init_ms = (clock() - start) * 1e3
    after_load_kb = read_status_kb("VmHWM")
    synthetic = import_file(args.synthetic, "edgekit_synthetic").synthetic_array
    feed = make_inputs(specs, args.batch, args.seed, synthetic, args.free_dim, json.loads(args.names or "{}"))
    start = clock()
    infer(feed)
    first_ms = (clock() - start) * 1e3
    for _ in range(args.warmup):
        infer(feed)
    samples: list[float] = []
    began = clock()
    while len(samples) < args.max_runs and (len(samples) < args.min_runs or clock() - began < args.min_time):
        t0 = clock()
        infer(feed)
        samples.append((clock() - t0) * 1e3)
    import numpy

    result = {
        "import_ms": import_ms,
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "samples_ms": samples,
        "peak_rss_kb": read_status_kb("VmHWM"),
        "peak_rss_after_load_kb": after_load_kb,
        "baseline_rss_kb": baseline_kb,
        "smaps_rollup": read_smaps_rollup_kb(),
        "memory_method": "VmHWM from /proc/self/status" if after_load_kb is not None else "unavailable",
        "inputs": {k: list(v.shape) for k, v in feed.items()},
        "runtime_versions": versions,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "pid": os.getpid(),
    }
    print(json.dumps(result))
    return 0


def one_line(e):
    """The first line of a runtime's error that says what went wrong (not a C++ source location)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not WHERE.match(ln.strip())]
    return lines[0][:300] if lines else type(e).__name__


def serve(args, loader):
    """--serve: load the file once, then answer feeds with outputs until told to stop. Anything the runtime
    prints goes to stderr: stdout carries the frames only."""
    import io

    import numpy as np

    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    source = sys.stdin.buffer

    def send(kind, payload):
        channel.write(kind + len(payload).to_bytes(8, "big") + payload)
        channel.flush()

    def send_json(data):
        send(b"J", json.dumps(data).encode())

    try:
        imported = loader.import_runtime()
    except ImportError as e:
        send_json({"error": f"missing runtime on this host: {e}"})
        return 3
    given = [tuple(x) for x in json.loads(args.inputs)] if args.inputs else None
    try:
        specs, infer, versions = loader.load(imported, args.model, args.threads, *([given] if given else []))
    except Exception as e:  # the file, not the device (edgekit reports it as bad input)
        send_json({"error": f"the runtime cannot load it: {one_line(e)}"})
        return LOAD_FAILED
    send_json({"inputs": [list(s) for s in specs], "runtime_versions": versions})
    while True:
        header = source.read(9)
        if len(header) < 9 or header[:1] == b"Q":
            return 0
        payload = source.read(int.from_bytes(header[1:], "big"))
        with np.load(io.BytesIO(payload), allow_pickle=False) as given_arrays:
            feed = {name: given_arrays[name] for name in given_arrays.files}
        try:
            outputs = infer(feed)
        except Exception as e:  # a wrong shape, a runtime error: said, and the next feed is still answered
            send_json({"error": f"inference failed: {one_line(e)}"})
            continue
        if isinstance(outputs, dict):  # by name (TensorRT's loader), else by position (one tensor, or several)
            named = outputs
        else:
            named = {str(i): o for i, o in enumerate(outputs if isinstance(outputs, (list, tuple)) else [outputs])}
        arrays: dict = {name: np.asarray(value) for name, value in named.items()}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        send(b"N", buffer.getvalue())


if __name__ == "__main__":
    sys.exit(main())

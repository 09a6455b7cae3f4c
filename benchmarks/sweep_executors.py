"""The same sweep on each executor of `edgekit run`, and Ray's scheduling overhead per step.

Sweep: the digits CNN (examples/digits-pipeline.yaml's model, trained here in seconds) x 4 targets
(onnx-fp32, onnx-int8, tflite-fp32, tflite-int8) x a matrix of 3 calibration sets (distinct slices of the
training digits), each file evaluated on the test digits: 24 CPU-bound steps (float files that come out
identical are evaluated once), no benchmark step (a benchmark on this machine runs alone by design). Each
executor runs `edgekit run` in a fresh process from an empty cache: the wall time a user waits, imports and
worker start-up included.
Overhead: 40 steps that each write one small file, through Ray (a Ray of this machine started by edgekit,
2 CPUs) and through the serial executor; the difference per step is what Ray's scheduling adds.

    .venv/bin/python benchmarks/sweep_executors.py   # -> benchmarks/results/sweep-executors.json
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = """source: edgekit_demo.zoo:digits_cnn
weights: digits_cnn.pt
inputs: ["image:float32:batchx1x8x8"]
targets: [onnx-fp32, onnx-int8, tflite-fp32, tflite-int8]
matrix:
  calib: [calib-a.npz, calib-b.npz, calib-c.npz]
evaluate:
  data: builtin:digits:test
"""
TRIVIAL_STEPS = 40


def _write(text: str, folder: Path) -> dict:
    (folder / "out.txt").write_text(text)
    return {"text": text}


def _overhead(executor_name: str, cache: Path) -> float:
    from edgekit.progress import SILENT
    from edgekit.release.executor import execute, make_executor
    from edgekit.release.steps import Job, Step

    def plan(i: int, records: dict) -> Job:
        return Job(f"trivial-{i}", functools.partial(_write, str(i)))

    steps = [Step(f"step {i}", (), functools.partial(plan, i)) for i in range(TRIVIAL_STEPS)]
    executor = make_executor(executor_name, jobs=2)  # Ray's start-up is not in the timing
    start = time.perf_counter()
    outcome = execute(steps, cache, executor, SILENT)
    seconds = time.perf_counter() - start
    assert not outcome.errors, outcome.errors
    return seconds


def main() -> None:
    import numpy as np

    from edgekit.bench.peak import cpu_model
    from edgekit_demo import zoo

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    from edgekit.catalog.detect import cpu_flags

    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})
    results: dict = {"cpu": cpu_model(), "cpu_flags": flags, "cores": os.cpu_count()}
    results["python"] = platform.python_version()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        x, y, _, _ = zoo.digits_split()
        import torch

        torch.manual_seed(0)
        zoo.save_weights(zoo.train(zoo.digits_cnn(), x, y, epochs=4), work / "digits_cnn.pt")
        for i, name in enumerate("abc"):
            np.savez(work / f"calib-{name}.npz", image=x[i * 256 : (i + 1) * 256].astype(np.float32))
        (work / "sweep.yaml").write_text(PIPELINE)
        sweep = {}
        for name, jobs in (("serial", 1), ("local", 2), ("ray", 2)):
            cache = work / f"cache-{name}"
            argv = [sys.executable, "-m", "edgekit", "run", str(work / "sweep.yaml"), "-q"]
            argv += ["--executor", name, "--jobs", str(jobs), "--cache", str(cache)]
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            seconds = time.perf_counter() - start
            steps = json.loads((cache / "last-run.json").read_text())["steps"]
            ran = sum(not s["cached"] for s in steps)
            sweep[name] = {"jobs": jobs, "seconds": round(seconds, 1), "steps": len(steps), "steps_run": ran}
            print(name, sweep[name], flush=True)
        for name in ("local", "ray"):
            sweep[name]["vs_serial"] = round(sweep[name]["seconds"] / sweep["serial"]["seconds"], 2)
        results["sweep"] = sweep
        serial = _overhead("serial", work / "trivial-serial")
        ray = _overhead("ray", work / "trivial-ray")
        results["trivial_steps"] = {
            "steps": TRIVIAL_STEPS,
            "serial_s": round(serial, 2),
            "ray_s": round(ray, 2),
            "ray_overhead_ms_per_step": round((ray - serial) / TRIVIAL_STEPS * 1000, 1),
        }
        print(results["trivial_steps"], flush=True)
    out = ROOT / "benchmarks" / "results" / "sweep-executors.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()

"""Where a TFLite file's time goes, kernel by kernel: `perf record` (software clock, so it works in a VM without
hardware counters) over a process invoking the file N and then 2N times on one thread (XNNPACK); the difference
of the two runs' samples per symbol is N invokes' time, with loading and set-up cancelled out. Given two or more
files (LABEL=PATH, e.g. tflite_int8_speed.py's tflite-dynamic and tflite-int8 files), it prints and records the
milliseconds per invoke in each file of the kernels that take the most time or change the most from the first
file. Needs Linux `perf`.

    .venv/bin/python benchmarks/tflite_kernel_profile.py tflite-dynamic=A.tflite tflite-int8=B.tflite
        # -> benchmarks/results/tflite-kernel-profile.PROFILE.json
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import machine, result_file

HZ, INVOKES, TOP = 5000, 2000, 16
LOOP = """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
for d in it.get_input_details():
    it.set_tensor(d["index"], np.ones(d["shape"], d["dtype"]))
for _ in range(int(sys.argv[2])):
    it.invoke()
"""


def _samples(path: str, invokes: int, work: Path) -> dict[str, int]:
    """Samples per symbol of one process loading `path` and invoking it `invokes` times."""
    data = work / "perf.data"
    subprocess.run(
        ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(HZ), "-o", str(data), sys.executable, "-c", LOOP,
         path, str(invokes)], check=True, capture_output=True,
    )  # fmt: skip
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "-n", "--sort", "symbol", "--stdio"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    counts: dict[str, int] = {}
    for line in report.splitlines():
        fields = line.split()  # "12.3%  456  [.] symbol"
        if len(fields) >= 4 and not line.startswith("#") and fields[1].isdigit():
            symbol = " ".join(fields[3:]).rstrip(" -")  # perf pads the columns it was not asked for with "-"
            counts[symbol] = counts.get(symbol, 0) + int(fields[1])
    return counts


def profile(path: str, work: Path) -> dict[str, float]:
    """Milliseconds per invoke by symbol: the 2N-invoke run's samples less the N-invoke run's."""
    once, twice = _samples(path, INVOKES, work), _samples(path, 2 * INVOKES, work)
    per_invoke = 1e3 / HZ / INVOKES
    return {s: (twice.get(s, 0) - once.get(s, 0)) * per_invoke for s in twice}


def main() -> None:
    if shutil.which("perf") is None:
        sys.exit("needs Linux perf (Debian: apt install linux-perf)")
    files = dict(arg.split("=", 1) for arg in sys.argv[1:])
    if len(files) < 2:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as work:
        profiles = {label: profile(path, Path(work)) for label, path in files.items()}
    first = next(iter(profiles.values()))
    symbols = set().union(*profiles.values())
    by_time = sorted(symbols, key=lambda s: -max(p.get(s, 0.0) for p in profiles.values()))[:TOP]
    by_change = sorted(symbols, key=lambda s: -max(abs(p.get(s, 0.0) - first.get(s, 0.0)) for p in profiles.values()))
    ranked = by_time + [s for s in by_change[:TOP] if s not in by_time]
    rows = [{"kernel": s[:100], **{label: round(p.get(s, 0.0), 3) for label, p in profiles.items()}} for s in ranked]
    totals = {label: round(sum(p.values()), 3) for label, p in profiles.items()}
    document = {
        "what": __doc__.splitlines()[0],
        "machine": machine(),
        "files": {label: Path(path).name for label, path in files.items()},
        "ms_per_invoke_total": totals,
        "rows": rows,
    }
    result_file("tflite-kernel-profile").write_text(json.dumps(document, indent=2) + "\n")
    labels = list(profiles)
    print(f"{'kernel (ms per invoke)':60s} " + " ".join(f"{label[:14]:>14s}" for label in labels))
    for r in rows:
        print(f"{r['kernel'][:60]:60s} " + " ".join(f"{r[label]:14.3f}" for label in labels))
    print(f"{'total':60s} " + " ".join(f"{totals[label]:14.3f}" for label in labels))


if __name__ == "__main__":
    main()

"""What edgekit's generation harness costs on OpenVINO GenAI: decode tokens/s of the same folders measured by
`edgekit benchmark --generate` and by OpenVINO GenAI's own metrics (the pipeline's PerfMetrics, what its
benchmark_genai sample prints: time per output token, time to first token), in one run, alternating.

The ~120M-parameter random-initialised Llama of benchmarks/lm_generation.py as openvino-llm-fp32 and -int4; 64-token
prompt, 64 new tokens, 1 thread, 3 fresh processes each way with 1 warm-up and 2 timed generations. Run:
    .venv/bin/python benchmarks/openvino_llm_harness.py   # -> benchmarks/results/openvino-llm-harness.json
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from platform import python_version

from lm_generation import export, speed_model
from machine import machine
from minilm_efficiency import EDGEKIT, ROOT

TARGETS = ("openvino-llm-fp32", "openvino-llm-int4")
PROMPT, NEW, PROCESSES = 64, 64, 3

# one fresh process: the pipeline as an app loads it, one warm-up, two timed generations; the pipeline's own metrics
OWN = """
import json, sys, numpy as np, openvino, openvino_genai as og
folder, prompt, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
precision = json.load(open(folder + "/generation.json")).get("inference_precision")
config = {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": "1"}
if precision:
    config["INFERENCE_PRECISION_HINT"] = precision
pipe = og.LLMPipeline(folder, "CPU", **config)
ids = np.random.default_rng(0).integers(3, 30000, size=(1, prompt))
inputs = og.TokenizedInputs(openvino.Tensor(ids), openvino.Tensor(np.ones_like(ids)))
settings = og.GenerationConfig()
settings.max_new_tokens = settings.min_new_tokens = new
settings.do_sample = False
runs = [pipe.generate(inputs, settings).perf_metrics for _ in range(3)][1:]
print(json.dumps({"tpot_ms": [m.get_tpot().mean for m in runs], "ttft_ms": [m.get_ttft().mean for m in runs]}))
"""


def own_tool(folder: str) -> dict:
    argv = [sys.executable, "-c", OWN, folder, str(PROMPT), str(NEW)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="edgekit-ovh-") as tmp:
        work = Path(tmp)
        files = export(speed_model(work / "llama-120m"), work / "out", prompts=2, targets=TARGETS)
        folders = [files[t]["folder"] for t in TARGETS]
        own: dict[str, list[dict]] = {t: [] for t in TARGETS}
        ours: list[dict] = []
        for _ in range(PROCESSES):  # alternating: one edgekit process per folder, then the pipeline's own
            result = work / "edgekit.json"
            argv = [*EDGEKIT, "benchmark", *folders, "--generate", "--threads", "1", "--prompt-tokens", str(PROMPT)]
            argv += ["--new-tokens", str(NEW), "--processes", "1", "--generations", "2", "--json", str(result), "-q"]
            subprocess.run(argv, check=True)
            ours += json.loads(result.read_text())
            for target, folder in zip(TARGETS, folders):
                own[target].append(own_tool(folder))
    rows = {}
    for target in TARGETS:
        edgekit_tps = statistics.median(r["decode_tokens_per_s"]["median"] for r in ours if r["target"] == target)
        own_tps = statistics.median(1000 / statistics.mean(p["tpot_ms"]) for p in own[target])
        rows[target] = {
            "edgekit_decode_tokens_per_s": round(edgekit_tps, 1),
            "openvino_genai_decode_tokens_per_s": round(own_tps, 1),
            "edgekit_vs_own": round(edgekit_tps / own_tps, 3),
            "edgekit_ttft_ms": round(statistics.median(
                r["time_to_first_token_ms"]["median"] for r in ours if r["target"] == target), 1),
            "openvino_genai_ttft_ms": round(statistics.median(statistics.mean(p["ttft_ms"]) for p in own[target]), 1),
        }  # fmt: skip
        print(target, rows[target], flush=True)
    document = {
        "what": __doc__.splitlines()[0],
        "machine": {**machine(), "python": python_version()},
        "settings": {"prompt_tokens": PROMPT, "new_tokens": NEW, "threads": 1, "processes": PROCESSES},
        "results": rows,
    }
    (ROOT / "benchmarks" / "results" / "openvino-llm-harness.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()

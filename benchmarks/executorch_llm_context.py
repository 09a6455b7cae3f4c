"""ExecuTorch LLM decode speed against the static cache's length: the ~120M Llama of lm_generation.py exported to
executorch-llm-fp32 with `--context 128` and with its default (the model's 1024 positions), timed with
`edgekit benchmark --generate` (16-token prompt, 32 new tokens, 1 thread, 3 fresh processes). Run:
    .venv/bin/python benchmarks/executorch_llm_context.py   # -> benchmarks/results/executorch-llm-context.json
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from platform import python_version

from lm_generation import speed_model
from machine import machine
from minilm_efficiency import EDGEKIT, ROOT

CONTEXTS = (128, 1024)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="edgekit-etctx-") as tmp:
        work = Path(tmp)
        source = speed_model(work / "llama-120m")
        folders = []
        for context in CONTEXTS:
            out = work / f"context-{context}"
            argv = [*EDGEKIT, "export", str(source), "-t", "executorch-llm-fp32", "-o", str(out), "-q"]
            subprocess.run([*argv, "--context", str(context), "--prompts", "2"], check=True)
            folders.append(str(out / "llama-120m-executorch-llm-fp32.etllm"))
        result = work / "generation.json"
        argv = [*EDGEKIT, "benchmark", *folders, "--generate", "--prompt-tokens", "16", "--new-tokens", "32"]
        subprocess.run([*argv, "--processes", "3", "--generations", "2", "--json", str(result), "-q"], check=True)
        runs = json.loads(result.read_text())
    rows = [
        {
            "context": context,
            "decode_tokens_per_s": round(run["decode_tokens_per_s"]["median"], 1),
            "decode_ci95": [round(x, 1) for x in run["decode_tokens_per_s"]["median_ci95"] or []],
            "token_p50_ms": round(run["token_latency_ms"]["p50"], 2),
            "peak_rss_mb": round(run["peak_rss_mb"], 1),
        }
        for context, run in zip(CONTEXTS, runs)
    ]
    for row in rows:
        print(row, flush=True)
    document = {
        "what": __doc__.splitlines()[0],
        "machine": {**machine(), "python": python_version()},
        "rows": rows,
    }
    (ROOT / "benchmarks" / "results" / "executorch-llm-context.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()

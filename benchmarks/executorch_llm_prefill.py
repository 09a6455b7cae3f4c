"""ExecuTorch LLM time to first token once the prompt is prefilled in one call: the ~120M Llama of lm_generation.py
exported to executorch-llm-fp32 and -8da4w (the model's 1024 positions, exported with a free sequence length),
timed with `edgekit benchmark --generate` (64- and 256-token prompts, 64 new tokens, 1 thread, 3 fresh processes
of 2 generations), beside ONNX Runtime GenAI's int4 folder of the same model in the same run. Run:
    .venv/bin/python benchmarks/executorch_llm_prefill.py   # -> benchmarks/results/executorch-llm-prefill.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from platform import python_version

from lm_generation import export, generation, speed_model
from machine import machine
from minilm_efficiency import ROOT

TARGETS = ("executorch-llm-fp32", "executorch-llm-8da4w", "ort-genai-int4")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="edgekit-etpre-") as tmp:
        work = Path(tmp)
        files = export(speed_model(work / "llama-120m"), work / "out", prompts=2, targets=TARGETS)
        folders = [files[t]["folder"] for t in TARGETS]
        rows = generation(folders, work / "generation.json", prompt_tokens="64,256", threads="1")
    for row in rows:
        print(row, flush=True)
    for facts in files.values():
        facts.pop("folder")
    document = {
        "what": __doc__.splitlines()[0],
        "machine": {**machine(), "python": python_version()},
        "files": files,
        "generation": rows,
    }
    (ROOT / "benchmarks" / "results" / "executorch-llm-prefill.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()

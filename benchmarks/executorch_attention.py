"""ExecuTorch LLM programs with ExecuTorch's LLM attention kernel (llama::custom_sdpa, over the positions in use)
against transformers' attention over the whole static cache (--no-custom-sdpa): time to first token and decode
tokens/s of the same model, fp32 and 8da4w, in one run, with ort-genai-int4 as the common reference of the LM runs.

The ~120M-parameter random-initialised Llama of lm_generation.py (a 1024-position cache); 64- and 256-token prompts,
64 new tokens, 1 thread; `edgekit benchmark --generate`, 3 fresh processes of 2 generations each, interleaved. Run:
    .venv/bin/python benchmarks/executorch_attention.py   # -> benchmarks/results/executorch-attention.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from platform import python_version

from lm_generation import SPEED_CONFIG, export, generation, speed_model
from machine import machine
from minilm_efficiency import ROOT

TARGETS = ("executorch-llm-fp32", "executorch-llm-8da4w")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="edgekit-eta-") as tmp:
        work = Path(tmp)
        source = speed_model(work / "llama-120m")
        files = {
            "custom_sdpa": export(source, work / "custom", prompts=2, targets=TARGETS),
            "whole_cache": export(source, work / "whole", prompts=2, targets=TARGETS, options=("--no-custom-sdpa",)),
            "reference": export(source, work / "reference", prompts=2, targets=("ort-genai-int4",)),
        }
        folders = {facts["folder"]: kind for kind, done in files.items() for facts in done.values()}
        speed = generation(list(folders), work / "generation.json", prompt_tokens="64,256", threads="1")
        for row in speed:
            row["attention"] = folders[row.pop("folder")]
            print(row, flush=True)
    for done in files.values():
        for facts in done.values():
            facts.pop("folder")
    document = {
        "what": " ".join(__doc__.splitlines()[:3]),
        "machine": {**machine(), "python": python_version()},
        "speed_model": {"config": SPEED_CONFIG},
        "files": files,
        "generation": speed,
    }
    (ROOT / "benchmarks" / "results" / "executorch-attention.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()

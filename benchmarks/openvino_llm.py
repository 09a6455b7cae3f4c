"""Causal LMs as OpenVINO folders (stateful IR, run by OpenVINO GenAI's LLMPipeline) in fp32, int8 and int4
weights, against ONNX Runtime GenAI's fp32 and int4 in the same run: size, time to first token, decode tokens/s
(1 and 2 threads) and perplexity.

The same models as benchmarks/lm_generation.py: speed on a ~120M-parameter random-initialised Llama, perplexity on
a tiny Llama trained here on tweets, over held-out tweets, in each folder's own runtime. Run:
    .venv/bin/python benchmarks/openvino_llm.py   # -> benchmarks/results/openvino-llm.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from platform import python_version

from lm_generation import export, generation, perplexity, speed_model
from machine import machine
from minilm_efficiency import ROOT

TARGETS = ("openvino-llm-fp32", "openvino-llm-int8", "openvino-llm-int4", "ort-genai-fp32", "ort-genai-int4")


def main() -> None:
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_families import build_family

    with tempfile.TemporaryDirectory(prefix="edgekit-ovlm-") as tmp:
        work = Path(tmp)
        big = export(speed_model(work / "llama-120m"), work / "out", prompts=4, targets=TARGETS)
        print(json.dumps(big, indent=1), flush=True)
        speed = generation([big[t]["folder"] for t in TARGETS], work / "generation.json", prompt_tokens="64")
        for row in speed:
            print(row, flush=True)
        trained = build_family("llama", work / "llama-tweets", tweets=3000, epochs=2)
        small = export(trained, work / "out", prompts=20, targets=TARGETS)
        text = write_tweets_csv(work / "held-out.csv", "test", 300)
        quality = {t: {**small[t], **perplexity(small[t]["folder"], trained, text)} for t in TARGETS}
        print(json.dumps(quality, indent=1), flush=True)
    for facts in (*big.values(), *quality.values()):
        facts.pop("folder")
    document = {
        "what": __doc__.splitlines()[0],
        "machine": {**machine(), "python": python_version()},
        "speed_model": {"files": big},
        "generation": speed,
        "quality_model": "tiny Llama (hidden 64, 2 layers, MiniLM's 30522-token vocabulary) trained on 3000 tweets",
        "quality": quality,
    }
    (ROOT / "benchmarks" / "results" / "openvino-llm.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()

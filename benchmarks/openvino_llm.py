"""Causal LMs as OpenVINO folders (stateful IR, run by OpenVINO GenAI's LLMPipeline) in fp32, int8 and int4
weights, against ONNX Runtime GenAI's fp32 and int4 in the same run: size, time to first token, decode tokens/s
(1 and 2 threads) and perplexity.

The same models as benchmarks/lm_generation.py: speed on a ~120M-parameter random-initialised Llama, perplexity on
a tiny Llama trained here on tweets, over held-out tweets, in each folder's own runtime. Run:
    .venv/bin/python benchmarks/openvino_llm.py   # -> benchmarks/results/openvino-llm.json
"""

from __future__ import annotations

from lm_generation import run

TARGETS = ("openvino-llm-fp32", "openvino-llm-int8", "openvino-llm-int4", "ort-genai-fp32", "ort-genai-int4")


def main() -> None:
    run(TARGETS, "openvino-llm.json", __doc__.splitlines()[0], prompt_tokens="64")


if __name__ == "__main__":
    main()

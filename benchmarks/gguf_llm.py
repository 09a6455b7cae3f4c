"""Causal LMs as llama.cpp GGUF files (f32, f16, q8_0, q4_k_m; written by edgekit, quantized by llama.cpp), against
ONNX Runtime GenAI's int4 folder in the same run: size, time to first token, decode tokens/s (1 and 2 threads) and
perplexity.

The same models as benchmarks/lm_generation.py: speed on a ~120M-parameter random-initialised Llama, perplexity on
a tiny Llama trained here on tweets, over held-out tweets, in each file's own runtime. Needs the llamacpp extra.
Run:
    .venv/bin/python benchmarks/gguf_llm.py   # -> benchmarks/results/gguf-llm.json
"""

from __future__ import annotations

from lm_generation import run

TARGETS = ("gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m", "ort-genai-int4")


def main() -> None:
    run(TARGETS, "gguf-llm.json", __doc__.splitlines()[0], prompt_tokens="64")


if __name__ == "__main__":
    main()

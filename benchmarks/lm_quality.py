"""What 4- and 8-bit weights cost a causal LM large enough for the runtimes' own 4-bit formats: perplexity of every
quantized LM target against its source, in the file's own runtime, over held-out tweets.

The tiny Llama of lm_generation.py (hidden 64) is too small for them: llama.cpp's k-quants need rows of 256
(q4_k_m fell back to Q5_0 there) and the int4 blocks of 32 are half its rows. This one is a Llama with hidden 256, 4
layers, intermediate 768 and MiniLM's vocabulary, trained here on 20,000 tweets for 2 epochs; perplexity over 300
test tweets (the existing sliding window), next-token agreement with the source. The gguf targets need the llamacpp
extra. Run:
    .venv/bin/python benchmarks/lm_quality.py   # -> benchmarks/results/lm-quality.json
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from platform import python_version

from lm_generation import export, perplexity
from machine import machine
from minilm_efficiency import ROOT

TARGETS = (
    "ort-genai-int4",
    "executorch-llm-8da4w",
    "openvino-llm-int8",
    "openvino-llm-int4",
    "gguf-q8_0",
    "gguf-q4_k_m",
)
SIZES = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2)
TWEETS, EPOCHS = 20000, 2


def main() -> None:
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_families import build_family

    with tempfile.TemporaryDirectory(prefix="edgekit-lmq-") as tmp:
        work = Path(tmp)
        began = time.monotonic()
        trained = build_family("llama", work / "llama-256", tweets=TWEETS, epochs=EPOCHS, **SIZES)
        training_seconds = round(time.monotonic() - began)
        print(f"trained in {training_seconds} s", flush=True)
        files = export(trained, work / "out", prompts=20, targets=TARGETS)
        text = write_tweets_csv(work / "held-out.csv", "test", 300)
        quality = {t: {**files[t], **perplexity(files[t]["folder"], trained, text)} for t in TARGETS}
        for target, facts in quality.items():
            facts.pop("folder")
            print(target, facts, flush=True)
    document = {
        "what": __doc__.splitlines()[0] + " " + __doc__.splitlines()[1],
        "machine": {**machine(), "python": python_version()},
        "model": {"family": "llama", **SIZES, "vocab_size": 30522, "tweets": TWEETS, "epochs": EPOCHS},
        "training_seconds": training_seconds,
        "quality": quality,
    }
    (ROOT / "benchmarks" / "results" / "lm-quality.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()

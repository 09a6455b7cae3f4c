"""Generation benchmark worker for ONNX Runtime GenAI folders (self-contained: runs on a device with only
onnxruntime-genai and numpy; pushed there and run in a fresh process per repetition).

usage: python generate_worker.py FOLDER PROMPT_TOKENS NEW_TOKENS THREADS RUNS WARMUP
Prints one JSON object: load time, and per timed generation the time to first token and each later token's time.
"""

import json
import os
import resource
import sys
import time

USAGE_EXIT = 3  # what the model cannot take (edgekit.bench.generation reads this status as a usage error)


def generation(og, model, prompt, new_tokens):
    """One greedy generation: (ms to the first new token, prefill included; ms of each later token)."""
    params = og.GeneratorParams(model)
    total = prompt.shape[1] + new_tokens
    params.set_search_options(do_sample=False, max_length=total, min_length=total)
    start = time.perf_counter()
    generator = og.Generator(model, params)
    generator.append_tokens(prompt)
    generator.generate_next_token()
    first = (time.perf_counter() - start) * 1e3
    steps = []
    while not generator.is_done():
        began = time.perf_counter()
        generator.generate_next_token()
        steps.append((time.perf_counter() - began) * 1e3)
    return first, steps


def main(argv):
    folder, prompt_tokens, new_tokens, threads, runs, warmup = argv[0], *map(int, argv[1:6])
    # before ONNX Runtime loads: over ssh the worker starts without edgekit's setting (edgekit/__init__.py says why)
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import numpy as np
    import onnxruntime_genai as og

    with open(f"{folder}/genai_config.json") as f:
        described = json.load(f)["model"]
    vocabulary, context = described["vocab_size"], described.get("context_length")
    if context and prompt_tokens + new_tokens > context:
        print(
            f"A prompt of {prompt_tokens} tokens and {new_tokens} new tokens exceed the model's context of "
            f"{context} tokens: ask for at most {context} in all.",
            file=sys.stderr,
        )
        sys.exit(USAGE_EXIT)
    began = time.perf_counter()
    config = og.Config(folder)
    options = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    model = og.Model(config)
    load_ms = (time.perf_counter() - began) * 1e3
    rng = np.random.default_rng(0)
    prompt = rng.integers(3, vocabulary, size=(1, prompt_tokens)).astype(np.int32)
    for _ in range(warmup):
        generation(og, model, prompt, new_tokens)
    timed = [generation(og, model, prompt, new_tokens) for _ in range(runs)]
    print(
        json.dumps(
            {
                "load_ms": load_ms,
                "ttft_ms": [t[0] for t in timed],
                "token_ms": [t[1] for t in timed],
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "versions": {"onnxruntime-genai": og.__version__},
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])

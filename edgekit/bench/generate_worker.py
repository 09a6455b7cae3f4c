"""Generation benchmark worker (self-contained: pushed to a device with the file's runtime's generation loader,
numpy and the runtime there; run in a fresh process per repetition).

usage: python generate_worker.py LOADER FOLDER PROMPT_TOKENS NEW_TOKENS THREADS RUNS WARMUP
LOADER is a backend's generation_loader.py: describe(folder) -> {"context_length", "vocab_size"} read without the
runtime, load(folder, threads) -> model, generation(model, prompt, new_tokens) -> (ms to the first new token,
prefill included; ms of each later token) for a greedy generation, versions() -> {package: version}.
Prints one JSON object: load time, and per timed generation the time to first token and each later token's time.
Exits 3 for a request the model cannot take (edgekit.bench.generation reads that status as a usage error).
"""

import importlib.util
import json
import resource
import sys
import time

USAGE_EXIT = 3


def _loader(path):
    spec = importlib.util.spec_from_file_location("generation_loader", path)
    assert spec is not None and spec.loader is not None, path  # a .py file always has both
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv):
    loader, folder = _loader(argv[0]), argv[1]
    prompt_tokens, new_tokens, threads, runs, warmup = map(int, argv[2:7])
    described = loader.describe(folder)
    context = described.get("context_length")
    if context and prompt_tokens + new_tokens > context:
        print(
            f"A prompt of {prompt_tokens} tokens and {new_tokens} new tokens exceed the model's context of "
            f"{context} tokens: ask for at most {context} in all.",
            file=sys.stderr,
        )
        sys.exit(USAGE_EXIT)
    import numpy as np

    began = time.perf_counter()
    model = loader.load(folder, threads)
    load_ms = (time.perf_counter() - began) * 1e3
    prompt = np.random.default_rng(0).integers(3, described["vocab_size"], size=prompt_tokens)
    for _ in range(warmup):
        loader.generation(model, prompt, new_tokens)
    timed = [loader.generation(model, prompt, new_tokens) for _ in range(runs)]
    print(
        json.dumps(
            {
                "load_ms": load_ms,
                "ttft_ms": [t[0] for t in timed],
                "token_ms": [t[1] for t in timed],
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "versions": loader.versions(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""Generation benchmark worker for ExecuTorch LLM folders (self-contained: runs on a device with the ExecuTorch
runtime, torch and numpy; pushed there and run in a fresh process per repetition).

usage: python generate_worker.py FOLDER PROMPT_TOKENS NEW_TOKENS THREADS RUNS WARMUP
Prints one JSON object: load time, and per timed generation the time to first token and each later token's time.
The program takes one token a step, so the prompt's prefill is one step per prompt token.
"""

import json
import os
import resource
import sys
import time

USAGE_EXIT = 3  # what the model cannot take (edgekit.bench.generation reads this status as a usage error)


def generation(torch, method, prompt, new_tokens):
    def step(token, position):
        out = method.execute([torch.tensor([[token]], dtype=torch.long), torch.tensor([position], dtype=torch.long)])
        return out[0].reshape(-1, out[0].shape[-1])[-1]

    start = time.perf_counter()
    for position, token in enumerate(prompt):
        logits = step(token, position)
    token = int(logits.argmax())
    first = (time.perf_counter() - start) * 1e3
    steps = []
    for position in range(len(prompt), len(prompt) + new_tokens - 1):
        began = time.perf_counter()
        token = int(step(token, position).argmax())
        steps.append((time.perf_counter() - began) * 1e3)
    return first, steps


def main(argv):
    folder, prompt_tokens, new_tokens, threads, runs, warmup = argv[0], *map(int, argv[1:6])
    with open(os.path.join(folder, "generation.json")) as f:
        described = json.load(f)
    context = described["context_length"]
    if prompt_tokens + new_tokens > context:
        print(
            f"A prompt of {prompt_tokens} tokens and {new_tokens} new tokens exceed the model's context of "
            f"{context} tokens: ask for at most {context} in all.",
            file=sys.stderr,
        )
        sys.exit(USAGE_EXIT)
    import numpy as np
    import torch
    from executorch.runtime import Runtime

    try:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

        _unsafe_reset_threadpool(threads)
    except Exception:
        pass
    began = time.perf_counter()
    method = Runtime.get().load_program(os.path.join(folder, "model.pte")).load_method("forward")
    load_ms = (time.perf_counter() - began) * 1e3
    prompt = np.random.default_rng(0).integers(3, described["vocab_size"], size=prompt_tokens).tolist()
    for _ in range(warmup):
        generation(torch, method, prompt, new_tokens)
    timed = [generation(torch, method, prompt, new_tokens) for _ in range(runs)]
    try:
        from importlib.metadata import version

        versions = {"executorch": version("executorch")}
    except Exception:
        versions = {}
    print(
        json.dumps(
            {
                "load_ms": load_ms,
                "ttft_ms": [t[0] for t in timed],
                "token_ms": [t[1] for t in timed],
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "versions": versions,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])

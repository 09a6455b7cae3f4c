"""What edgekit's generation worker (edgekit/bench/generate_worker.py) needs to time an ExecuTorch LLM folder
(self-contained: pushed to the device beside it; needs the ExecuTorch runtime, torch and numpy there). The
prompt is prefilled in one call where the program takes a whole input (generation.json: "prefill": "whole"), else
one call per prompt token; each new token is one call."""

import json
import os
import time


def describe(folder):
    with open(os.path.join(folder, "generation.json")) as f:
        described = json.load(f)
    return {"context_length": described["context_length"], "vocab_size": described["vocab_size"]}


def load(folder, threads):
    import torch
    from executorch.runtime import Runtime

    with open(os.path.join(folder, "generation.json")) as f:
        described = json.load(f)
    try:  # the quantized kernels (an int8 embedding table runs embedding_byte)
        import executorch.kernels.quantized  # noqa: F401
    except ImportError:
        pass
    if described.get("attention") == "custom_sdpa":  # ExecuTorch's LLM attention kernel
        from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401
    try:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

        _unsafe_reset_threadpool(threads)
    except Exception:
        pass
    whole = described.get("prefill") == "whole"
    return torch, Runtime.get().load_program(os.path.join(folder, "model.pte")).load_method("forward"), whole


def generation(loaded, prompt, new_tokens):
    torch, method, whole = loaded

    def step(tokens, position):  # the logits after the last of `tokens`, the first at `position`
        ids = torch.tensor([tokens], dtype=torch.long)
        out = method.execute([ids, torch.arange(position, position + len(tokens), dtype=torch.long)])
        return out[0].reshape(-1, out[0].shape[-1])[-1]

    prompt = [int(t) for t in prompt]
    start = time.perf_counter()
    if whole:
        logits = step(prompt, 0)
    else:
        for position, token in enumerate(prompt):
            logits = step([token], position)
    token = int(logits.argmax())
    first = (time.perf_counter() - start) * 1e3
    steps = []
    for position in range(len(prompt), len(prompt) + new_tokens - 1):
        began = time.perf_counter()
        token = int(step([token], position).argmax())
        steps.append((time.perf_counter() - began) * 1e3)
    return first, steps


def versions():
    try:
        from importlib.metadata import version

        return {"executorch": version("executorch")}
    except Exception:
        return {}

"""What edgekit's generation worker (edgekit/bench/generate_worker.py) needs to time an ExecuTorch LLM folder
(self-contained: pushed to the device beside it; needs the ExecuTorch runtime, torch and numpy there). The
program takes one token a step, so the prompt's prefill is one step per prompt token."""

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

    try:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

        _unsafe_reset_threadpool(threads)
    except Exception:
        pass
    return torch, Runtime.get().load_program(os.path.join(folder, "model.pte")).load_method("forward")


def generation(loaded, prompt, new_tokens):
    torch, method = loaded

    def step(token, position):
        out = method.execute([torch.tensor([[token]], dtype=torch.long), torch.tensor([position], dtype=torch.long)])
        return out[0].reshape(-1, out[0].shape[-1])[-1]

    prompt = [int(t) for t in prompt]
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


def versions():
    try:
        from importlib.metadata import version

        return {"executorch": version("executorch")}
    except Exception:
        return {}

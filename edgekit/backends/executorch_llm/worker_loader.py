"""Benchmark-worker loader for ExecuTorch LLM folders (self-contained: the ExecuTorch runtime + torch tensors).

The folder's model.pte takes tokens and their positions and returns the next-token logits at each, keeping its
key/value cache inside (a static cache, as long as the context). A program exported with a free sequence length
(generation.json: "prefill": "whole") takes a whole input in one call; an older one, one token a call. Each row of
a batch starts again at position 0, which overwrites what the cache held.
"""

import json
import os

PROGRAM = "model.pte"
CONFIG = "generation.json"


def set_threads(threads):
    """XNNPACK's thread pool size, where this ExecuTorch build lets Python set it."""
    try:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

        _unsafe_reset_threadpool(int(threads))
    except Exception:
        pass


def register_kernels(described):
    """Register with ExecuTorch's runtime the kernels beyond its core the program may run: the quantized ones (an
    int8 embedding table runs embedding_byte) and, for a program exported with it, its LLM attention
    (llama::custom_sdpa, generation.json: "attention": "custom_sdpa")."""
    try:
        import executorch.kernels.quantized  # noqa: F401
    except ImportError:
        pass
    if described.get("attention") == "custom_sdpa":
        from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401


def open_folder(folder):
    """(the forward method, the folder's generation.json)."""
    from executorch.runtime import Runtime

    with open(os.path.join(folder, CONFIG)) as f:
        described = json.load(f)
    register_kernels(described)
    return Runtime.get().load_program(os.path.join(folder, PROGRAM)).load_method("forward"), described


def step(torch, method, token, position):
    """Next-token logits (a 1-D array) after `token` at `position`, the cache holding every earlier position."""
    return positions(torch, method, [token], position)[-1]


def positions(torch, method, tokens, start):
    """Next-token logits at each of `tokens` (rows of a 2-D array), fed at positions start, start + 1, ... in one
    call; the cache holds every earlier position."""
    ids = torch.tensor([[int(t) for t in tokens]], dtype=torch.long)
    out = method.execute([ids, torch.arange(start, start + len(tokens), dtype=torch.long)])
    return out[0].reshape(-1, out[0].shape[-1]).numpy()


def whole(described, torch, method, tokens):
    """Logits at every one of `tokens`, from position 0: in one call where the program takes a whole input, else a
    call each."""
    if described.get("prefill") == "whole":
        return positions(torch, method, tokens, 0)
    import numpy as np

    return np.stack([step(torch, method, t, p) for p, t in enumerate(tokens)])


def import_runtime():
    import torch

    return torch


def load(torch, path, threads, specs=None):
    import numpy as np

    set_threads(threads)
    method, described = open_folder(path)
    specs = [("input_ids", "int64", [1, -1]), ("attention_mask", "int64", [1, -1])]

    def infer(feed):
        return [np.stack([whole(described, torch, method, row) for row in feed["input_ids"]])]

    try:
        from importlib.metadata import version

        versions = {"executorch": version("executorch"), "torch": torch.__version__}
    except Exception:
        versions = {"executorch": "unknown", "torch": torch.__version__}
    return specs, infer, versions

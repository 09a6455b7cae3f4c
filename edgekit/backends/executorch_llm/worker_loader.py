"""Benchmark-worker loader for ExecuTorch LLM folders (self-contained: the ExecuTorch runtime + torch tensors).

The folder's model.pte takes one token and its position and returns the next-token logits, keeping its key/value
cache inside (a static cache, as long as the context). A whole input is fed one position at a time; each row of a
batch starts again at position 0, which overwrites what the cache held.
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


def open_folder(folder):
    """(the forward method, the folder's generation.json)."""
    from executorch.runtime import Runtime

    with open(os.path.join(folder, CONFIG)) as f:
        described = json.load(f)
    return Runtime.get().load_program(os.path.join(folder, PROGRAM)).load_method("forward"), described


def step(torch, method, token, position):
    """Next-token logits (a 1-D array) after `token` at `position`, the cache holding every earlier position."""
    out = method.execute([torch.tensor([[int(token)]], dtype=torch.long), torch.tensor([position], dtype=torch.long)])
    return out[0].reshape(-1, out[0].shape[-1])[-1].numpy()


def import_runtime():
    import torch

    return torch


def load(torch, path, threads, specs=None):
    import numpy as np

    set_threads(threads)
    method, _ = open_folder(path)
    specs = [("input_ids", "int64", [1, -1]), ("attention_mask", "int64", [1, -1])]

    def infer(feed):
        ids = feed["input_ids"]
        return [np.stack([np.stack([step(torch, method, t, p) for p, t in enumerate(row)]) for row in ids])]

    try:
        from importlib.metadata import version

        versions = {"executorch": version("executorch"), "torch": torch.__version__}
    except Exception:
        versions = {"executorch": "unknown", "torch": torch.__version__}
    return specs, infer, versions

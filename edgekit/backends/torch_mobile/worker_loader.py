"""Benchmark-worker loader for .ptl files (self-contained: torch's lite interpreter + numpy)."""


def import_runtime():
    import torch
    from torch.jit.mobile import _load_for_lite_interpreter

    return torch, _load_for_lite_interpreter


def load(imported, path, threads, specs=None):
    """The file records no inputs, so they come from --inputs (the harness passes them from the sidecar)."""
    torch, load_lite = imported
    if not specs:
        raise ValueError("a .ptl file needs --inputs (the harness passes them from the sidecar)")
    torch.set_num_threads(threads)
    module = load_lite(path)

    def infer(feed):
        with torch.inference_mode():
            return module(*[torch.from_numpy(feed[name]) for name, _, _ in specs])

    return specs, infer, {"torch": torch.__version__}

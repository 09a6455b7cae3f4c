"""Benchmark-worker loader for .pte files (self-contained: the ExecuTorch runtime + torch tensors)."""


def import_runtime():
    import torch
    from executorch.runtime import Runtime

    return torch, Runtime


def load(imported, path, threads, specs=None):
    """Names from --inputs, shapes as the program fixed them (exported at batch 1)."""
    torch, Runtime = imported
    if not specs:
        raise ValueError("a .pte file needs --inputs (the harness passes them from the sidecar)")
    method = Runtime.get().load_program(path).load_method("forward")
    meta = method.metadata
    specs = [(name, dtype, list(meta.input_tensor_meta(i).sizes())) for i, (name, dtype, _) in enumerate(specs)]

    def infer(feed):
        return method.execute([torch.from_numpy(feed[name]) for name, _, _ in specs])

    try:
        from importlib.metadata import version

        versions = {"executorch": version("executorch"), "torch": torch.__version__}
    except Exception:
        versions = {"executorch": "unknown", "torch": torch.__version__}
    return specs, infer, versions

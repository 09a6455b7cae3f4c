"""Benchmark-worker loader for OpenVINO LLM folders (self-contained: openvino + numpy on the device).

The folder's stateful model (openvino_model.xml, its key/value cache kept inside as state) is run as one forward
pass over the whole input from an empty cache: the prefill a generation starts with, whose logits parity and
perplexity compare. generation.json says the float precision it was exported to compute in.
"""

import json
import os

MODEL = "openvino_model.xml"
CONFIG = "generation.json"


def described(folder):
    with open(os.path.join(folder, CONFIG)) as f:
        return json.load(f)


def compile_config(folder, threads):
    """One latency stream, the thread count, and the precision the export chose (None: the CPU's own)."""
    config: dict = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    precision = described(folder).get("inference_precision")
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


def open_model(ov, folder, threads):
    """(an infer request of the folder's compiled model, the model as read)."""
    core = ov.Core()
    model = core.read_model(os.path.join(folder, MODEL))
    return core.compile_model(model, "CPU", compile_config(folder, threads)).create_infer_request(), model


def prefill(request, feed):
    """Logits of every position of `feed` (input_ids, attention_mask), the cache emptied first."""
    import numpy as np

    ids = np.asarray(feed["input_ids"], dtype=np.int64)
    mask = np.asarray(feed.get("attention_mask", np.ones_like(ids)), dtype=np.int64)
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    request.reset_state()
    inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
    request.infer({**inputs, "beam_idx": np.arange(len(ids), dtype=np.int32)})
    return request.get_tensor("logits").data.copy()


def import_runtime():
    import openvino

    return openvino


def load(ov, path, threads, specs=None):
    request, _ = open_model(ov, path, threads)
    specs = [("input_ids", "int64", [-1, -1]), ("attention_mask", "int64", [-1, -1])]
    return specs, lambda feed: [prefill(request, feed)], {"openvino": ov.get_version()}

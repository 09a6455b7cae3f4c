"""Benchmark-worker loader for ONNX Runtime GenAI folders (self-contained: onnxruntime + numpy on the device).

The folder's decoder (model.onnx, named by genai_config.json) is run as one forward pass over the whole input with
an empty key/value cache: the prefill a generation starts with, whose logits parity and perplexity compare.
"""

import json
import os

CONFIG = "genai_config.json"


def decoder(folder):
    """The decoder section of the folder's genai_config.json and the path of its ONNX file."""
    with open(os.path.join(folder, CONFIG)) as f:
        section = json.load(f)["model"]["decoder"]
    return section, os.path.join(folder, section["filename"])


def empty_cache(section, session, batch):
    """Zero-length past keys and values for every cache input of the decoder (float32 or float16)."""
    kinds = {"tensor(float16)": "float16"}
    feeds = {}
    for i in session.get_inputs():
        if i.name.startswith("past_key_values."):
            shape = (batch, section["num_key_value_heads"], 0, section["head_size"])
            feeds[i.name] = (shape, kinds.get(i.type, "float32"))
    return feeds


def import_runtime():
    import onnxruntime

    return onnxruntime


def load(ort, path, threads, specs=None):
    import numpy as np

    section, model = decoder(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    specs = [(i.name, "int64", list(i.shape)) for i in session.get_inputs() if not i.name.startswith("past_")]

    def infer(feed):
        batch = len(next(iter(feed.values())))
        cache = {k: np.zeros(s, d) for k, (s, d) in empty_cache(section, session, batch).items()}
        return session.run(["logits"], {**feed, **cache})

    return specs, infer, {"onnxruntime": ort.__version__}

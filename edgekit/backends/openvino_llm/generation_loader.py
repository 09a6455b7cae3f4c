"""What edgekit's generation worker (edgekit/bench/generate_worker.py) needs to time an OpenVINO LLM folder
(self-contained: pushed to the device beside it; needs openvino-genai, openvino-tokenizers and numpy there). The
folder is run by OpenVINO GenAI's LLMPipeline, what an app ships; each token is timed as its streamer receives it."""

import itertools
import json
import os
import time


def describe(folder):
    with open(os.path.join(folder, "generation.json")) as f:
        described = json.load(f)
    return {"context_length": described["context_length"], "vocab_size": described["vocab_size"]}


def load(folder, threads):
    import openvino_genai

    with open(os.path.join(folder, "generation.json")) as f:
        precision = json.load(f).get("inference_precision")
    config = {"INFERENCE_NUM_THREADS": int(threads), "NUM_STREAMS": "1"}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    return openvino_genai, openvino_genai.LLMPipeline(folder, "CPU", **config)


def greedy(genai, prompt, new_tokens):
    """(the prompt as the pipeline's input, a configuration for `new_tokens` greedy tokens, end of text or not)."""
    import numpy as np
    import openvino

    config = genai.GenerationConfig()
    config.max_new_tokens = config.min_new_tokens = new_tokens
    config.do_sample = False
    ids = np.asarray(prompt, dtype=np.int64).reshape(1, -1)
    return genai.TokenizedInputs(openvino.Tensor(ids), openvino.Tensor(np.ones_like(ids))), config


def generation(loaded, prompt, new_tokens):
    genai, pipeline = loaded
    inputs, config = greedy(genai, prompt, new_tokens)
    stamps = []

    class Clock(genai.StreamerBase):  # type: ignore[name-defined]  # the module is an argument
        def write(self, token):
            stamps.append(time.perf_counter())
            return genai.StreamingStatus.RUNNING

        def end(self):
            pass

    start = time.perf_counter()
    pipeline.generate(inputs, config, Clock())
    return (stamps[0] - start) * 1e3, [(b - a) * 1e3 for a, b in itertools.pairwise(stamps)]


def versions():
    import openvino
    import openvino_genai

    return {"openvino": openvino.get_version(), "openvino-genai": openvino_genai.__version__}

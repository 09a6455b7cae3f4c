"""What edgekit's generation worker (edgekit/bench/generate_worker.py) needs to time an ONNX Runtime GenAI folder
(self-contained: pushed to the device beside it; needs onnxruntime-genai and numpy there)."""

import json
import os
import time


def describe(folder):
    with open(os.path.join(folder, "genai_config.json")) as f:
        model = json.load(f)["model"]
    return {"context_length": model.get("context_length"), "vocab_size": model["vocab_size"]}


def load(folder, threads):
    # before ONNX Runtime loads: over ssh the worker starts without edgekit's setting (edgekit/__init__.py says why)
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime_genai as og

    config = og.Config(folder)
    options = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    return og, og.Model(config)


def generation(loaded, prompt, new_tokens):
    og, model = loaded
    params = og.GeneratorParams(model)
    total = len(prompt) + new_tokens
    params.set_search_options(do_sample=False, max_length=total, min_length=total)
    start = time.perf_counter()
    generator = og.Generator(model, params)
    generator.append_tokens(prompt.reshape(1, -1).astype("int32"))
    generator.generate_next_token()
    first = (time.perf_counter() - start) * 1e3
    steps = []
    while not generator.is_done():
        began = time.perf_counter()
        generator.generate_next_token()
        steps.append((time.perf_counter() - began) * 1e3)
    return first, steps


def versions():
    import onnxruntime_genai as og

    return {"onnxruntime-genai": og.__version__}

"""What edgekit's generation worker (edgekit/bench/generate_worker.py) needs to time a GGUF file (self-contained:
pushed to the device beside it; needs llama-cpp-python there). The prompt is prefilled in one llama.cpp decode
call, then each new token is one call."""

import functools
import time


@functools.cache
def describe(path):
    """Read once per process: the worker asks before loading, and load() asks again for the context; each read
    loads the vocabulary, which load_ms would otherwise count twice."""
    import llama_cpp

    probe = llama_cpp.Llama(path, n_ctx=8, vocab_only=True, verbose=False)
    arch = probe.metadata.get("general.architecture", "llama")
    return {"context_length": int(probe.metadata[arch + ".context_length"]), "vocab_size": probe.n_vocab()}


def load(path, threads):
    import llama_cpp

    context = describe(path)["context_length"]
    return llama_cpp.Llama(path, n_ctx=context, n_batch=512, verbose=False, n_threads=threads,
                           n_threads_batch=threads)  # fmt: skip


def generation(llm, prompt, new_tokens):
    import numpy as np

    llm.reset()
    start = time.perf_counter()
    llm.eval([int(t) for t in prompt])
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    first = (time.perf_counter() - start) * 1e3
    steps = []
    for _ in range(new_tokens - 1):
        began = time.perf_counter()
        llm.eval([token])
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        steps.append((time.perf_counter() - began) * 1e3)
    return first, steps


def versions():
    import llama_cpp

    return {"llama-cpp-python": llama_cpp.__version__}

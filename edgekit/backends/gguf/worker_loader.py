"""Benchmark-worker loader for GGUF files (self-contained: llama-cpp-python and numpy on the device).

The file is run by llama.cpp over a whole input with an empty cache, every position's logits kept: the prefill a
generation starts with, whose logits parity and perplexity compare.
"""

CONTEXT_KEY = "context_length"


def import_runtime():
    import llama_cpp

    return llama_cpp


def open_model(llama_cpp, path, threads, context=None, exact_cache=False):
    """A llama_cpp.Llama of the file that keeps every position's logits, its cache as long as `context` (default:
    the file's context, read from it first): in f16, llama.cpp's default (what an app runs), or f32 with
    `exact_cache` (what proves the file: an f16 cache alone moved an f32 file's logits by 2e-4 and flipped
    near-tied greedy choices of a random tiny model)."""
    if context is None:
        probe = llama_cpp.Llama(path, n_ctx=8, vocab_only=True, verbose=False)
        context = int(probe.metadata.get(probe.metadata.get("general.architecture", "llama") + "." + CONTEXT_KEY, 0))
        del probe
    cache = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32} if exact_cache else {}
    return llama_cpp.Llama(path, n_ctx=int(context or 512), n_batch=512, logits_all=True, verbose=False,
                           n_threads=threads or None, n_threads_batch=threads or None, **cache)  # fmt: skip


def prefill(llm, ids, mask=None):
    """Each row's logits over every position (zeros where the mask says padding), a fresh cache per row."""
    import numpy as np

    rows = []
    for i, row in enumerate(ids):
        n = int(mask[i].sum()) if mask is not None else len(row)
        llm.reset()
        llm.eval([int(t) for t in row[:n]])
        logits = np.zeros((len(row), llm.n_vocab()), np.float32)
        logits[:n] = np.asarray(llm.scores[:n], np.float32)
        rows.append(logits)
    return np.stack(rows)


def load(llama_cpp, path, threads, specs=None):
    llm = open_model(llama_cpp, path, threads)
    specs = [("input_ids", "int64", ["batch", "sequence"]), ("attention_mask", "int64", ["batch", "sequence"])]

    def infer(feed):
        return [prefill(llm, feed["input_ids"], feed.get("attention_mask"))]

    return specs, infer, {"llama-cpp-python": llama_cpp.__version__}

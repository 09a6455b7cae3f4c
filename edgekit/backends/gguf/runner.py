"""Runner for GGUF files: llama.cpp (llama-cpp-python) over a whole input, the logits of every position returned
(what parity and perplexity compare with the source's)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.backends.gguf.worker_loader import CONTEXT_KEY, open_model, prefill
from edgekit.backends.llm import PrefillRunner
from edgekit.errors import ModelLoadError, first_line
from edgekit.quiet import quiet


class LlamaCppRunner(PrefillRunner):
    name = "llama.cpp"

    llm: Any = None  # set while active

    def activate_impl(self) -> None:
        keys = metadata(self.path)  # a file that is not GGUF is said so before anything else
        context = keys.get(f"{keys.get('general.architecture')}.{CONTEXT_KEY}")
        llama_cpp = require("llama_cpp", "Running a GGUF file", extra="llamacpp")
        try:
            with quiet():
                self.llm = open_model(llama_cpp, str(self.path), self.threads, context, exact_cache=True)
        except ValueError as e:
            raise ModelLoadError(f"llama.cpp cannot load {self.path}: {first_line(e)}",
                                 hint="Is it a GGUF file, written whole?") from None  # fmt: skip

    def deactivate_impl(self) -> None:
        self.llm = None

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = np.asarray(feed["input_ids"])
        if ids.shape[1] > self.llm.n_ctx():
            raise ModelLoadError(f"{self.path} holds {self.llm.n_ctx()} positions; an input of {ids.shape[1]} tokens "
                                 "is longer.")  # fmt: skip
        return {"logits": prefill(self.llm, ids, feed.get("attention_mask"))}


def metadata(path: Path) -> dict[str, Any]:
    """The file's GGUF keys (scalars and strings; arrays as their length), read without loading its weights."""
    gguf = require("gguf", "Reading a GGUF file", extra="gguf")
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError) as e:
        raise ModelLoadError(f"{path} is not a readable GGUF file ({type(e).__name__}: {first_line(e)}).") from None
    keys: dict[str, Any] = {}
    for name, field in reader.fields.items():
        if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
            keys[name] = len(field.data)
        else:
            keys[name] = field.contents()
    return keys

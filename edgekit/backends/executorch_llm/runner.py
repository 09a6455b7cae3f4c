"""Runner for ExecuTorch LLM folders: a whole input fed through the program's cache (in one call, or one position
a call for a program exported before prefill was whole), the logits of every position returned (what parity and
perplexity compare with the source's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.backends.executorch.runner import load_hint
from edgekit.backends.executorch_llm.worker_loader import open_folder, set_threads, whole
from edgekit.backends.llm import PrefillRunner
from edgekit.errors import ModelLoadError, first_line
from edgekit.quiet import quiet


class ExecuTorchLLMRunner(PrefillRunner):
    name = "executorch-llm"

    method: Any = None  # set while active

    def activate_impl(self) -> None:
        with quiet():
            require("executorch.runtime", "Running an ExecuTorch LLM folder")
            try:
                if self.threads:
                    set_threads(self.threads)
                self.method, self.described = open_folder(str(self.path))
            except (OSError, ValueError, RuntimeError) as e:
                raise ModelLoadError(
                    f"ExecuTorch cannot load the LLM folder {self.path}: {first_line(e)}", hint=load_hint(str(e))
                ) from None

    def deactivate_impl(self) -> None:
        self.method = None

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        ids = np.asarray(feed["input_ids"])
        context = self.described["context_length"]
        if ids.shape[1] > context:
            raise ModelLoadError(f"{self.path} holds {context} positions; an input of {ids.shape[1]} tokens is longer.")
        rows = [whole(self.described, torch, self.method, row) for row in ids]
        return {"logits": np.stack(rows).astype(np.float32)}

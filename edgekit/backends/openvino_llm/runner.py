"""Prefill runner for OpenVINO LLM folders: the stateful model run over a whole input from an empty cache, the
logits of every position returned (what parity and perplexity compare with the source's; generation, which reads
one position a step, is checked with OpenVINO GenAI's pipeline itself)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgekit.backends.llm import PrefillRunner
from edgekit.backends.openvino.stack import import_stack
from edgekit.backends.openvino_llm.worker_loader import CONFIG, MODEL, open_model, prefill
from edgekit.errors import ModelLoadError, first_line


class OpenVINOLLMRunner(PrefillRunner):
    name = "openvino-llm"

    request: Any = None  # set while active

    def activate_impl(self) -> None:
        ov = import_stack("openvino", "Running an OpenVINO LLM folder")
        if not (self.path / MODEL).is_file() or not (self.path / CONFIG).is_file():
            raise ModelLoadError(f"{self.path} is not an OpenVINO LLM folder: it has no {MODEL} or {CONFIG}.")
        try:
            self.request, _ = open_model(ov, str(self.path), self.threads)
        except (RuntimeError, OSError, ValueError) as e:
            raise ModelLoadError(f"OpenVINO cannot load the LLM folder {self.path}: {first_line(e, 400)}") from None

    def deactivate_impl(self) -> None:
        self.request = None

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"logits": prefill(self.request, feed).astype(np.float32)}

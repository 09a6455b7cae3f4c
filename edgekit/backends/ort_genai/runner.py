"""Prefill runner for ONNX Runtime GenAI folders: the decoder run over a whole input with an empty cache.

ONNX Runtime GenAI drives this same ONNX file with onnxruntime; parity and perplexity compare its logits over
every position (generation, which reads one position a step, is checked with onnxruntime_genai itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.llm import has_chat_template
from edgekit.backends.onnxruntime.runner import OnnxRuntimeRunner
from edgekit.backends.ort_genai.worker_loader import CONFIG, decoder, empty_cache
from edgekit.errors import ModelLoadError
from edgekit.sidecar import ArtifactIO
from edgekit.sources.onnx_source import onnx_signature
from edgekit.spec import Signature, TensorSpec


class GenAIRunner(OnnxRuntimeRunner):
    name = "onnxruntime-genai"

    def __init__(self, path: str | Path, io: ArtifactIO | None = None, threads: int | None = None) -> None:
        self.section, model = _decoder(Path(path))
        super().__init__(model, io, threads)

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        return tuple(s for s in super().input_specs_impl() if not s.name.startswith("past_"))

    def output_names_impl(self) -> list[str]:
        return ["logits"]

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = len(next(iter(feed.values())))
        cache = empty_cache(self.section, self.session, batch)
        return super().infer_impl({**feed, **{k: np.zeros(s, d) for k, (s, d) in cache.items()}})


def _decoder(folder: Path) -> tuple[dict[str, Any], str]:
    try:
        return decoder(str(folder))
    except (OSError, KeyError, ValueError) as e:
        raise ModelLoadError(
            f"{folder} is not an ONNX Runtime GenAI folder: its genai_config.json is missing or has no decoder "
            f"({type(e).__name__}: {e})."
        ) from None


def _graph(folder: Path) -> Any:
    """The folder's decoder graph without its weights (what describing it needs)."""
    import onnx

    _, model = _decoder(folder)
    return onnx.load(model, load_external_data=False)


def signature(folder: Path) -> Signature:
    """The folder's prefill inputs (token ids, attention mask) and its logits, as the decoder declares them."""
    graph = onnx_signature(_graph(folder))
    inputs = tuple(s for s in graph.inputs if not s.name.startswith("past_"))
    return Signature(inputs, tuple(s for s in graph.outputs if s.name == "logits"))


def generation_facts(folder: Path) -> dict[str, Any]:
    """Context length, end-of-text ids, the key/value cache's bytes at the full context and whether the tokenizer
    has a chat template, from the folder's genai_config.json, decoder graph and tokenizer config."""
    import json

    import onnx

    described = json.loads((folder / CONFIG).read_text())["model"]
    section = described["decoder"]
    caches = [i for i in _graph(folder).graph.input if i.name.startswith("past_key_values.")]
    width = 2 if caches and caches[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 else 4
    per_token = len(caches) * section["num_key_value_heads"] * section["head_size"] * width  # keys and values
    eos = described["eos_token_id"]
    return {
        "context_length": described["context_length"],
        "eos_token_ids": eos if isinstance(eos, list) else [eos],
        "kv_cache_bytes": per_token * described["context_length"],
        "chat_template": has_chat_template(folder),
    }

"""What every generative (causal-LM) target shares: the Hugging Face causal-LM folder it builds from, and the
proof by generation: greedy tokens from the exported file, through its runtime and its key/value cache, against
the source's (transformers, recomputing every position without a cache)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from edgekit.backends.base import StepContext
from edgekit.backends.options import BackendOptions
from edgekit.errors import ConversionError, ParityError, UsageError, first_line
from edgekit.runners.base import Runner
from edgekit.sidecar import ArtifactIO
from edgekit.sources.base import Model
from edgekit.sources.hf_source import is_causal_lm
from edgekit.spec import Signature, TensorSpec


class GenerationCheck(BackendOptions):
    """The options every generative target shares: the size of the generation check."""

    prompts: int = Field(20, ge=1, description="greedy-generation check: how many prompts")
    new_tokens: int = Field(32, ge=1, description="greedy-generation check: tokens generated per prompt")


def hf_causal_lm(model: Model, runtime: str) -> Path:
    """The Hugging Face folder of a causal LM source; anything else is refused, saying what these targets take."""
    folder = Path(model.source)
    config = folder / "config.json"
    if model.kind != "hf" or not config.is_file():
        raise UsageError(
            f"{runtime} targets build from a Hugging Face model folder; {model.source} is a {model.kind} source.",
            hint="Give the causal LM's folder (config.json, weights, tokenizer), as saved by save_pretrained.",
        )
    described = json.loads(config.read_text())
    if not is_causal_lm(described):
        architectures = described.get("architectures") or []
        raise UsageError(
            f"{folder} is not a causal language model (its config's architectures: "
            f"{', '.join(architectures) or 'none'}); {runtime} generates text with ...ForCausalLM models.",
            hint="Export an encoder or classifier to an onnx-* target instead.",
        )
    if model.tokenizer_dir is None:
        raise UsageError(
            f"{folder} has no tokenizer (tokenizer.json or vocab.txt): a {runtime} folder carries the tokenizer "
            "the app generates with.",
            hint="Save it beside the model: tokenizer.save_pretrained(folder).",
        )
    return folder


def has_chat_template(folder: Path) -> bool:
    """Whether the tokenizer saved in an exported LM folder carries a chat template (for the bundle manifest)."""
    tokenizer = folder / "tokenizer_config.json"
    return tokenizer.is_file() and bool(json.loads(tokenizer.read_text()).get("chat_template"))


def prompts(ctx: StepContext, count: int, vocabulary: int) -> list[list[int]]:
    """Prompts for the generation check: the first tokens of the calibration texts where given, else token ids
    drawn at random from the vocabulary (seeded), 4 to 24 tokens long."""
    rng = np.random.default_rng(0)
    if ctx.data is not None and "input_ids" in ctx.data.arrays:
        ids, mask = ctx.data.arrays["input_ids"], ctx.data.arrays.get("attention_mask")
        lengths = mask.sum(axis=1) if mask is not None else [ids.shape[1]] * len(ids)
        rows = [row[: int(n)] for row, n in zip(ids, lengths)]
        return [r[:24].tolist() for r in rows if len(r) >= 4][:count]
    return [rng.integers(0, vocabulary, size=int(rng.integers(4, 25))).tolist() for _ in range(count)]


def check_generation(
    ctx: StepContext, generate: Callable[[list[int], int], list[int]], count: int, new_tokens: int
) -> dict[str, Any]:
    """Greedy generation of `new_tokens` from each prompt by the exported file (`generate(prompt, n)`, through its
    runtime and cache) and by the source: how many prompts give identical tokens, and how many of all tokens
    agree. A float file must agree on every token (ParityError); a quantized one's agreement is recorded."""
    source = ctx.model.obj.model
    feeds = prompts(ctx, count, source.config.vocab_size)
    try:
        ours = [generate(p, new_tokens) for p in feeds]
    except RuntimeError as e:  # the runtime's errors: a config it rejects, a kernel that fails
        raise ConversionError(f"The exported model cannot generate in its runtime: {first_line(e)}") from None
    theirs = [reference_greedy(source, p, new_tokens) for p in feeds]
    same = [sum(a == b for a, b in zip(x, y)) for x, y in zip(ours, theirs)]
    identical = sum(s == new_tokens for s in same)
    result = {
        "prompts": len(feeds),
        "new_tokens": new_tokens,
        "identical_prompts": identical,
        "token_agreement": round(sum(same) / (new_tokens * len(feeds)), 4) if feeds else None,
    }
    if ctx.recipe.quantization == "none" and identical < len(feeds):
        first = next(i for i, s in enumerate(same) if s < new_tokens)
        raise ParityError(
            f"Greedy generation from the exported model differs from the source's: prompt {first} diverges at "
            f"new token {next(j for j, (a, b) in enumerate(zip(ours[first], theirs[first])) if a != b)} "
            f"({identical} of {len(feeds)} prompts identical)."
        )
    return result


def reference_greedy(model: Any, prompt: list[int], new_tokens: int) -> list[int]:
    """The source's greedy tokens, every position recomputed (no cache): the check of the folder's cache too."""
    import torch

    with torch.no_grad():
        ids = torch.tensor([prompt])
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            use_cache=False,
            pad_token_id=model.config.eos_token_id or 0,
        )
    return out[0, len(prompt) :].tolist()


# what a runner of a folder that feeds the cache itself takes: a whole input (ExecuTorch LLM, OpenVINO LLM)
PREFILL_INPUTS = (
    TensorSpec("input_ids", "int64", ("batch", "sequence")),
    TensorSpec("attention_mask", "int64", ("batch", "sequence")),
)
GENERATION_JSON = "generation.json"  # what those folders' exports write beside the model: context, end ids, cache


class PrefillRunner(Runner):
    """A runner of a generative folder or file that feeds the cache itself: a whole input (PREFILL_INPUTS) in, the
    logits of every position out (what parity and perplexity compare with the source's)."""

    def __init__(self, path: str | Path, io: ArtifactIO | None = None, threads: int | None = None) -> None:
        super().__init__()
        self.path, self.threads = Path(path), threads

    def input_specs_impl(self) -> tuple[TensorSpec, ...]:
        return PREFILL_INPUTS

    def output_names_impl(self) -> list[str]:
        return ["logits"]


def prefill_io(folder: Path, model: Model) -> ArtifactIO:
    """A folder's inputs and outputs: token ids and mask in, logits over the vocabulary generation.json names
    out (with the source's output roles)."""
    vocabulary = json.loads((folder / GENERATION_JSON).read_text())["vocab_size"]
    logits = TensorSpec("logits", "float32", ("batch", "sequence", vocabulary))
    return ArtifactIO.from_signature(Signature(PREFILL_INPUTS, (logits,)).with_roles(model.signature))


def generation_facts(folder: Path) -> dict[str, Any]:
    """The bundle manifest's generation facts, as the export wrote them in generation.json."""
    described = json.loads((folder / GENERATION_JSON).read_text())
    keys = ("context_length", "eos_token_ids", "kv_cache_bytes")
    return {**{k: described[k] for k in keys}, "chat_template": has_chat_template(folder)}


def cache_shape(config: Any) -> tuple[int, int]:
    """(key/value heads, size of each head) of a transformers config."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return heads, getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def generation_json(config: Any, context: int | None, bytes_per_value: int) -> dict[str, Any]:
    """What generation.json says of every LM folder: context, end-of-text ids, vocabulary, and the key/value
    cache's bytes at the full context (keys and values of every layer)."""
    eos = config.eos_token_id
    heads, head_dim = cache_shape(config)
    per_token = 2 * config.num_hidden_layers * heads * head_dim * bytes_per_value
    return {
        "context_length": context,
        "eos_token_ids": eos if isinstance(eos, list) else [eos] if eos is not None else [],
        "vocab_size": config.vocab_size,
        "kv_cache_bytes": per_token * context if context else None,
    }

"""Hugging Face causal-LM folder -> ONNX Runtime GenAI folder, by ONNX Runtime GenAI's model builder, then proved
by generation: greedy tokens from the folder (onnxruntime_genai, with its key/value cache) against the source's
(transformers, recomputing every position without a cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.ort_genai.options import GenAIOptions
from edgekit.errors import ConversionError, ParityError, UnsupportedOpError, UsageError, first_line
from edgekit.sources.base import Model
from edgekit.sources.hf_source import is_causal_lm

# the builder's precision for each target quantization: fp32 weights, or int4 weights in blocks (MatMulNBits)
PRECISION = {"none": "fp32", "weight-only": "int4"}
BUILDER = "onnxruntime_genai.models.builder"


def build(ctx: StepContext) -> StepNotes:
    folder = hf_causal_lm(ctx.model)
    options = ctx.options
    assert isinstance(options, GenAIOptions)  # the registry resolved this backend's own model
    precision = PRECISION[ctx.recipe.quantization]
    extra = [f"int4_block_size={options.block_size}", f"int4_accuracy_level={options.accuracy_level}"]
    with tempfile.TemporaryDirectory(prefix="edgekit-genai-") as cache:
        argv = [sys.executable, "-m", BUILDER, "-i", str(folder), "-o", str(ctx.out), "-p", precision, "-e", "cpu"]
        argv += ["-c", cache, "--extra_options", *extra]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode or not (ctx.out / "genai_config.json").is_file():
        reason = _builder_error(done.stderr, json.loads((folder / "config.json").read_text()))
        raise ConversionError(f"ONNX Runtime GenAI's model builder failed on {folder}: {reason}")
    details: dict[str, Any] = {"precision": precision, "execution_provider": "cpu"}
    if precision == "int4":
        details.update(block_size=options.block_size, accuracy_level=options.accuracy_level)
    details["generation"] = check_generation(ctx, options.prompts, options.new_tokens)
    return StepNotes(details, applied="weight-only" if precision == "int4" else None)


def hf_causal_lm(model: Model) -> Path:
    """The Hugging Face folder of a causal LM source; anything else is refused, saying what these targets take."""
    folder = Path(model.source)
    config = folder / "config.json"
    if model.kind != "hf" or not config.is_file():
        raise UsageError(
            f"ONNX Runtime GenAI targets build from a Hugging Face model folder; {model.source} is a {model.kind} "
            "source.",
            hint="Give the causal LM's folder (config.json, weights, tokenizer), as saved by save_pretrained.",
        )
    described = json.loads(config.read_text())
    if not is_causal_lm(described):
        architectures = described.get("architectures") or []
        raise UsageError(
            f"{folder} is not a causal language model (its config's architectures: "
            f"{', '.join(architectures) or 'none'}); ONNX Runtime GenAI generates text with ...ForCausalLM models.",
            hint="Export an encoder or classifier to an onnx-* target instead.",
        )
    if model.tokenizer_dir is None:
        raise UsageError(
            f"{folder} has no tokenizer (tokenizer.json or vocab.txt): an ONNX Runtime GenAI folder carries the "
            "tokenizer the app generates with.",
            hint="Save it beside the model: tokenizer.save_pretrained(folder).",
        )
    return folder


def _builder_error(stderr: str, config: dict[str, Any]) -> str:
    """The builder's own reason, from the end of its output (an architecture it does not build is named there)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith((" ", "Traceback"))]
    reason = lines[-1] if lines else "no output"
    if "is not currently supported" in reason or "not supported" in reason.lower():
        architecture = ", ".join(config.get("architectures") or [str(config.get("model_type"))])
        raise UnsupportedOpError(
            f"ONNX Runtime GenAI's model builder does not build {architecture} models ({reason}).",
            hint="It builds the Llama, Mistral, Qwen, Phi, Gemma, Granite, OLMo, SmolLM3 families among others; "
            "export other causal LMs to onnx-fp32 or onnx-int8-dynamic (one forward pass, no cache).",
        )
    return reason[-400:]


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


def check_generation(ctx: StepContext, count: int, new_tokens: int) -> dict[str, Any]:
    """Greedy generation of `new_tokens` from each prompt by the folder and by the source: how many prompts give
    identical tokens, and how many of all tokens agree. An fp32 folder must agree on every token (ParityError)."""
    import onnxruntime_genai as og

    source = ctx.model.obj.model
    feeds = prompts(ctx, count, source.config.vocab_size)
    try:
        folder = og.Model(str(ctx.out))
        ours = [generate_greedy(folder, p, new_tokens) for p in feeds]
    except RuntimeError as e:  # onnxruntime_genai's errors: a config it rejects, a kernel that fails
        raise ConversionError(f"ONNX Runtime GenAI cannot generate with the folder it built: {first_line(e)}") from None
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
            f"Greedy generation from the exported folder differs from the source's: prompt {first} diverges at "
            f"new token {next(j for j, (a, b) in enumerate(zip(ours[first], theirs[first])) if a != b)} "
            f"({identical} of {len(feeds)} prompts identical)."
        )
    return result


def generate_greedy(model: Any, prompt: list[int], new_tokens: int) -> list[int]:
    """`new_tokens` greedy tokens after `prompt`, generated by an onnxruntime_genai Model with its key/value cache
    (end of text does not stop it, so every prompt yields the same count)."""
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    total = len(prompt) + new_tokens
    params.set_search_options(do_sample=False, max_length=total, min_length=total)
    generator = og.Generator(model, params)
    generator.append_tokens(np.asarray([prompt], dtype=np.int32))
    out: list[int] = []
    while not generator.is_done() and len(out) < new_tokens:
        generator.generate_next_token()
        out.append(int(generator.get_next_tokens()[0]))
    return out


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

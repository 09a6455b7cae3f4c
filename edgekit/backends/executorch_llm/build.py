"""Hugging Face causal-LM folder -> ExecuTorch LLM folder: torch.export of the model with a static key/value cache
(transformers' exportable decoder: tokens and their positions in, a whole prompt or one new token, next-token
logits out), lowered to XNNPACK;
for 8da4w the linear layers first get int4 weights in groups and int8 dynamic activations (torchao). Proved by
greedy generation against the source (edgekit.backends.llm)."""

from __future__ import annotations

import copy
import json
import shutil
from typing import Any

from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.executorch_llm.attention import KERNEL, fits, use_custom_sdpa
from edgekit.backends.executorch_llm.options import ExecuTorchLLMOptions
from edgekit.backends.executorch_llm.worker_loader import CONFIG, PROGRAM, open_folder, positions, step
from edgekit.backends.llm import check_generation, generation_json, hf_causal_lm
from edgekit.data import TOKENIZER_FILES
from edgekit.errors import ConversionError, UnsupportedOpError, first_line
from edgekit.quiet import quiet

MAX_CONTEXT = 2048  # the default cache length at most: the cache is allocated whole, whatever a prompt uses


def build(ctx: StepContext) -> StepNotes:
    hf_causal_lm(ctx.model, "ExecuTorch LLM")  # refuses what is not a causal-LM folder
    options = ctx.options
    assert isinstance(options, ExecuTorchLLMOptions)  # the registry resolved this backend's own model
    import torch

    model = copy.deepcopy(ctx.model.obj.model).eval()  # quantization changes it in place; the source stays whole
    config = model.config
    context = options.context or min(int(getattr(config, "max_position_embeddings", MAX_CONTEXT)), MAX_CONTEXT)
    details: dict[str, Any] = {"context_length": context, "cache": "static"}
    if ctx.recipe.quantization == "int4-dynamic":
        _eight_da_four_w(model, options.group_size)
        details.update(weights="int4", group_size=options.group_size, activations="int8 dynamic")
        details["embeddings"] = _byte_embeddings(model) if options.int8_embeddings else "float"
    ctx.out.mkdir(parents=True)
    with quiet(), torch.no_grad():
        described = _describe(config, context)
        metadata = _runner_metadata(described, config.bos_token_id)
        program, attention = _lower_with_the_fastest_attention(model, context, metadata, options.custom_sdpa)
    details["attention"] = attention
    if attention.startswith(KERNEL):  # whatever runs the program registers the kernel (edgekit's loaders do)
        described["attention"] = "custom_sdpa"
    (ctx.out / PROGRAM).write_bytes(program)
    (ctx.out / CONFIG).write_text(json.dumps(described, indent=2) + "\n")
    for name in TOKENIZER_FILES:
        if ctx.model.tokenizer_dir and (ctx.model.tokenizer_dir / name).is_file():
            shutil.copy(ctx.model.tokenizer_dir / name, ctx.out / name)
    with quiet():  # the runtime's C++ logs its CPU probing
        method, _ = open_folder(str(ctx.out))
    details["generation"] = check_generation(
        ctx, lambda prompt, n: generate_greedy(torch, method, prompt, n), options.prompts, options.new_tokens
    )
    return StepNotes(details, applied="int4-dynamic" if ctx.recipe.quantization == "int4-dynamic" else None)


def _eight_da_four_w(model: Any, group_size: int) -> None:
    """int4 weights in groups with int8 dynamic activations on every linear layer (XNNPACK runs them as one)."""
    import torch
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    quantize_(
        model, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(group_size))
    )


def _byte_embeddings(model: Any) -> str:
    """The token embedding table as int8 rows with a float scale each, looked up by ExecuTorch's
    quantized_decomposed::embedding_byte kernel; a table the output layer shares stays float (quantizing one copy
    would store the table twice). Returns what the table became, for the sidecar."""
    import torch
    from executorch.exir.passes import _quant_patterns_and_replacements  # noqa: F401  (registers the op to trace)

    table = model.get_input_embeddings()
    head = model.get_output_embeddings()
    if head is not None and head.weight is table.weight:
        return "float (tied to the output layer)"
    weight = table.weight.detach().float()
    scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0

    class ByteEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            rows = torch.clamp(torch.round(weight / scale[:, None]), -128, 127).to(torch.int8)
            self.register_buffer("rows", rows)
            self.register_buffer("scales", scale)
            self.register_buffer("zeros", torch.zeros_like(scale))  # the kernel wants zero points, symmetric here

        def forward(self, ids):
            op = torch.ops.quantized_decomposed.embedding_byte.default
            return op(self.rows, self.scales, self.zeros, -128, 127, ids)

    model.set_input_embeddings(ByteEmbedding())
    return "int8 per row"


def _runner_metadata(described: dict[str, Any], bos: int | None) -> dict[str, Any]:
    """What ExecuTorch's own LLM runners (its C++ TextLLMRunner and llama_main, the Android and iOS LLM modules)
    read from a program's constant methods, from generation.json's facts: without get_max_seq_len they refuse it.
    A whole prompt of up to the context goes in one call (the sequence is dynamic), positions as cache_position."""
    return {
        "get_max_seq_len": described["context_length"],
        "get_max_context_len": described["context_length"],
        "use_kv_cache": True,
        "enable_dynamic_shape": True,
        "use_sdpa_with_kv_cache": False,
        "get_vocab_size": int(described["vocab_size"]),
        "get_eos_ids": [int(e) for e in described["eos_token_ids"]],
        **({"get_bos_id": int(bos)} if bos is not None else {}),
    }


def _lower_with_the_fastest_attention(
    model: Any, context: int, metadata: dict[str, Any], custom_sdpa: bool
) -> tuple[bytes, str]:
    """The .pte bytes, with ExecuTorch's custom_sdpa as the attention where asked, the model's attention is plain
    causal attention and it exports, else transformers' own; and which attention it has, and why."""
    why = fits(model.config, context) if custom_sdpa else "--no-custom-sdpa"
    if why is None:
        default = model.config._attn_implementation
        use_custom_sdpa(model)
        try:
            return _lower(model, context, metadata), f"{KERNEL} over the positions in use"
        except (UnsupportedOpError, ConversionError) as e:
            why = f"{KERNEL} did not export ({first_line(e)})"
            model.set_attn_implementation(default)
    return _lower(model, context, metadata), f"transformers' attention over the whole cache: {why}"


def _lower(model: Any, context: int, metadata: dict[str, Any]) -> bytes:
    """The model with a static cache of `context` positions, exported and lowered to XNNPACK, with the runners'
    metadata as constant methods: the .pte bytes."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
    from transformers.integrations.executorch import TorchExportableModuleForDecoderOnlyLM

    model.generation_config.cache_implementation = "static"
    sequence = torch.export.Dim("sequence", max=context)  # a whole prompt in one call, or one new token
    try:
        exportable = TorchExportableModuleForDecoderOnlyLM(model, batch_size=1, max_cache_len=context)
        exported = exportable.export(
            input_ids=torch.tensor([[1, 1]]),
            cache_position=torch.tensor([0, 1]),
            dynamic_shapes={"input_ids": {1: sequence}, "cache_position": {0: sequence}},
        )
    except Exception as e:  # an architecture without a static cache, an op torch.export cannot trace
        raise UnsupportedOpError(
            f"{type(model).__name__} does not export with a static key/value cache: {first_line(e)}",
            hint="Export it to onnx-fp32 or onnx-int8-dynamic (one forward pass, no cache), or to ort-genai-*.",
        ) from None
    try:
        edge = to_edge_transform_and_lower(
            exported,
            partitioner=[XnnpackPartitioner()],
            compile_config=EdgeCompileConfig(_check_ir_validity=False),
            constant_methods=metadata,
        )
        return edge.to_executorch().buffer
    except Exception as e:
        raise ConversionError(f"ExecuTorch could not lower {type(model).__name__}: {first_line(e)}") from None


def _describe(config: Any, context: int) -> dict[str, Any]:
    """generation.json: what a runner needs besides the program (context, end ids, vocabulary, cache size)."""
    described = generation_json(config, context, 4)  # an fp32 cache
    return {**described, "prefill": "whole"}  # the program takes a whole prompt in one call (a free sequence)


def generate_greedy(torch: Any, method: Any, prompt: list[int], new_tokens: int) -> list[int]:
    """`new_tokens` greedy tokens after `prompt` through the program's cache (end of text does not stop it)."""
    logits = positions(torch, method, prompt, 0)[-1]  # the whole prompt in one call
    out: list[int] = []
    for position in range(len(prompt), len(prompt) + new_tokens):
        out.append(int(logits.argmax()))
        if len(out) < new_tokens:
            logits = step(torch, method, out[-1], position)
    return out

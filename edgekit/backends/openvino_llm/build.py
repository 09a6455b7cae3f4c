"""Hugging Face causal-LM folder -> OpenVINO LLM folder: the model converted by OpenVINO's PyTorch frontend with its
key/value cache made state (edgekit.backends.openvino_llm.stateful), its weights compressed by NNCF (int8, or int4
in groups with the embedding table and head in int8), the tokenizer converted by openvino-tokenizers; proved by
greedy generation through OpenVINO GenAI's LLMPipeline against the source (edgekit.backends.llm)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.llm import GENERATION_JSON, check_generation, generation_json, hf_causal_lm
from edgekit.backends.openvino.stack import import_stack
from edgekit.backends.openvino_llm.generation_loader import greedy, load
from edgekit.backends.openvino_llm.options import OpenVINOLLMOptions
from edgekit.backends.openvino_llm.stateful import convert
from edgekit.backends.openvino_llm.worker_loader import MODEL
from edgekit.catalog.loader import get_target
from edgekit.data import TOKENIZER_FILES
from edgekit.errors import UnsupportedOpError, first_line
from edgekit.quiet import quiet

CACHE_BYTES = {"f32": 4, "f16": 2, "u8": 1}  # per cached value (u8 also keeps a scale and zero point per token)


def build(ctx: StepContext) -> StepNotes:
    folder = hf_causal_lm(ctx.model, "OpenVINO LLM")
    options = ctx.options
    assert isinstance(options, OpenVINOLLMOptions)  # the registry resolved this backend's own model
    ov = import_stack("openvino", "Exporting a causal LM to OpenVINO")
    model = ctx.model.obj.model.eval()
    try:
        # the trace notes the branches it fixes; the generation check below proves the traced model
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = convert(model)
    except Exception as e:  # an op the frontend cannot convert, a model the flat cache does not fit
        raise UnsupportedOpError(
            f"OpenVINO cannot convert {type(model).__name__} with its key/value cache: {first_line(e, 400)}",
            hint="Export it to openvino-fp32 (one forward pass, no cache) or to ort-genai-*.",
        ) from None
    precision = get_target(ctx.recipe.target).precision  # fp32, int8 or int4: all but fp32 weight-only
    details: dict[str, Any] = {"cache": "stateful"}
    if precision != "fp32":
        details.update(_compress(converted, precision, options))
    kv_cache = options.kv_cache if options.kv_cache != "auto" else "f32" if precision == "fp32" else "u8"
    converted.set_rt_info(kv_cache, ["runtime_options", "KV_CACHE_PRECISION"])  # read by OpenVINO when compiling
    described = _describe(model.config, kv_cache, "f32" if precision == "fp32" else None)
    own = f"{ov.Core().get_property('CPU', 'INFERENCE_PRECISION_HINT')} (the CPU's own choice here)"
    details.update(kv_cache=kv_cache, inference_precision=described["inference_precision"] or own)
    ctx.out.mkdir(parents=True)
    ov.save_model(converted, str(ctx.out / MODEL), compress_to_fp16=False)
    _tokenizer(ctx, folder, ov)
    (ctx.out / GENERATION_JSON).write_text(json.dumps(described, indent=2) + "\n")
    with quiet():
        loaded = load(str(ctx.out), 0)
    details["generation"] = check_generation(
        ctx, lambda prompt, n: generate_greedy(loaded, prompt, n), options.prompts, options.new_tokens
    )
    return StepNotes(details, applied="weight-only" if precision != "fp32" else None)


def _compress(model: Any, precision: str, options: OpenVINOLLMOptions) -> dict[str, Any]:
    """NNCF's data-free weight compression, in place: int8 per channel, or int4 in groups (the embedding table
    and the head stay int8, as NNCF does by default)."""
    nncf = import_stack("nncf", "Compressing an LLM's weights")
    if precision == "int8":
        with quiet():
            nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        return {"weights": "int8 per channel (asymmetric)"}
    mode = nncf.CompressWeightsMode.INT4_SYM if options.symmetric else nncf.CompressWeightsMode.INT4_ASYM
    with quiet():
        nncf.compress_weights(model, mode=mode, group_size=options.group_size, ratio=options.ratio)
    return {
        "weights": f"int4 in groups of {options.group_size} ({'symmetric' if options.symmetric else 'asymmetric'}), "
        "embedding table and head int8",
        "group_size": options.group_size,
        "ratio": options.ratio,
    }


def _tokenizer(ctx: StepContext, folder: Path, ov: Any) -> None:
    """The tokenizer beside the model twice: as OpenVINO models (what LLMPipeline tokenizes and detokenizes with)
    and as the Hugging Face files, with the config and generation config the pipeline reads."""
    from openvino_tokenizers import convert_tokenizer
    from transformers import AutoTokenizer

    tokenizer_dir = ctx.model.tokenizer_dir
    assert tokenizer_dir is not None  # hf_causal_lm refused a folder without one
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    try:
        with quiet():
            encoder, decoder = convert_tokenizer(tokenizer, with_detokenizer=True)
    except Exception as e:  # a tokenizer type openvino-tokenizers does not convert
        raise UnsupportedOpError(
            f"openvino-tokenizers cannot convert the {type(tokenizer).__name__} of {folder}: {first_line(e)}",
            hint="OpenVINO GenAI's pipeline tokenizes in OpenVINO; ort-genai-* and executorch-llm-* keep the "
            "Hugging Face tokenizer.",
        ) from None
    ov.save_model(encoder, str(ctx.out / "openvino_tokenizer.xml"))
    ov.save_model(decoder, str(ctx.out / "openvino_detokenizer.xml"))
    for name in (*TOKENIZER_FILES, "config.json", "generation_config.json"):
        source = (tokenizer_dir if name in TOKENIZER_FILES else folder) / name
        if source.is_file():
            shutil.copy(source, ctx.out / name)


def _describe(config: Any, kv_cache: str, inference_precision: str | None) -> dict[str, Any]:
    """generation.json: what a runner needs besides the model (context, end ids, vocabulary, cache size, the
    float precision the export computes in)."""
    context = int(getattr(config, "max_position_embeddings", 0)) or None
    described = generation_json(config, context, CACHE_BYTES[kv_cache])
    return {**described, "kv_cache_precision": kv_cache, "inference_precision": inference_precision}


def generate_greedy(loaded: Any, prompt: list[int], new_tokens: int) -> list[int]:
    """`new_tokens` greedy tokens after `prompt` from OpenVINO GenAI's pipeline (end of text does not stop it)."""
    genai, pipeline = loaded
    return [int(t) for t in pipeline.generate(*greedy(genai, prompt, new_tokens)).tokens[0]]

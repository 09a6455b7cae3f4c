"""A Hugging Face causal-LM folder written as a GGUF file (llama.cpp's format) with the `gguf` package: the
family's hyperparameters as GGUF keys, each weight under llama.cpp's tensor name (the `gguf` package's map),
the tokenizer's vocabulary, and the 2-D weights in f32 or f16 (norms and biases in f32, as llama.cpp keeps them).

Each family's departures from the Hugging Face layout are data in FAMILIES: Llama's query and key rows are
reordered for llama.cpp's rotary embedding, which pairs neighbouring dimensions where transformers pairs the
two halves of each head; Gemma's norm weights are stored plus one (transformers adds it at run time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit._lazy import require
from edgekit.errors import UnsupportedOpError, UsageError


@dataclass(frozen=True)
class Family:
    """How one transformers architecture maps onto a llama.cpp architecture."""

    arch: str  # llama.cpp's name (general.architecture) and the gguf package's MODEL_ARCH member, lower case
    rope_pairs_neighbours: bool = False  # Llama: query/key rows reordered to llama.cpp's rotary pairing
    norm_plus_one: bool = False  # Gemma: RMSNorm weights stored as 1 + w


FAMILIES = {
    "LlamaForCausalLM": Family("llama", rope_pairs_neighbours=True),
    "MistralForCausalLM": Family("llama", rope_pairs_neighbours=True),
    "Qwen2ForCausalLM": Family("qwen2"),
    "Qwen3ForCausalLM": Family("qwen3"),
    "Phi3ForCausalLM": Family("phi3"),
    "GemmaForCausalLM": Family("gemma", norm_plus_one=True),
}


def family_of(config: dict[str, Any], folder: Path) -> Family:
    """The folder's family, or UnsupportedOpError naming the architectures this writer takes."""
    architectures = config.get("architectures") or []
    found = next((FAMILIES[a] for a in architectures if a in FAMILIES), None)
    if found is None:
        raise UnsupportedOpError(
            f"{folder} is a {', '.join(architectures) or config.get('model_type', 'unknown')} model; edgekit writes "
            f"GGUF files of {', '.join(sorted(FAMILIES))}.",
            hint="Convert other architectures with llama.cpp's convert_hf_to_gguf.py, then give the .gguf to "
            "edgekit evaluate and edgekit benchmark --generate.",
        )
    return found


def write_gguf(model: Any, folder: Path, out: Path, context: int, half: bool) -> dict[str, Any]:
    """Write the transformers causal LM `model` (loaded from `folder`, its tokenizer there) to `out` as a GGUF file
    holding `context` positions, its matrices in f16 (`half`) or f32; returns what was written, for the sidecar."""
    gguf = require("gguf", "Writing GGUF files", extra="gguf")
    config = model.config
    family = family_of({**config.to_dict(), "architectures": config.architectures or [type(model).__name__]}, folder)
    arch = getattr(gguf.MODEL_ARCH, family.arch.upper())
    heads, kv_heads = config.num_attention_heads, getattr(config, "num_key_value_heads", None)
    kv_heads = kv_heads or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer = gguf.GGUFWriter(str(out), family.arch)
    writer.add_name(folder.name)
    writer.add_context_length(context)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(int(head_dim * getattr(config, "partial_rotary_factor", 1.0)))
    writer.add_rope_freq_base(float(_rope_theta(config, folder)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if half else gguf.LlamaFileType.ALL_F32)
    vocabulary = _add_vocabulary(writer, gguf, folder, config)
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    written = 0
    for hf_name, tensor in model.state_dict().items():
        tied = hf_name == "lm_head.weight" and getattr(config, "tie_word_embeddings", False)
        if tied or hf_name.endswith("rotary_emb.inv_freq"):  # llama.cpp reads a tied head from token_embd
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UnsupportedOpError(f"{folder}'s weight {hf_name} has no GGUF name for llama.cpp's {family.arch}.")
        value = tensor.detach().float().numpy()
        value = _as_llama_cpp_holds(family, name, value, heads, kv_heads)
        writer.add_tensor(name, value.astype(np.float16 if half and value.ndim == 2 else np.float32))
        written += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"architecture": family.arch, "tensors": written, "vocabulary": vocabulary}


def _rope_theta(config: Any, folder: Path) -> float:
    """The rotary base: config.rope_theta, or (transformers 5) rope_parameters' rope_theta. A scaled rotary
    embedding (Llama 3's, LongRoPE, YaRN) is refused: this writer does not carry its settings over."""
    parameters = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    kind = parameters.get("rope_type") or parameters.get("type") or "default"
    if kind != "default":
        raise UnsupportedOpError(
            f"{folder} scales its rotary embedding ({kind}); edgekit's GGUF writer writes unscaled ones.",
            hint="Convert it with llama.cpp's convert_hf_to_gguf.py, which writes the scaling keys.",
        )
    return getattr(config, "rope_theta", None) or parameters.get("rope_theta", 10000.0)


def _as_llama_cpp_holds(family: Family, name: str, value: np.ndarray, heads: int, kv_heads: int) -> np.ndarray:
    if family.rope_pairs_neighbours and name.endswith(("attn_q.weight", "attn_k.weight")):
        return _neighbour_pairs(value, heads if "attn_q" in name else kv_heads)
    if family.norm_plus_one and name.endswith("norm.weight"):
        return value + 1.0
    return value


def _neighbour_pairs(w: np.ndarray, heads: int) -> np.ndarray:
    """Reorder each head's output rows from transformers' rotary layout (dimension i paired with i + d/2) to
    llama.cpp's (2i paired with 2i + 1): per head, the two halves interleaved."""
    rows = w.shape[0] // heads
    return w.reshape(heads, 2, rows // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _add_vocabulary(writer: Any, gguf: Any, folder: Path, config: Any) -> str:
    """The folder's tokenizer as GGUF keys: a WordPiece vocabulary (BERT's) as llama.cpp's `bert` model, a
    byte-level BPE (GPT-2's, Llama 3's, Qwen's) as its `gpt2` model with the merges; the token count padded
    to the model's vocabulary size. Other tokenizers are refused by name."""
    described = folder / "tokenizer.json"
    if not described.is_file():
        raise UsageError(f"{folder} has no tokenizer.json: a GGUF file carries the tokenizer the app generates with.")
    tokenizer = json.loads(described.read_text())
    kind = tokenizer["model"]["type"]
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    special = {t["content"]: t["id"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    vocab = {**vocab, **special}
    size = max(config.vocab_size, max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, i in vocab.items():
        if kind == "WordPiece":  # llama.cpp's WordPiece reads a word start as the phantom space, no "##"
            text = text if text in special else text[2:] if text.startswith("##") else "\u2581" + text
        tokens[i] = text
        types[i] = gguf.TokenType.CONTROL if text in special else gguf.TokenType.NORMAL
    if kind == "WordPiece":
        writer.add_tokenizer_model("bert")
    elif kind == "BPE" and _byte_level(tokenizer):
        writer.add_tokenizer_model("gpt2")
        merges = tokenizer["model"].get("merges", [])
        writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    else:
        raise UnsupportedOpError(
            f"{folder}'s tokenizer is a {kind} model{'' if kind != 'BPE' else ' without byte-level pre-tokenizing'}; "
            "edgekit writes WordPiece and byte-level BPE vocabularies into GGUF files.",
            hint="Convert it with llama.cpp's convert_hf_to_gguf.py, which knows more tokenizers.",
        )
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    for key, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                     ("pad_token_id", writer.add_pad_token_id)):  # fmt: skip
        value = getattr(config, key, None)
        value = value[0] if isinstance(value, list) else value
        if value is not None:
            add(int(value))
    writer.add_add_bos_token(False)  # token ids are given whole: nothing is added in front of them
    template = _chat_template(folder)
    if template:
        writer.add_chat_template(template)
    return "bert (WordPiece)" if kind == "WordPiece" else "gpt2 (byte-level BPE)"


def _byte_level(tokenizer: dict[str, Any]) -> bool:
    text = json.dumps(tokenizer.get("pre_tokenizer") or {})
    return "ByteLevel" in text


def _chat_template(folder: Path) -> str | None:
    config = folder / "tokenizer_config.json"
    template = json.loads(config.read_text()).get("chat_template") if config.is_file() else None
    return template if isinstance(template, str) else None

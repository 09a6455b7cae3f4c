"""Attention over the part of the static cache in use, by ExecuTorch's own LLM kernel (llama::custom_sdpa), for
transformers' models while they are exported: the standard attention reads every position of the static cache at
every step (masking the unused ones), so decode slowed with the context; custom_sdpa stops at the query's position
(causal from the first position of the call). ExecuTorch's LLM runners and its Python runtime carry the kernel."""

from __future__ import annotations

from typing import Any

NAME = "edgekit_executorch_custom_sdpa"  # the attention implementation registered with transformers
KERNEL = "llama::custom_sdpa"


def fits(config: Any, context: int) -> str | None:
    """Why the model's attention is not plain causal attention over every earlier position (a sliding window
    shorter than the context, soft-capped logits), which custom_sdpa does not compute; None when it fits."""
    window = getattr(config, "sliding_window", None)
    if window and window < context:
        return f"a sliding window of {window} positions, shorter than the context of {context}"
    if getattr(config, "attn_logit_softcapping", None):
        return "soft-capped attention logits"
    if "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        return "layers with sliding-window attention"
    return None


def use_custom_sdpa(model: Any) -> None:
    """Register the attention (once) and switch `model` to it."""
    import torch
    from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401 -- defines torch.ops.llama.custom_sdpa
    from transformers import AttentionInterface

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        """query [batch, heads, sequence, dim] and the whole key/value cache [batch, kv heads, positions, dim] in
        transformers' layout; custom_sdpa takes them with the sequence before the heads."""
        positions = kwargs.get("position_ids")
        if positions is None:
            positions = kwargs["cache_position"][None]
        start = positions[0][0].item()
        torch._check_is_size(start)
        torch._check(start < key.shape[2])
        out = torch.ops.llama.custom_sdpa(
            query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), start, None, 0.0, True, scaling
        )
        return out, None

    AttentionInterface.register(NAME, attention)
    model.set_attn_implementation(NAME)

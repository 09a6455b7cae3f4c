"""Transformer graph fusion before quantization: ONNX Runtime's transformer optimizer (Attention,
SkipLayerNormalization, BiasGelu, ...) on BERT-class encoders, so dynamic int8 runs fused QAttention.

ONNX Runtime's fuser matches the attention subgraph as Hugging Face exports used to write it. Two things of
today's stack hide it, and edgekit undoes both, neither changing what the model computes:
- transformers 5 builds the padding mask with index arithmetic (GatherND, And, Where) the fuser cannot
  read, and its SDPA attention exports without the Softmax pattern: while exporting for ONNX Runtime,
  BERT-class modules run their eager attention with the classic expanded-and-inverted mask
  (`export_patch`);
- the torch exporter's optimizer merges the mask's two Unsqueeze nodes into one: they are split again
  (`split_unsqueeze`).
A fused node loses the module scope torch wrote on the nodes it replaced; the scopes of those nodes are
carried onto it, so the per-layer fallback still finds a layer (keeping a query projection float keeps
its fused Attention float).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from edgekit.backends.base import StepNotes
from edgekit.errors import first_line

SCOPES = "pkg.torch.onnx.name_scopes"
FUSED_TYPES = ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "EmbedLayerNormalization", "FastGelu",
               "BiasGelu", "SkipSimplifiedLayerNormalization", "GemmFastGelu")  # fmt: skip


def _classic_mask(original):
    """create_bidirectional_mask for a plain 2-D padding mask, written as BERT exports used to write it;
    anything else (a 4-D mask, custom mask functions, a cache) goes to the original."""

    def mask(config, inputs_embeds, attention_mask, encoder_hidden_states=None, **kwargs):
        import torch

        plain = attention_mask is not None and attention_mask.dim() == 2 and encoder_hidden_states is None
        if not plain or any(kwargs.get(k) is not None for k in ("or_mask_function", "and_mask_function", "cache")):
            return original(config, inputs_embeds, attention_mask, encoder_hidden_states, **kwargs)
        dtype = inputs_embeds.dtype
        batch, keys = attention_mask.shape
        expanded = attention_mask[:, None, None, :].expand(batch, 1, inputs_embeds.shape[1], keys).to(dtype)
        inverted = 1.0 - expanded
        return inverted.masked_fill(inverted.to(torch.bool), torch.finfo(dtype).min)

    return mask


def bert_class_modules(root) -> list:
    """The Hugging Face encoder modules inside a torch model whose modeling code builds a bidirectional mask
    (BERT, RoBERTa, XLM-R, ELECTRA, MiniLM...), outermost first."""
    found: list = []
    if not hasattr(root, "modules"):  # an ExportedProgram: its graph is already fixed
        return found
    for module in root.modules():
        config = getattr(module, "config", None)
        code = sys.modules.get(type(module).__module__)
        if (
            config is not None
            and hasattr(module, "set_attn_implementation")
            and not getattr(config, "is_decoder", False)
            and hasattr(code, "create_bidirectional_mask")
            and not any(module in list(f.modules()) for f in found)
        ):
            found.append(module)
    return found


@contextlib.contextmanager
def export_patch(root) -> Iterator[list[str]]:
    """While exporting: eager attention and the classic mask in every BERT-class module; yields their kinds."""
    modules = bert_class_modules(root)
    saved = []
    try:
        for module in modules:
            code = sys.modules[type(module).__module__]
            original = getattr(code, "create_bidirectional_mask")  # noqa: B009 (a module attribute mypy cannot see)
            saved.append((module, module.config._attn_implementation, code, original))
            module.set_attn_implementation("eager")
            setattr(code, "create_bidirectional_mask", _classic_mask(original))  # noqa: B010
        yield [m.config.model_type for m in modules]
    finally:
        for module, implementation, code, original in reversed(saved):
            setattr(code, "create_bidirectional_mask", original)  # noqa: B010
            module.set_attn_implementation(implementation)


def split_unsqueeze(model) -> int:
    """Rewrite each Unsqueeze with several constant axes as a chain of one-axis Unsqueeze nodes, in place."""
    import numpy as np
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    nodes, split = [], 0
    for node in model.graph.node:
        axes = (
            numpy_helper.to_array(inits[node.input[1]]).tolist()
            if len(node.input) > 1 and node.input[1] in inits
            else []
        )
        if node.op_type != "Unsqueeze" or len(axes) < 2 or min(axes) < 0:
            nodes.append(node)
            continue
        current = node.input[0]
        for k, axis in enumerate(sorted(axes)):
            name = f"{node.name}_axis{axis}"
            model.graph.initializer.append(numpy_helper.from_array(np.array([axis], np.int64), f"{name}_axes"))
            out = node.output[0] if k == len(axes) - 1 else f"{name}_out"
            step = helper.make_node("Unsqueeze", [current, f"{name}_axes"], [out], name=name)
            step.metadata_props.extend(node.metadata_props)
            nodes.append(step)
            current = out
        split += 1
    if split:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return split


def _carry_scopes(before, after) -> None:
    """Give every node the fuser created the module scopes of the original nodes it replaced: those between
    its inputs and its outputs in the original graph."""
    producer = {o: n for n in before.graph.node for o in n.output}
    kept = {n.name for n in before.graph.node}
    for node in after.graph.node:
        if node.name in kept or any(p.key == SCOPES for p in node.metadata_props):
            continue
        stop, seen, scopes = set(node.input), set(), []
        stack = [producer[o] for o in node.output if o in producer]
        while stack:
            n = stack.pop()
            if n.name in seen:
                continue
            seen.add(n.name)
            scopes += [p.value for p in n.metadata_props if p.key == SCOPES]
            stack += [producer[i] for i in n.input if i in producer and i not in stop]
        if scopes:
            entry = node.metadata_props.add()
            entry.key, entry.value = SCOPES, " ".join(dict.fromkeys(scopes))


def _optimized(model, heads: int = 0, hidden: int = 0, projections_outside: bool = False):
    """ONNX Runtime's transformer optimizer on `model` (in place); heads and hidden size 0: read from the graph.
    opt_level 0: the fusions only, no session rewrite."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    from edgekit.quiet import quiet

    options = FusionOptions("bert")
    options.use_multi_head_attention = projections_outside
    with quiet():  # the optimizer logs each fusion pass
        return optimize_model(
            model, model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0, optimization_options=options
        )


def _attention_size(model) -> tuple[int, int]:
    """Heads and hidden size as the optimizer's Attention fusion reads them from the graph ((0, 0): none fused).
    Its MultiHeadAttention fusion cannot read them itself."""
    import copy

    from onnx import helper

    fused = _optimized(copy.deepcopy(model)).model
    inits = {i.name: i for i in fused.graph.initializer}
    for node in fused.graph.node:
        if node.op_type == "Attention" and node.input[1] in inits:
            heads = next(helper.get_attribute_value(a) for a in node.attribute if a.name == "num_heads")
            return int(heads), int(inits[node.input[1]].dims[0])
    return 0, 0


def fuse(model, projections_outside: bool = False, plain_layernorm: bool = False) -> tuple[Any, dict[str, int], int]:
    """The fused model, the count of each fused op type (empty when nothing matched) and how many
    SkipLayerNormalization nodes were written back as Add + LayerNormalization (`plain_layernorm`). With
    `projections_outside`, attention fuses into MultiHeadAttention, which takes the projected query, key and
    value: their MatMuls stay in the graph for static int8 to quantize (a fused Attention holds them inside)."""
    import copy

    from onnx import helper

    from edgekit.backends.onnxruntime.layernorm import unfuse_skip_layernorm

    original = copy.deepcopy(model)
    split_unsqueeze(model)
    size = _attention_size(model) if projections_outside else (0, 0)
    optimizer = _optimized(model, *size, projections_outside=projections_outside and size != (0, 0))
    counts = {k: v for k, v in optimizer.get_fused_operator_statistics().items() if v and k in FUSED_TYPES}
    fused = optimizer.model
    domains = {n.domain for n in fused.graph.node if n.domain} - {o.domain for o in fused.opset_import}
    fused.opset_import.extend(helper.make_opsetid(d, 1) for d in sorted(domains))  # com.microsoft
    _carry_scopes(original, fused)
    unfused = unfuse_skip_layernorm(fused) if plain_layernorm else 0
    return _typed(fused), counts, unfused


def _typed(model):
    """The model with every tensor's type written out: ONNX's own shape inference cannot follow contrib ops
    (SkipLayerNormalization...), and ONNX Runtime's quantizer needs the types of what comes after them."""
    from edgekit.backends.onnxruntime.shapes import symbolic_shapes

    try:
        return symbolic_shapes(model)
    except Exception:  # a graph it cannot follow stays as the fuser wrote it
        return model


def optimize_step(ctx) -> StepNotes:
    """The exporter's graph-optimization step: fuse a transformer encoder; ctx.out is written only when
    something fused, and the notes are empty (no route record) when the graph is no transformer. For static
    int8 attention fuses into MultiHeadAttention with the projections outside: ONNX Runtime's QDQ quantizer
    has no form for the fused Attention, whose projections would then stay float."""
    import onnx

    if not ctx.options.fuse:  # --no-fuse
        return StepNotes()
    model = onnx.load(str(ctx.src_file))
    present = {n.op_type for n in model.graph.node}
    if not {"Softmax", "MatMul"} <= present or not present & {"LayerNormalization", "ReduceMean"}:
        return StepNotes()
    static = ctx.recipe.quantization == "static"
    # fp16 files keep the fused node: the rewrite is measured on float32 and int8 files only
    plain_layernorm = ctx.options.unfuse_layernorm and ctx.recipe.quantization != "fp16"
    try:
        fused, counts, unfused = fuse(model, static, plain_layernorm)
    except Exception as e:  # the optimizer's pattern code meets a graph it does not expect (ModernBERT's
        # LayerNormalization without a bias): the file stays as exported, unfused and correct
        return StepNotes(
            {
                "fused": {},
                "skipped": f"ONNX Runtime's transformer optimizer failed ({type(e).__name__}: {first_line(e)})",
            }
        )
    if not counts:
        return StepNotes({"fused": {}, "skipped": "ONNX Runtime's transformer optimizer matched no pattern"})
    onnx.save(fused, str(ctx.out))
    notes = {"method": "onnxruntime.transformers.optimizer (bert)", "fused": counts}
    if "MultiHeadAttention" in counts:
        notes["attention"] = "MultiHeadAttention: the query, key and value projections stay MatMuls, quantized"
    if unfused:
        notes["layernorm"] = (
            f"{unfused} SkipLayerNormalization written as Add + LayerNormalization (ONNX Runtime's CPU kernel "
            "for the fused op is the slower)"
        )
    return StepNotes(notes)

"""A Hugging Face causal LM as a stateful OpenVINO model: traced with its key/value cache as flat inputs and
outputs, then the cache moved inside the model as state (ReadValue/Assign), with the `beam_idx` input that
OpenVINO GenAI's pipelines reorder the cache by. This is the model layout openvino_genai.LLMPipeline runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.backends.llm import cache_shape

INPUTS = ("input_ids", "attention_mask", "position_ids")


def cache_names(layers: int) -> tuple[list[str], list[str]]:
    """The cache's input and output names, keys then values per layer (the names OpenVINO GenAI expects)."""
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return past, [name.replace("past_key_values", "present") for name in past]


def _with_flat_cache(model: Any) -> Any:
    """The model as a module of plain tensors: ids, mask, positions and every layer's past keys and values in;
    logits and every layer's keys and values (past and new together) out."""
    import torch
    from transformers import DynamicCache

    layers = model.config.num_hidden_layers

    class FlatCache(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids, *past):
            cache = DynamicCache(config=self.model.config)
            for i, layer in enumerate(cache.layers[:layers]):
                # set the past directly: DynamicCache.update would concatenate it to an empty 1-D tensor, which
                # OpenVINO's frontend cannot type
                layer.lazy_initialization(past[2 * i], past[2 * i + 1])
                layer.keys, layer.values = past[2 * i], past[2 * i + 1]
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache,
                use_cache=True,
            )
            present = [t for layer in out.past_key_values.layers[:layers] for t in (layer.keys, layer.values)]
            return (out.logits, *present)

    return FlatCache().eval()


def convert(model: Any) -> Any:
    """The causal LM as a stateful ov.Model (inputs: input_ids, attention_mask, position_ids, beam_idx; output:
    logits; the cache as state)."""
    import openvino as ov
    import torch

    config = model.config
    layers = config.num_hidden_layers
    heads, head_dim = cache_shape(config)
    tokens, past_length = 3, 2  # a traced step with a past: the general case (the first step has an empty past)
    example = (
        torch.ones(1, tokens, dtype=torch.long),
        torch.ones(1, past_length + tokens, dtype=torch.long),
        torch.arange(past_length, past_length + tokens)[None],
        *[torch.zeros(1, heads, past_length, head_dim) for _ in range(2 * layers)],
    )
    with torch.no_grad():
        converted = ov.convert_model(_with_flat_cache(model), example_input=example)
    past, present = cache_names(layers)
    for port, name in zip(converted.inputs, [*INPUTS, *past]):
        port.get_tensor().set_names({name})
    for parameter in converted.get_parameters()[len(INPUTS) :]:  # the trace leaves the head count free
        parameter.set_partial_shape(ov.PartialShape([-1, heads, -1, head_dim]))
    converted.validate_nodes_and_infer_types()
    for port, name in zip(converted.outputs, ["logits", *present]):
        port.get_tensor().set_names({name})
    _make_stateful(converted, dict(zip(past, present)))
    return converted


def _make_stateful(model: Any, pairs: dict[str, str]) -> None:
    """Past inputs and present outputs become state; each past is first gathered by `beam_idx` (the pipelines
    reorder the cache by it) and starts as zeros of the batch's size with no positions."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    beam = ops.parameter([-1], ov.Type.i32, name="beam_idx")
    beam.output(0).get_tensor().set_names({"beam_idx"})
    for parameter in model.get_parameters():
        if parameter.get_output_tensor(0).get_any_name() in pairs:
            consumers = list(parameter.output(0).get_target_inputs())
            reordered = ops.gather(parameter, beam, ops.constant(0))
            for consumer in consumers:
                consumer.replace_source_output(reordered.output(0))
    model.add_parameters([beam])
    apply_make_stateful_transformation(model, pairs)
    ids = next(p for p in model.get_parameters() if p.get_output_tensor(0).get_any_name() == "input_ids")
    batch = ops.gather(ops.shape_of(ids, output_type="i64"), ops.constant([0]), ops.constant(0))
    for op in model.get_ops():
        if op.get_type_name() == "ReadValue":
            shape = op.get_output_partial_shape(0)
            rest = [shape[k].get_length() if shape[k].is_static else 0 for k in range(1, shape.rank.get_length())]
            dims = ops.concat([batch, ops.constant(np.array(rest, dtype=np.int64))], 0)
            op.set_arguments([ops.broadcast(ops.constant(0.0, dtype=op.get_output_element_type(0)), dims)])
    model.validate_nodes_and_infer_types()

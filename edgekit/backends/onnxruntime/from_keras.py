"""Keras / TensorFlow -> ONNX through tf2onnx, from the traced tf.function the loader built."""

from __future__ import annotations

import logging

from edgekit.backends.base import StepContext, StepNotes
from edgekit.errors import ConversionError, first_line
from edgekit.quiet import quiet

OPSET = 17


def convert(ctx: StepContext) -> StepNotes:
    import tensorflow as tf
    import tf2onnx

    model = ctx.model
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    specs = [
        tf.TensorSpec([d if isinstance(d, int) else None for d in s.shape], s.dtype, name=s.name)
        for s in model.signature.inputs
    ]
    output_names = [o.name for o in model.signature.outputs]
    try:
        with quiet():
            proto, _ = tf2onnx.convert.from_function(model.obj, input_signature=specs, opset=OPSET)
    except Exception as e:
        raise ConversionError(f"tf2onnx could not convert {model.source}: {first_line(e, 400)}") from None
    # tf2onnx names outputs after TF tensors; rename them to the signature's names.
    renames = dict(zip([o.name for o in proto.graph.output], output_names))
    for node in proto.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]
    for out in proto.graph.output:
        out.name = renames.get(out.name, out.name)
    for i, inp in enumerate(proto.graph.input):
        if i < len(specs):
            old = inp.name
            inp.name = model.signature.inputs[i].name
            for node in proto.graph.node:
                node.input[:] = [inp.name if x == old else x for x in node.input]
    constants = _captured_constants(proto, model.obj.get_concrete_function(*specs))
    ctx.out.write_bytes(proto.SerializeToString())
    return StepNotes(
        {
            "exporter": "tf2onnx.from_function",
            "opset": OPSET,
            **({"captured_constants": constants} if constants else {}),
        }
    )


def _captured_constants(proto, function) -> list[str]:
    """Make the graph inputs tf2onnx left for tensors the function captured (a Keras Normalization layer's mean
    and variance in EfficientNet) initializers holding their values; returns their names. Left as inputs, every
    runtime would ask the app to feed them."""
    from onnx import numpy_helper

    captured = {inner.name: outer for outer, inner in function.graph.captures if hasattr(outer, "numpy")}
    found = [i for i in proto.graph.input if i.name in captured]
    for graph_input in found:
        proto.graph.initializer.append(numpy_helper.from_array(captured[graph_input.name].numpy(), graph_input.name))
        proto.graph.input.remove(graph_input)
    return [i.name for i in found]

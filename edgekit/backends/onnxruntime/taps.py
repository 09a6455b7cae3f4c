"""An .onnx file run in ONNX Runtime with every weighted node's input and output made a graph output.

A weighted node is MatMul/Gemm/Conv (or MatMulInteger/ConvInteger of dynamic int8) with a constant weight;
its weight is read through DequantizeLinear and Transpose. Its output is followed through what belongs to
the layer (bias Add, BatchNormalization, the dynamic scale's Mul, its output Q/DQ pair); its input is what it
reads (a Q/DQ pair's output, the int8 tensor it shares with the layer before), or the float tensor before a
dynamic quantization of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgekit.backends.taps import LayerTaps, TapLayer, quantization_words
from edgekit.errors import ModelLoadError

_WEIGHTED = {"MatMul", "Gemm", "Conv", "MatMulInteger", "ConvInteger", "FusedConv", "FusedMatMul",
             "MatMulIntegerToFloat"}  # fmt: skip
# integer ops that take their weight's scale and zero point as inputs (indexes: weight, scale, zero point)
_SCALED_WEIGHT = {"MatMulIntegerToFloat": (1, 3, 5), "QAttention": (1, 4, 7)}
_PART_OF_LAYER = {"Add", "BatchNormalization", "Cast", "Mul", "QuantizeLinear", "DequantizeLinear"}
# ONNX Runtime's fused ops that add a MatMul's bias themselves (at this input): the MatMul's output has none
_ADDS_BIAS = {"SkipLayerNormalization": 4, "SkipSimplifiedLayerNormalization": 3, "BiasGelu": 1, "FastGelu": 1,
              "BiasAdd": 1}  # fmt: skip
_PACKED = {"Attention", "QAttention"}  # one weight holding the query, key and value projections side by side


class OnnxTaps(LayerTaps):
    runtime = "onnxruntime"
    reducible = True  # edgekit diff --reduce can cut pieces of it (extract, output_chain, nodes)

    def __init__(self, model: Any) -> None:
        """`model`: a path, or an onnx.ModelProto (an ONNX source)."""
        import onnx

        if not isinstance(model, onnx.ModelProto):
            try:
                model = onnx.load(str(model))
            except Exception as e:
                raise ModelLoadError(f"{model} is not a readable ONNX file ({type(e).__name__}).") from None
        self.proto = model
        graph = model.graph
        self.consts = {i.name: i for i in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.consts[node.output[0]] = node.attribute[0].t
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list[Any]] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.graph_outputs = {o.name for o in graph.output}
        self.nodes: dict[str, Any] = {}  # layer name -> its weighted node
        self._layers = [layer for n in graph.node for layer in self._layers_of(n)]
        self.session: Any = None

    @property
    def layers(self) -> list[TapLayer]:
        return self._layers

    def _const(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        t = self.consts.get(name)
        return None if t is None else numpy_helper.to_array(t)

    def _weight(self, name: str) -> tuple[np.ndarray, str] | None:
        """The float value of a constant weight input, and how the file stores it."""
        value = self._const(name)
        if value is not None:
            return value.astype(np.float32), str(value.dtype)
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "DequantizeLinear":
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            weight, scale, zero = [*node.input, "", ""][:3]
            return self._dequantized(weight, scale, zero, axis)
        if node.op_type == "Transpose":
            inner = self._weight(node.input[0])
            if inner is None:
                return None
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            return np.transpose(inner[0], perm), inner[1]
        if node.op_type == "Cast":
            return self._weight(node.input[0])
        return None

    def _dequantized(self, weight: str, scale: str, zero: str, axis: int) -> tuple[np.ndarray, str] | None:
        """An integer constant weight in float, its scale (and zero point) per tensor or along `axis`."""
        q, s = self._const(weight), self._const(scale) if scale else None
        if q is None or s is None:
            return None
        z = self._const(zero) if zero else None
        z = np.zeros_like(s) if z is None else z
        shape = [-1 if d == axis % q.ndim else 1 for d in range(q.ndim)] if s.ndim else []
        value = (q.astype(np.float32) - np.reshape(z, shape)) * np.reshape(s, shape)
        return value.astype(np.float32), f"{q.dtype} {'per-channel' if s.size > 1 else 'per-tensor'}"

    def _node_weight(self, node) -> tuple[np.ndarray, str] | None:
        """The float value of a weighted node's constant weight (an integer op's through its own scale)."""
        at = _SCALED_WEIGHT.get(node.op_type)
        if at is None:
            return self._weight(node.input[1])
        weight, scale, zero = (node.input[i] if i < len(node.input) else "" for i in at)
        return self._dequantized(weight, scale, zero, -1)  # [in, out]: a scale per output column

    def _layers_of(self, node) -> list[TapLayer]:
        if node.op_type in _PACKED:
            return self._packed(node)
        layer = self._layer(node)
        return [] if layer is None else [layer]

    def _packed(self, node) -> list[TapLayer]:
        """A fused Attention node's three projections: matched by their slice of its weight, not comparable
        (the node exposes no projection's output: their tensors name no output)."""
        found = self._node_weight(node) if len(node.input) > 1 else None
        if found is None or found[0].ndim != 2 or found[0].shape[1] % 3:
            return []
        weight, stored = found
        name = node.name or node.output[0]
        quantization = quantization_words(stored)
        data_in = self._layer_input(node.input[0])
        return [
            TapLayer(f"{name}/{part}", f"{node.op_type} ({part})", w, 1, (data_in, ""), quantization)
            for part, w in zip(("query", "key", "value"), np.split(weight, 3, axis=1))
        ]

    def _layer(self, node) -> TapLayer | None:
        if node.op_type not in _WEIGHTED or len(node.input) < 2:
            return None
        found = self._node_weight(node)
        if found is None:
            return None
        weight, stored = found
        if weight.ndim < 2:
            return None
        attrs = {a.name: a for a in node.attribute}
        if node.op_type in ("MatMul", "MatMulInteger", "FusedMatMul", "MatMulIntegerToFloat"):
            out_axis = weight.ndim - 1
        elif node.op_type == "Gemm":
            out_axis = 0 if "transB" in attrs and attrs["transB"].i else 1
        else:
            out_axis = 0
        data_in = self._layer_input(node.input[0])
        reader = self.producer.get(node.input[0])
        quantized_input = reader is not None and reader.op_type in ("DequantizeLinear", "QuantizeLinear")
        if node.op_type.endswith("Integer"):
            quantization = quantization_words(stored, "int8 dynamic")
        else:
            quantization = quantization_words(stored, "int8" if quantized_input else "float")
        name = node.name or node.output[0]
        out, activation = self.output_chain(node)[-1]
        self.nodes[name] = node
        users = self.consumers.get(out, [])
        fused = users[0] if len(users) == 1 else None
        at = _ADDS_BIAS.get(fused.op_type, -1) if fused is not None else -1
        fused_bias = fused is not None and 0 <= at < len(fused.input) and bool(fused.input[at])
        return TapLayer(
            name,
            node.op_type,
            weight,
            out_axis,
            (data_in, out),
            quantization,
            activation,
            bias_in_output=not fused_bias,
            channel_axis=1 if "Conv" in node.op_type else -1,
        )

    def _layer_input(self, name: str) -> str:
        """What the layer reads, in float: a Q/DQ pair's output (the int8 tensor it shares with the layer
        before, as a TFLite file does), or the float tensor before a quantization of its own (dynamic, or the
        QuantizeLinear an integer op reads directly)."""
        node = self.producer.get(name)
        if node is not None and node.op_type in ("DynamicQuantizeLinear", "QuantizeLinear"):
            return node.input[0]
        return name

    def output_chain(self, node) -> list[tuple[str, str | None]]:
        """The tensors from the weighted node's output to the layer's last, each with RELU where an int8 range
        starting at 0 lies before it (the quantizer folded a Relu into a QuantizeLinear: the file computes
        max(x, 0) by saturating)."""
        out, activation = node.output[0], None
        chain: list[tuple[str, str | None]] = [(out, activation)]
        while out not in self.graph_outputs:
            users = self.consumers.get(out, [])
            if len(users) != 1 or users[0].op_type not in _PART_OF_LAYER:
                break
            user = users[0]
            others = [i for i in user.input[1:] if i and i != out]
            if user.op_type == "Add" and not all(self._weight(i) is not None for i in others):
                break  # a residual connection, not a bias
            if user.op_type == "Mul" and not node.op_type.endswith("Integer"):
                break
            if user.op_type == "QuantizeLinear" and self._starts_at_zero(user):
                activation = "RELU"
            out = user.output[0]
            chain.append((out, activation))
        return chain

    def _starts_at_zero(self, quantize) -> bool:
        zero = self._const(quantize.input[2]) if len(quantize.input) > 2 and quantize.input[2] else None
        return zero is not None and zero.size == 1 and int(zero) == np.iinfo(zero.dtype).min

    def extract(self, inputs: list[str], outputs: list[str]) -> Any:
        """The part of the graph between `inputs` and `outputs` as a standalone model (for --reduce)."""
        import onnx
        from onnx.utils import Extractor

        model = onnx.shape_inference.infer_shapes(self.proto)
        known = {v.name for v in (*model.graph.value_info, *model.graph.input, *model.graph.output)}
        for name in (*inputs, *outputs):
            if name not in known:
                model.graph.value_info.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        return Extractor(model).extract_model(inputs, outputs)

    def __enter__(self) -> OnnxTaps:
        import onnx

        from edgekit.backends.onnxruntime.runner import OnnxRuntimeRunner

        exposed = onnx.ModelProto()
        exposed.CopyFrom(self.proto)
        have = {o.name for o in exposed.graph.output}
        for name in dict.fromkeys(t for layer in self._layers for t in layer.tensors):
            if name and name not in have and name not in self.consts:
                exposed.graph.output.append(onnx.ValueInfoProto(name=name))
        self.session = OnnxRuntimeRunner(exposed.SerializeToString())
        self.session.activate()
        return self

    def __exit__(self, *exc) -> None:
        if self.session is not None:
            self.session.deactivate()
            self.session = None

    def input_names(self) -> list[str]:
        return [s.name for s in self.session.input_specs()]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        values = self.session.infer({k: feed[k] for k in self.input_names()})
        got = lambda name: np.asarray(values[name] if name in values else feed[name], dtype=np.float32)
        return {
            layer.name: (got(layer.tensors[0]), got(layer.tensors[1])) for layer in self._layers if layer.tensors[1]
        }

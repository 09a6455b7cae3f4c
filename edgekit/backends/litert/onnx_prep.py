"""Make an ONNX file exported elsewhere convertible by onnx2tf: static input dims, shapes inferred, shape-only
subgraphs folded, Erf GELUs fused into Gelu, and no graph output left as a bare constant.

onnx2tf (run with not_use_onnxsim) applies `overwrite_input_shape` to its TF placeholders only: the ONNX graph it
walks keeps symbolic dims ('batch', 'sequence') and runtime Shape->Gather->Concat chains, so ops such as a bool
Expand or Where get tensors of unknown rank and fail. Folding here, before onnx2tf, removes those chains.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgekit.errors import UnsupportedOpError, UsageError
from edgekit.sources.onnx_source import onnx_opset


def prepare_for_onnx2tf(onnx_path: Path, shapes: dict[str, tuple[int, ...]], out_path: Path) -> dict[str, Any]:
    """Write to `out_path` a copy of `onnx_path` with the named inputs' dims fixed to `shapes` (others left alone),
    shapes inferred, constants (shape-only subgraphs included) folded, Erf GELUs fused and constant outputs kept
    computed from an input; returns what it did, for the export record."""
    import onnx
    from polygraphy.backend.onnx import fold_constants, save_onnx
    from polygraphy.logger import G_LOGGER

    model = onnx.load(str(onnx_path))
    graph = model.graph
    nodes_before = len(graph.node)
    fixed = _fix_input_dims(graph, shapes)
    # stale symbolic shapes on intermediates and outputs would win over the static ones inference finds
    del graph.value_info[:]
    for out in graph.output:
        out.type.tensor_type.ClearField("shape")
    for _ in range(_PASSES):  # a folded shape can make a later Shape's input static: repeat until none is left
        model, shapes_folded = _fold_static_shapes(model)
        with G_LOGGER.verbosity(G_LOGGER.ERROR):  # its per-pass progress lines
            # fold_shapes=False: onnx-graphsurgeon folds Shape ignoring its start/end attributes (opset 15+,
            # which the dynamo exporter uses), giving a wrong constant; _fold_static_shapes does those
            model = fold_constants(model, fold_shapes=False, error_ok=False)
        if not shapes_folded:
            break
    folded = nodes_before - len(model.graph.node)
    model, gelus = _fuse_erf_gelu(model)
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    kept = _keep_constant_outputs_computed(model.graph)
    with G_LOGGER.verbosity(G_LOGGER.ERROR):
        save_onnx(model, str(out_path))  # as external data when over protobuf's 2 GiB
    return {
        "fixed_inputs": fixed,
        "folded_nodes": folded,
        "fused_gelu": gelus,
        "constant_outputs": kept,
        "dynamic_tensors": _dynamic_tensors(model.graph),
    }


_PASSES = 10


def _fold_static_shapes(model):
    """Replace each Shape node whose input has a static inferred shape by a Constant (honouring start/end);
    returns the model and whether it replaced any."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    graph = model.graph
    static = {t.name: list(t.dims) for t in graph.initializer}
    for v in [*graph.input, *graph.value_info, *graph.output]:
        t = v.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            static[v.name] = [d.dim_value for d in t.shape.dim]
    replaced = False
    for i, node in enumerate(graph.node):
        if node.op_type != "Shape" or node.input[0] not in static:
            continue
        attrs = {a.name: a.i for a in node.attribute}
        dims = static[node.input[0]][attrs.get("start", 0) : attrs.get("end")]  # ONNX clamps like Python slices
        value = numpy_helper.from_array(np.array(dims, np.int64), node.output[0])
        graph.node[i].CopyFrom(helper.make_node("Constant", [], [node.output[0]], name=node.name, value=value))
        replaced = True
    return model, replaced


def _fix_input_dims(graph, shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Set the dims of each graph input named in `shapes` (the others stay as they are); returns their names."""
    inputs = {i.name: i for i in graph.input}
    unknown = sorted(set(shapes) - set(inputs))
    if unknown:
        raise UsageError(f"The ONNX graph has no input named {', '.join(unknown)} (it has: {', '.join(inputs)}).")
    for name, shape in shapes.items():
        dims = inputs[name].type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise UsageError(f"ONNX input '{name}' has rank {len(dims)}; the shape given for it, {shape}, does not.")
        for dim, size in zip(dims, shape):
            dim.Clear()
            dim.dim_value = int(size)
    return list(shapes)


def _scalar(graph, name: str) -> float | None:
    """The value of a one-element constant (initializer or Constant node output), else None."""
    from onnx import numpy_helper

    tensor = next((t for t in graph.initializer if t.name == name), None)
    if tensor is None:
        node = next((n for n in graph.node if n.op_type == "Constant" and n.output[0] == name), None)
        tensor = node.attribute[0].t if node is not None and node.attribute[0].name == "value" else None
    if tensor is None:
        return None
    value = numpy_helper.to_array(tensor)
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def _fuse_erf_gelu(model):
    """Replace each exact GELU spelled with Erf (x * 0.5 * (1 + erf(x / sqrt 2)), in the torchscript or dynamo
    exporter's order) by one opset-20 Gelu op: TFLite has no Erf kernel ('tf.Erf op is neither a custom op nor a
    flex op'); onnx2tf maps Gelu to the GELU builtin. The opset goes to 20 only when there is one to fuse;
    returns the model and how many it fused."""
    import onnx
    from onnx import helper

    found = _erf_gelus(model.graph)
    if not found:
        return model, 0
    try:
        model = onnx.version_converter.convert_version(model, 20) if onnx_opset(model) < 20 else model
    except Exception:  # an op the converter cannot move to opset 20: leave the Erf (TFLite will name it)
        return model, 0
    graph = model.graph
    dead = {o for _, _, outs in found for o in outs}
    gelu = {out: helper.make_node("Gelu", [x], [out], name=f"{out}__gelu") for x, out, _ in found}
    nodes = [gelu.get(n.output[0], n) for n in graph.node if n.output[0] in gelu or n.output[0] not in dead]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    weights = [t for t in graph.initializer if t.name in used]  # the GELUs' constants are unused now
    del graph.initializer[:]
    graph.initializer.extend(weights)
    return model, len(found)


def _erf_gelus(graph) -> list[tuple[str, str, set[str]]]:
    """Each Erf GELU as (its input, its output, the outputs of its five nodes)."""
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    produced = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}

    def only_consumer(name: str, op_type: str):
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type and name not in outputs else None

    def near(name: str, value: float) -> bool:
        got = _scalar(graph, name)
        return got is not None and abs(got - value) <= 1e-6 * abs(value)

    def other(node, name: str) -> str:
        return node.input[1] if node.input[0] == name else node.input[0]

    found = []
    for erf in [n for n in graph.node if n.op_type == "Erf"]:
        scale = produced.get(erf.input[0])
        if scale is None or scale.op_type not in ("Div", "Mul") or only_consumer(scale.output[0], "Erf") is None:
            continue
        x = scale.input[0]
        if not near(scale.input[1], 2**0.5 if scale.op_type == "Div" else 2**-0.5):
            continue
        add = only_consumer(erf.output[0], "Add")
        if add is None or not near(other(add, erf.output[0]), 1.0):
            continue
        mul1 = only_consumer(add.output[0], "Mul")
        mul2 = None if mul1 is None else only_consumer(mul1.output[0], "Mul")
        if mul1 is None or mul2 is None:
            continue
        factors = {other(mul1, add.output[0]), other(mul2, mul1.output[0])}
        half = next((f for f in factors if f != x), None)
        if x in factors and half is not None and near(half, 0.5):
            found.append((x, mul2.output[0], {n.output[0] for n in (scale, erf, add, mul1, mul2)}))
    return found


def _keep_constant_outputs_computed(graph) -> list[str]:
    """Make each graph output that is a constant (an initializer, a Constant, or what folding left) the exact
    `Where(flag(first input), C, C)`, and return their names.
    Why computed rather than refused: onnx2tf's Keras model needs every output to come out of a layer; on a bare
    constant it fails ('Output tensors of a Functional model must be the output of a TensorFlow Layer'), drops an
    initializer output, or gives every constant output the last one's value (its Lambda workaround)."""
    from onnx import TensorProto, helper

    initializers = {t.name for t in graph.initializer}
    constant = _constant_outputs(graph)
    sources = [i.name for i in graph.input if i.name not in initializers]
    if not constant:
        return []
    if not sources:
        raise UnsupportedOpError(f"The ONNX graph's output(s) {', '.join(constant)} are constants and it has no input.")
    flag = f"{sources[0]}__edgekit_flag"
    graph.node.extend(
        [
            helper.make_node("Cast", [sources[0]], [f"{flag}_f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMax", [f"{flag}_f"], [f"{flag}_max"], keepdims=0),
            helper.make_node("Cast", [f"{flag}_max"], [flag], to=TensorProto.BOOL),
        ]
    )
    for name in constant:
        value = f"{name}__edgekit_const"
        for node in graph.node:  # the constant keeps feeding its other consumers under its new name
            node.input[:] = [value if i == name else i for i in node.input]
            node.output[:] = [value if o == name else o for o in node.output]
        for tensor in graph.initializer:
            if tensor.name == name:
                tensor.name = value
        graph.node.append(helper.make_node("Where", [flag, value, value], [name], name=f"{name}__edgekit_keep"))
    return constant


def _constant_outputs(graph) -> list[str]:
    """The graph outputs no node computes from an input: initializers and Constant node outputs."""
    produced = {o: n for n in graph.node for o in n.output}
    initializers = {t.name for t in graph.initializer}

    def constant(name: str) -> bool:
        node = produced.get(name)
        return (
            name in initializers
            or (node is not None and node.op_type == "Constant")
            or (node is not None and node.op_type == "Identity" and constant(node.input[0]))
        )

    return [o.name for o in graph.output if constant(o.name)]


def _dynamic_tensors(graph, limit: int = 5) -> list[str]:
    """Names of (up to `limit`) tensors whose inferred shape still has a symbolic or unknown dim."""

    def dynamic(v) -> bool:
        t = v.type.tensor_type
        return not t.HasField("shape") or any(not d.HasField("dim_value") for d in t.shape.dim)

    return [v.name for v in [*graph.value_info, *graph.output] if dynamic(v)][:limit]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OP_NAME = re.compile(r"onnx_op_name:\s*(\S+)")
_ERROR = re.compile(r"^(\w+(?:Error|Exception)): (.+)$", re.MULTILINE)
_REPR = re.compile(r"\b(?:array|tf\.Tensor)\((?:[^()]|\([^()]*\))*\)")  # numpy / eager tensor reprs
_TF_FUNCTION = re.compile(r"\{\{function_node [^}]*\}\}\s*")  # the eager op's device prefix
_NOT_A_LAYER = "must be the output of a TensorFlow"
# the Keras wrapper around a layer's error (which layer, its arguments): the cause is the line between
_KERAS_WRAPPER = re.compile(r"Exception encountered when calling layer|Call arguments received|•")


def explain_onnx2tf_failure(exc_text: str, onnx_path: Path | str, log_text: str = "") -> str:
    """One line naming the ONNX node (op type, name, output) onnx2tf stopped at, from its exception text and its
    log (it logs `onnx_op_name: NAME` on failure); tensor value dumps are dropped, they only hide the cause."""
    exc_text = _ANSI.sub("", exc_text)
    names = _OP_NAME.findall(_ANSI.sub("", f"{log_text}\n{exc_text}"))
    cause = _cause(exc_text)
    graph = _graph(onnx_path)
    node = next((n for n in graph.node if n.name == names[-1]), None) if names and graph is not None else None
    if node is not None:
        return f"onnx2tf failed on {node.op_type} node '{node.name}' (output {', '.join(node.output)}): {cause}"
    if names:
        return f"onnx2tf failed on ONNX node '{names[-1]}': {cause}"
    if _NOT_A_LAYER in exc_text:
        constant = _constant_outputs(graph) if graph is not None else []
        outputs = [o.name for o in graph.output] if graph is not None else []
        if constant or len(outputs) == 1:
            which = f"graph output {', '.join(constant or outputs)} is"
        else:
            which = f"one of the graph outputs {', '.join(outputs)} is" if outputs else "a graph output is"
        return f"onnx2tf failed: {which} a constant, not computed from the inputs (onnx2tf's Keras model needs layers)."
    return f"onnx2tf failed: {cause}"


def _cause(text: str, limit: int = 300) -> str:
    """The exception's `XError: message` line (else its first informative line), without value dumps."""
    text = _drop_values(_REPR.sub("<tensor>", _TF_FUNCTION.sub("", text.split(" Found: ")[0])))
    found = _ERROR.findall(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not _KERAS_WRAPPER.search(ln)]
    line = f"{found[-1][0]}: {found[-1][1]}" if found else (lines[0] if lines else "")
    return re.sub(r"\s+", " ", line).strip()[:limit]


def _drop_values(text: str, keep: int = 40) -> str:
    """Replace each outermost [...] that holds values (floats, '...', several lines, or long) with '[...]';
    short integer lists such as shapes ([1, 64]) stay."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            if depth == 0:
                out.append(text[start:i])
                start = i
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
            if depth == 0:
                group = text[start : i + 1]
                values = len(group) > keep or "\n" in group or "..." in group or re.search(r"\d\.", group)
                out.append("[...]" if values else group)
                start = i + 1
    out.append(text[start:])
    return "".join(out)


def _graph(onnx_path: Path | str | None):
    """The ONNX graph without its weights (only names are needed), or None if it cannot be read."""
    import onnx

    try:
        return onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception:
        return None

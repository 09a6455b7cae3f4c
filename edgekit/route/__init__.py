"""The route graph: converters are edges between formats; export searches it.

This table imports nothing: each edge names its implementation as "module:function" and the
module that implementation needs, so listing routes stays cheap.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edgekit._lazy import available
from edgekit.errors import NoRouteError


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    # "module:function"; function(model, src, out_path, recipe, data) -> dict of notes, where src is the
    # previous step's file (None when the edge starts from the loaded source) and data the calibration set
    impl: str
    needs: tuple[str, ...]  # importable modules the converter uses
    tool: str  # what does the work, for the sidecar
    quantizes: tuple[str, ...] = ()  # target quantizations the converter applies itself (while converting)
    static_shapes: bool = False  # needs every input dim fixed: the steps before it export with fixed shapes

    @property
    def ready(self) -> bool:
        return all(available(m) for m in self.needs)


# Formats a route starts from: every model loader maps its source kind onto one of these.
SOURCE_FORMATS = ("torch", "keras", "onnx")

_TFLITE_QUANTIZATIONS = ("fp16", "dynamic", "full-integer", "int16x8")

EDGES: tuple[Edge, ...] = (
    Edge("torch", "onnx", "edgekit.route.torch_to_onnx:convert", ("torch", "onnxscript"), "torch.onnx"),
    Edge("keras", "onnx", "edgekit.route.keras_to_onnx:convert", ("tensorflow", "tf2onnx"), "tf2onnx"),
    Edge("torch", "ptl", "edgekit.route.torch_to_ptl:convert", ("torch",), "torch.jit (lite interpreter)",
         quantizes=("dynamic",)),
    Edge("torch", "pte", "edgekit.route.torch_to_pte:convert", ("torch", "executorch", "torchao"),
         "torch.export + ExecuTorch (XNNPACK)", quantizes=("static",), static_shapes=True),
    # TFLite quantizes inside its converter; the onnx edge also serves PyTorch sources (torch -> onnx -> tflite)
    Edge("keras", "tflite", "edgekit.route.to_tflite:from_keras", ("tensorflow", "ai_edge_litert"),
         "tf.lite.TFLiteConverter", quantizes=_TFLITE_QUANTIZATIONS),
    Edge("onnx", "tflite", "edgekit.route.to_tflite:from_onnx", ("onnx2tf", "tensorflow", "ai_edge_litert"),
         "onnx2tf + tf.lite.TFLiteConverter", quantizes=_TFLITE_QUANTIZATIONS, static_shapes=True),
)


def quantized_in_route(fmt: str, quantization: str) -> bool:
    """Whether a converter into `fmt` applies `quantization` itself (PyTorch Mobile quantizes the module)."""
    return any(e.dst == fmt and quantization in e.quantizes for e in EDGES)


def find_route(src: str, dst: str) -> list[Edge]:
    """Shortest chain of edges from format `src` to format `dst` (empty when they are equal)."""
    if src == dst:
        return []
    queue: deque[tuple[str, list[Edge]]] = deque([(src, [])])
    seen = {src}
    while queue:
        node, path = queue.popleft()
        for edge in EDGES:
            if edge.src == node and edge.dst not in seen:
                if edge.dst == dst:
                    return path + [edge]
                seen.add(edge.dst)
                queue.append((edge.dst, path + [edge]))
    reachable = sorted(reachable_formats(src))
    raise NoRouteError(
        f"No converter route from a {src} model to {dst} in this version of edgekit.",
        hint=f"From {src}, edgekit can produce: {', '.join(reachable) or 'nothing'}. "
        f"Routes: {', '.join(f'{e.src}->{e.dst}' for e in EDGES)}.",
    )


def reachable_formats(src: str) -> set[str]:
    out, frontier = {src}, [src]
    while frontier:
        node = frontier.pop()
        for edge in EDGES:
            if edge.src == node and edge.dst not in out:
                out.add(edge.dst)
                frontier.append(edge.dst)
    return out


def sources_for(dst: str) -> set[str]:
    """Source formats from which `dst` is reachable."""
    return {src for src in SOURCE_FORMATS if dst in reachable_formats(src)}

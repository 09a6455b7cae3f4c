"""PT2E post-training int8, shared by the runtimes whose quantizers annotate a torch.export graph
(ExecuTorch's XNNPACKQuantizer, litert-torch's PT2EQuantizer): capture, calibrate on --calib, convert."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgekit.data import Dataset
from edgekit.errors import ConversionError, UsageError, first_line, is_user_frame
from edgekit.quiet import quiet


def capture(torch, module, args: tuple, source: str):
    """torch.export of the module at the example args (non-strict); a capture failure is a user error that
    names the line of the model's forward it stopped at."""
    try:
        with quiet():
            return torch.export.export(module, args, strict=False)
    except Exception as e:  # torch.export raises UserError, GuardOnDataDependentSymNode, Unsupported...
        text = str(e)
        data_dependent = "data-dependent" in text or "GuardOnDataDependent" in type(e).__name__
        raise UsageError(
            f"torch.export cannot capture {source}: {type(e).__name__}: {_export_cause(text)}",
            hint=(
                "The forward branches on a tensor's value (data-dependent control flow): rewrite it with "
                "torch.where / torch.cond, or use pytorch-mobile, which traces one path."
                if data_dependent
                else "Fix the input shape with --input (every dim an integer), or simplify the forward "
                "until torch.export accepts it."
            ),
        ) from None


_CALL = re.compile(r'File "([^"]+)", line (\d+), in (\w+)\n?[ \t]*([^\n]*)')


def _export_cause(text: str) -> str:
    """The error's headline and the user's line it names ("The following call raised this error")."""
    headline = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    frames = [f for f in _CALL.findall(text) if is_user_frame(f[0])]
    if not frames:
        return headline[:300]
    path, line, fn, code = frames[-1]
    return f"{headline[:240]} (at {Path(path).name}:{line} in {fn}" + (f": `{code.strip()}`)" if code.strip() else ")")


def integer_scalar_ops(torch, graph_module) -> int:
    """Give integer add/mul with a Python scalar their `.Scalar` overload, in place; returns how many.

    The XNNPACK-style quantizers turn every scalar operand of add.Tensor/mul.Tensor into a float tensor
    before annotating; on integer index arithmetic (Hugging Face's attention-mask code adds 0 to an
    arange) that makes the indices float and calibration fails. The `.Scalar` overloads compute the
    same thing and are left alone.
    """
    aten = torch.ops.aten
    overloads = {aten.add.Tensor: aten.add.Scalar, aten.mul.Tensor: aten.mul.Scalar}
    changed = 0
    for node in graph_module.graph.nodes:
        val = node.meta.get("val")
        if node.op != "call_function" or node.target not in overloads or val is None or val.dtype.is_floating_point:
            continue
        a, b, *rest = node.args
        if isinstance(a, torch.fx.Node) == isinstance(b, torch.fx.Node):
            continue  # two tensors (or two scalars): nothing is converted
        tensor, scalar = (a, b) if isinstance(a, torch.fx.Node) else (b, a)  # add and mul commute
        node.target, node.args = overloads[node.target], (tensor, scalar, *rest)
        changed += 1
    if changed:
        graph_module.recompile()
    return changed


def calibrate(
    torch, graph_module, quantizer, data: Dataset, names: list[str], hint: str, fold_quantize: bool = True
) -> Any:
    """prepare_pt2e with the annotating quantizer, run every calibration sample (batch 1, the captured
    shape), convert_pt2e: the graph with quantize/dequantize pairs at the measured ranges."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with quiet():
        prepared = prepare_pt2e(graph_module, quantizer)
    try:
        with torch.inference_mode():
            for i in range(len(data)):
                prepared(*[torch.from_numpy(data.arrays[name][i : i + 1]).contiguous() for name in names])
        with quiet():
            return convert_pt2e(prepared, fold_quantize=fold_quantize)
    except Exception as e:  # the annotated graph fails to run: a quantizer/model mismatch, not bad data
        raise ConversionError(
            f"PT2E calibration of the {type(quantizer).__name__}-annotated graph failed: "
            f"{type(e).__name__}: {first_line(e)}",
            hint=hint,
        ) from None

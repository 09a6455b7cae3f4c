"""torch -> PyTorch Mobile lite interpreter (.ptl): script (trace where scripting fails), int8 if asked.

pytorch-mobile-int8 quantizes before scripting, with the quantized engine the device profile names
(qnnpack on arm64, x86 on x86): with --calib, static int8 (FX graph mode where the model traces, else eager
mode layer by layer); without, or with --allow-dynamic where static fails, dynamic int8 on Linear/LSTM/GRU; the
sidecar says which and why. optimize_for_mobile needs a torch build with XNNPACK; where it is missing (the
CPU wheel here) the file is saved without it, and the sidecar says so.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

from edgekit.backends.base import StepContext, StepNotes
from edgekit.backends.torch_mobile.groups import channel_ranges, grouped_linear_class
from edgekit.backends.torch_mobile.plan import TorchLitePlan
from edgekit.channel_groups import grouping, sidecar_notes
from edgekit.errors import ConversionError, UsageError, first_line
from edgekit.quiet import quiet
from edgekit.sources.base import Model
from edgekit.sources.torch_source import example_args, refuse_prequantized, torch_module


def _quantizable(torch, module, layers: tuple, keep_float: tuple[str, ...]) -> tuple[dict[str, type], set[str]]:
    """The modules of `layers` types to quantize by name, and the names inside transformer fast-path blocks:
    nn.Transformer*Layer reads its Linear weights as tensors (fast-path checks), which a quantized Linear no
    longer has, so layers inside them stay float."""
    fast_path_blocks = tuple(
        getattr(torch.nn, n) for n in ("TransformerEncoderLayer", "TransformerDecoderLayer", "MultiheadAttention")
    )
    inside = {
        f"{owner}.{child}".lstrip(".")
        for owner, m in module.named_modules()
        if isinstance(m, fast_path_blocks)
        for child, _ in m.named_modules()
        if child
    }
    chosen = {
        name: type(m)
        for name, m in module.named_modules()
        if type(m) in layers and name not in inside and name not in keep_float
    }
    return chosen, inside


def _quantize_dynamic(torch, module, plan: TorchLitePlan, keep_float: tuple[str, ...]) -> tuple:
    engine = _set_engine(torch, plan)
    layers = (torch.nn.Linear, torch.nn.LSTM, torch.nn.GRU)
    chosen, inside = _quantizable(torch, module, layers, keep_float)
    if not chosen:
        raise ConversionError(
            "pytorch-mobile-int8 (dynamic) quantizes Linear/LSTM/GRU layers outside transformer "
            "blocks; this model has none.",
            hint="Use pytorch-mobile (fp32).",
        )
    # the scheme's weight granularity (per-tensor weights lose ~8 pts of top-1 on MiniLM)
    qconfig = (
        torch.ao.quantization.per_channel_dynamic_qconfig
        if plan.per_channel_weights
        else torch.ao.quantization.default_dynamic_qconfig
    )
    quantized = torch.ao.quantization.quantize_dynamic(module, {name: qconfig for name in chosen}, dtype=torch.qint8)
    kept = sorted(name for name, m in module.named_modules() if type(m) in layers and name in inside)
    return quantized, {
        "method": "torch.ao.quantization.quantize_dynamic",
        "engine": engine,
        "per_channel_weights": plan.per_channel_weights,
        "quantized_layer_types": sorted({t.__name__ for t in chosen.values()}),
        "quantized_layers": len(chosen),
        "float_layers_in_transformer_blocks": kept,
        "float_layers": list(keep_float),
    }


def _set_engine(torch, plan: TorchLitePlan) -> str:
    engine = plan.engine
    if engine not in torch.backends.quantized.supported_engines:
        raise ConversionError(
            f"This torch build has no '{engine}' quantized engine (device {plan.device}).",
            hint=f"Engines here: {', '.join(torch.backends.quantized.supported_engines)}.",
        )
    torch.backends.quantized.engine = engine
    return engine


def _quantize_static(
    torch, module, model: Model, plan: TorchLitePlan, data, keep_float: tuple[str, ...]
) -> tuple | str:
    """Static int8 (FX graph mode) calibrated on --calib: convolutions and linears with int8 activations.
    Returns (module, notes), or why the model does not allow it (dynamic int8 is used instead)."""
    from torch.ao.quantization import QConfigMapping, get_default_qconfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine = _set_engine(torch, plan)
    args = example_args(model)
    names = model.signature.input_names
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Linear and Conv layers (with the BatchNorm/ReLU FX fuses into them): the layers the per-layer
            # fallback names, so keeping all of them float gives back (nearly) the float model
            qconfig = get_default_qconfig(engine)
            mapping = QConfigMapping()
            fused = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.ReLU, torch.nn.functional.relu)
            for kind in (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, *fused):
                mapping.set_object_type(kind, qconfig)
            for name in keep_float:
                mapping.set_module_name(name, None)
            prepared = prepare_fx(copy.deepcopy(module).eval(), mapping, args)
            with torch.inference_mode():
                for batch in data.batches(32):
                    prepared(*[torch.from_numpy(batch[n]) for n in names])
            quantized = convert_fx(prepared)
            quantized(*args)  # a graph FX traced but cannot run quantized fails here, not on the phone
    except Exception as e:  # symbolic tracing rejects data-dependent Python; some ops have no int8 kernel
        return f"static int8 not possible: {type(e).__name__}: {first_line(e, 200)}"
    kinds = sorted(
        {
            type(m).__name__
            for m in quantized.modules()
            if ".quantized" in type(m).__module__ and "PackedParams" not in type(m).__name__
        }
    )
    if not kinds:
        return "static int8 quantized no layer (no Conv/Linear modules FX recognizes)"
    return quantized, {
        "method": "torch.ao.quantization.quantize_fx (static, calibrated)",
        "engine": engine,
        "qconfig": f"get_default_qconfig('{engine}') on Linear/Conv modules",
        "quantized_module_types": kinds,
        "calibration_samples": len(data),
        "float_layers": list(keep_float),
    }


def _wrapper_class():
    """QuantWrapper that still answers for the layer's attributes: model code reads them (Hugging Face's ViT casts
    its pixels to `projection.weight.dtype`). A quantized layer's weight and bias, methods there, read as float
    tensors unpacked once (the check run after converting), so tracing records constants, not unpack ops."""
    from torch.ao.quantization import QuantWrapper

    class LayerWrapper(QuantWrapper):
        def __getattr__(self, name: str) -> Any:
            try:
                return super().__getattr__(name)
            except AttributeError:
                if name == "module" or "module" not in self._modules:  # not wrapped yet
                    raise
                value = getattr(self.module, name)
            if name not in ("weight", "bias") or not callable(value):
                return value
            unpacked = self.__dict__.setdefault("_unpacked", {})
            if name not in unpacked:
                tensor = value()
                unpacked[name] = tensor.dequantize() if tensor is not None and tensor.is_quantized else tensor
            return unpacked[name]

    return LayerWrapper


def _quantize_static_per_layer(
    torch, module, model: Model, plan: TorchLitePlan, data, keep_float: tuple[str, ...], channel_groups: bool
) -> tuple | str:
    """Static int8 for a model FX cannot trace (Hugging Face code, data-dependent Python): eager mode, each
    Linear/Conv wrapped between a quantize and a dequantize (QuantWrapper), calibrated on --calib. Every
    such layer runs an int8 kernel with calibrated activation ranges; what lies between them stays float. With
    `channel_groups`, a Linear whose channels span unlike ranges gets a scale per group (groups.py).
    Returns (module, notes), or why it is not possible."""
    from torch.ao.quantization import convert, get_default_qconfig, prepare

    engine = _set_engine(torch, plan)
    quantized = copy.deepcopy(module).eval()
    chosen, _ = _quantizable(torch, quantized, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d), keep_float)
    if not chosen:
        return "static int8 (per layer) found no Linear/Conv layer to quantize"
    names = model.signature.input_names

    def calibrate() -> None:
        with torch.inference_mode():
            for batch in data.batches(32):
                quantized(*[torch.from_numpy(batch[n]) for n in names])

    linears = [name for name, kind in chosen.items() if kind is torch.nn.Linear]
    try:
        groups = grouping(channel_ranges(quantized, linears, calibrate)) if channel_groups else {}
    except Exception as e:  # the model's own forward failed on the calibration data
        return f"static int8 (per layer) not possible: {type(e).__name__}: {first_line(e, 200)}"
    qconfig = get_default_qconfig(engine)
    for name in chosen:
        owner, _, attr = name.rpartition(".")
        parent = quantized.get_submodule(owner) if owner else quantized
        layer = getattr(parent, attr)
        wrapper = grouped_linear_class()(layer, *groups[name]) if name in groups else _wrapper_class()(layer)
        wrapper.qconfig = qconfig
        setattr(parent, attr, wrapper)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepare(quantized, inplace=True)
            calibrate()
            convert(quantized, inplace=True)
            quantized(*example_args(model))
    except Exception as e:
        return f"static int8 (per layer) not possible: {type(e).__name__}: {first_line(e, 200)}"
    return quantized, {
        "method": "torch.ao.quantization eager mode, per layer (static, calibrated)",
        "engine": engine,
        "qconfig": f"get_default_qconfig('{engine}') on each Linear/Conv, quantized in and dequantized out",
        "quantized_module_types": sorted({t.__name__ for t in chosen.values()}),
        "quantized_layers": len(chosen),
        "channel_groups": sidecar_notes(groups) if channel_groups else "off (--no-channel-groups)",
        "calibration_samples": len(data),
        "float_layers": list(keep_float),
    }


def _script(torch, module) -> Any:
    """torch.jit.script that leaves TorchScript's process-wide type cache as it found it when it fails or is
    interrupted part-way: a layer type left half-compiled makes every later script of that layer in the
    process fail ("Can't redefine method: forward on class ...Conv2d"): one Ctrl-C turned all later exports
    of that layer into traces, and a layer that cannot be scripted was blamed for that instead of its real
    reason from its second export on."""
    try:
        return torch.jit.script(module)
    except BaseException:
        forget_half_compiled_types(torch)
        raise


def forget_half_compiled_types(torch) -> None:
    """Drop the cached TorchScript module types whose methods never finished compiling (torch.jit._recursive
    keeps them for reuse; a later script then builds them anew)."""
    store = getattr(torch.jit._recursive, "concrete_type_store", None)
    if store is None:  # a torch without this cache has nothing to forget
        return
    for known in store.type_store.values():
        known[:] = [t for t in known if t in store.methods_compiled]


def _script_or_trace(torch, module, args) -> tuple[Any, dict]:
    try:
        return _script(torch, module), {"torchscript": "script"}
    except Exception as e:  # scripting rejects many Python constructs; tracing records one path
        reason = first_line(e, 200)
    try:
        traced = torch.jit.trace(module, args, strict=False, check_trace=False)
    except Exception as e:
        raise ConversionError(
            f"Neither torch.jit.script nor torch.jit.trace could convert the model: {first_line(e)}",
            hint="Data-dependent control flow cannot be traced: make it tensor operations, or fix the input shape "
            "with --input.",
        ) from None
    return traced, {
        "torchscript": "trace",
        "script_failed": reason,
        "note": "traced: control flow was recorded for the example inputs only",
    }


def convert(ctx: StepContext) -> StepNotes:
    import torch

    model, plan = ctx.model, ctx.plan
    refuse_prequantized(model, "a PyTorch Mobile export")
    module, notes, applied = torch_module(model.obj), {}, "none"
    if plan.quantize and model.kind == "exported-program":
        raise UsageError(
            f"{model.source} is an ExportedProgram: a graph of aten ops with no nn.Linear/nn.Conv "
            "modules, which is what PyTorch Mobile's int8 flows quantize.",
            hint="Export from the Python model (package.module:factory with --weights), or use "
            "executorch-int8, which quantizes ExportedPrograms.",
        )
    if plan.quantize:
        static = (
            _quantize_static(torch, module, model, plan, ctx.data, ctx.keep_float) if ctx.data is not None else None
        )
        if isinstance(static, str):  # FX cannot trace it: each layer on its own
            groups = getattr(ctx.options, "channel_groups", True)
            per_layer = _quantize_static_per_layer(torch, module, model, plan, ctx.data, ctx.keep_float, groups)
            if isinstance(per_layer, tuple):
                per_layer[1]["fx_failed"] = static
            static = per_layer if isinstance(per_layer, tuple) else f"{static}; {per_layer}"
        if isinstance(static, tuple):
            (module, notes), applied = static, "static"
        else:
            if static is not None and not getattr(ctx.options, "allow_dynamic", False):
                raise ConversionError(
                    f"pytorch-mobile-int8: static int8 calibrated on --calib is not possible for {model.source}: "
                    f"{static.removeprefix('static int8 not possible: ')}.",
                    hint="Pass --allow-dynamic to accept dynamic int8 (Linear layers only, float activations), "
                    "or use executorch-int8 (static int8 from torch.export, which takes more models).",
                )
            (module, notes), applied = _quantize_dynamic(torch, module, plan, ctx.keep_float), "dynamic"
            notes["static_skipped"] = static or "no --calib data: static int8 needs calibration"
    with warnings.catch_warnings(), quiet():
        warnings.simplefilter("ignore")
        scripted, how = _script_or_trace(torch, module, example_args(model))
        xnnpack = bool(getattr(torch._C, "_is_xnnpack_enabled", lambda: False)())
        if xnnpack:
            from torch.utils.mobile_optimizer import optimize_for_mobile

            scripted = optimize_for_mobile(scripted)
        scripted._save_for_lite_interpreter(str(ctx.out))
    return StepNotes(
        {
            **how,
            **({"quantization": notes} if notes else {}),
            "optimize_for_mobile": "applied" if xnnpack else "skipped: this torch build has no XNNPACK",
        },
        applied=applied,
    )

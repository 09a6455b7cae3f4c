"""Load PyTorch sources: TorchScript (.pt), ExportedProgram (.pt2), `pkg.module:factory` (+ weights).

Nothing here unpickles untrusted code: weights load with weights_only=True or from safetensors.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

from edgekit._lazy import require
from edgekit.errors import ModelLoadError, UsageError, first_line, require_file
from edgekit.quiet import quiet
from edgekit.sources.base import Model, sha256_path
from edgekit.spec import Signature, TensorSpec, default_output_names, np_dtype

_TORCH_DTYPES = {
    "float32": "float32",
    "float16": "float16",
    "float64": "float64",
    "int64": "int64",
    "int32": "int32",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}


def torch_module(obj):
    """The callable nn.Module of a loaded torch source. An ExportedProgram's module keeps the train/eval
    mode it was exported with (and rejects .eval()); the loaders already put the other kinds in eval."""
    return obj.module() if hasattr(obj, "graph_signature") else obj


def example_args(model: Model) -> tuple:
    """Example tensors for tracing and export: dynamic dims get size 2 (size 1 would be specialized away)."""
    import numpy as np

    torch = _torch()
    from edgekit.synthetic import synthetic_array

    rng = np.random.default_rng(0)
    return tuple(
        torch.from_numpy(
            synthetic_array(s.name, np_dtype(s.dtype), s.concrete_shape(default=2), rng, model.extra.get("vocab_size"))
        )
        for s in model.signature.inputs
    )


def to_numpy(tensor):
    """A torch output as numpy: floating types as float32, others as they are."""
    return tensor.detach().float().numpy() if tensor.is_floating_point() else tensor.numpy()


def flatten_outputs(out) -> list:
    """The tensors of a module's output, in order (tuples, dicts and transformers' ModelOutput flattened)."""
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flatten_outputs(o)]
    if hasattr(out, "to_tuple"):  # transformers ModelOutput
        return flatten_outputs(out.to_tuple())
    return [out]


def output_names(model: Model, args) -> list[str]:
    """The signature's output names, or output / output_i after one run of the module."""
    if model.signature.outputs:
        return [o.name for o in model.signature.outputs]
    torch = _torch()
    with torch.inference_mode():
        n = len(flatten_outputs(torch_module(model.obj)(*args)))
    return default_output_names(n)


def is_prequantized(model: Model) -> bool:
    """An ExportedProgram that already holds int8 quantize/dequantize ops (edgekit compress qat writes one)."""
    if model.kind != "exported-program":
        return False
    return any("quantized_decomposed" in str(node.target) for node in model.obj.graph.nodes)


def refuse_prequantized(model: Model, target_kind: str) -> None:
    if is_prequantized(model):
        raise UsageError(
            f"{model.source} is already int8 (quantization-aware training); {target_kind} would "
            "quantize it again or hide that it is int8.",
            hint="Export it with executorch-int8.",
        )


def torch_io(path: Path, model: Model):
    """The I/O description of a file its runtime cannot describe (.ptl, .pte at `path`): the source's inputs,
    and its outputs named as the source names them (or output / output_i)."""
    from edgekit.sidecar import ArtifactIO

    names = output_names(model, example_args(model))
    declared = {o.name: o for o in model.signature.outputs}
    outputs = tuple(declared.get(n) or TensorSpec(n, "float32", ()) for n in names)
    return ArtifactIO.from_signature(Signature(model.signature.inputs, outputs))


def _torch():
    return require("torch", "Loading a PyTorch model")


def _need_inputs(source: str, inputs: tuple[TensorSpec, ...]) -> None:
    if not inputs:
        raise UsageError(
            f"{source} does not record its input shapes; say them with --input.",
            hint="For example: --input image:float32:1x3x224x224 (a non-numeric dim is dynamic: batchx3x224x224).",
        )


def _is_torch_save(path: Path) -> bool:
    """A torch.save archive (a state dict, a pickled module) rather than TorchScript: no `code/` inside."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.endswith("/data.pkl") for n in names) and not any("/code/" in n for n in names)


def load_torchscript(path: Path, inputs: tuple[TensorSpec, ...]) -> Model:
    torch = _torch()
    if _is_torch_save(path):
        raise ModelLoadError(
            f"{path} was written by torch.save (a state dict or a pickled module), not TorchScript: it holds "
            "weights, not the model's code.",
            hint="Name the code that builds the model and pass the file as its weights: "
            f"edgekit export package.module:factory --weights {path} --input NAME:DTYPE:SHAPE ...",
        )
    _need_inputs(str(path), inputs)
    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:
        raise ModelLoadError(
            f"{path} is not a TorchScript file: {first_line(e)}",
            hint="Save it with torch.jit.save(torch.jit.script(model), path).",
        ) from None
    model = Model("torch", "torchscript", str(path), module, Signature(inputs), sha256_path(path), path.stem)
    _probe(model)
    return model


def load_exported_program(path: Path, inputs: tuple[TensorSpec, ...]) -> Model:
    torch = _torch()
    try:
        with quiet():  # torch logs its own traceback of a file it cannot read before raising
            program = torch.export.load(str(path))
    except Exception as e:
        raise ModelLoadError(
            f"{path} is not an ExportedProgram: {first_line(e)}",
            hint="Save it with torch.export.save(torch.export.export(model, args), path).",
        ) from None
    user_inputs = list(program.graph_signature.user_inputs)
    specs = []
    overrides = {s.name: s for s in inputs}
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            if node.name in overrides:
                specs.append(overrides[node.name])
                continue
            val = node.meta.get("val")
            dims = tuple(int(d) if str(d).isdigit() else str(d) for d in val.shape)
            specs.append(
                TensorSpec(node.name, _TORCH_DTYPES.get(str(val.dtype).replace("torch.", ""), "float32"), dims)
            )
    return Model("torch", "exported-program", str(path), program, Signature(tuple(specs)), sha256_path(path), path.stem)


def load_state_dict(path: Path) -> dict:
    torch = _torch()
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # SafetensorError on a truncated, empty or foreign file
            raise ModelLoadError(
                f"{path} is not a readable .safetensors file: {first_line(e)}.",
                hint="Save weights with safetensors.torch.save_file(model.state_dict(), path), or torch.save.",
            ) from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelLoadError(
            f"Cannot read weights from {path}: {first_line(e)}",
            hint="Weights must be a state dict saved with torch.save or a .safetensors file.",
        ) from None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path} holds a {type(state).__name__}, not a state dict.")
    return state.get("state_dict", state)


def load_factory(spec: str, inputs: tuple[TensorSpec, ...], weights: Path | None) -> Model:
    torch = _torch()
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ModelLoadError(
            f"Cannot import the factory '{spec}': {e}",
            hint="SOURCE must be 'package.module:callable', importable from the current environment.",
        ) from None
    except SyntaxError as e:
        raise ModelLoadError(
            f"The factory's module {module_name} does not compile: {e.msg} ({e.filename}, line {e.lineno})."
        ) from None
    except Exception as e:  # the module raised while it was imported
        raise ModelLoadError(
            f"Importing {module_name} for '{spec}' raised {type(e).__name__}: {first_line(e)}"
        ) from None
    _need_inputs(spec, inputs)
    try:
        model = factory()
    except TypeError as e:
        raise ModelLoadError(
            f"The factory '{spec}' could not be called without arguments: {first_line(e)}",
            hint="A factory is a callable that takes no arguments and returns the nn.Module (wrap yours in one).",
        ) from None
    except Exception as e:
        raise ModelLoadError(f"The factory '{spec}' raised {type(e).__name__}: {first_line(e)}") from None
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"The factory '{spec}' returned a {type(model).__name__}, not a torch.nn.Module.")
    digest = hashlib.sha256(spec.encode())
    if weights is not None:
        require_file(weights, "Weights file", ModelLoadError)
        state = load_state_dict(weights)
        misfit = state_dict_misfit(model.state_dict(), state)
        if misfit:
            raise ModelLoadError(
                f"The weights in {weights} do not fit '{spec}': {misfit}.",
                hint="Were they saved from another model, or another size of it? The factory must build the model "
                "the weights were trained in.",
            )
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ModelLoadError(f"The weights in {weights} do not fit '{spec}': {first_line(e, 400)}") from None
        digest.update(sha256_path(weights).encode())
    name = (weights.stem if weights else attr) or "model"
    loaded = Model("torch", "factory", spec, model.eval(), Signature(inputs), digest.hexdigest(), name)
    _probe(loaded)
    return loaded


def _listed(keys: list[str], most: int = 4) -> str:
    more = f" and {len(keys) - most} more" if len(keys) > most else ""
    return ", ".join(keys[:most]) + more


def state_dict_misfit(expected: dict, given: dict) -> str:
    """What keeps `given` from loading into a module whose state dict is `expected`: the keys each lacks, and the
    tensors whose shapes differ (a few of each, with counts); empty when it fits."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in given and hasattr(given[k], "shape") and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    parts = [f"{len(missing)} missing ({_listed(missing)})"] if missing else []
    parts += [f"{len(unexpected)} unexpected ({_listed(unexpected)})"] if unexpected else []
    parts += [f"{len(shapes)} of another shape ({_listed(shapes)})"] if shapes else []
    return "; ".join(parts)


def _probe(model: Model) -> None:
    """Run the module once on inputs of the given specs, so that specs it cannot take (a wrong rank, dtype or
    size) fail here with their names instead of deep inside a converter."""
    torch = _torch()
    try:
        with torch.inference_mode():
            torch_module(model.obj)(*example_args(model))
    except Exception as e:
        specs = " ".join(str(s) for s in model.signature.inputs)
        raise UsageError(
            f"{model.source} does not run on the inputs --input {specs}: {type(e).__name__}: {first_line(e)}",
            hint="Give --input the names, dtypes and shapes the model's forward() takes (one --input per argument).",
        ) from None

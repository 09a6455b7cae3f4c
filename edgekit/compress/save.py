"""Write a compressed model as a SOURCE edgekit loads without running code from it: an ExportedProgram
for PyTorch modules, a Hugging Face folder for Hugging Face models, a SavedModel for Keras."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit.data import TOKENIZER_FILES, Dataset, static_shapes
from edgekit.errors import ConversionError, first_line
from edgekit.sources.base import Model
from edgekit.spec import TensorSpec, np_dtype


def example_batch(model: Model, data: Dataset) -> tuple[list[TensorSpec], tuple]:
    """Input specs with the batch dynamic and other free dims at the data's sizes, and example tensors (batch 2)."""
    import numpy as np
    import torch

    from edgekit.synthetic import synthetic_array

    shapes = static_shapes(model.signature.inputs, data)  # free dims from the data, batch 1
    specs = [replace(s, shape=("batch", *shapes[s.name][1:]) if s.shape else ()) for s in model.signature.inputs]
    rng = np.random.default_rng(0)
    args = tuple(
        torch.from_numpy(
            synthetic_array(s.name, np_dtype(s.dtype), s.concrete_shape(default=2), rng, model.extra.get("vocab_size"))
        )
        for s in specs
    )
    return specs, args


def batch_dynamic(module, specs: list[TensorSpec]):
    """torch.export's dynamic_shapes for a free batch on every input; a forward(*args) (the Hugging Face
    wrapper) takes them as one nested tuple."""
    import inspect

    import torch

    batch = torch.export.Dim("batch", min=1)
    shapes = tuple({0: batch} if s.shape else {} for s in specs)
    params = inspect.signature(module.forward).parameters.values()
    return (shapes,) if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params) else shapes


def save_program(
    module, model: Model, specs: list[TensorSpec], args: tuple, folder: Path, record: dict[str, Any]
) -> str:
    """model.pt2: torch.export with a dynamic batch where the module allows it (else batch 1, and the specs
    say so), the source's tokenizer beside it; the input specs it was saved with go into `record`."""
    import torch

    try:
        program = torch.export.export(module, args, dynamic_shapes=batch_dynamic(module, specs), strict=False)
    except Exception:  # a module that fixes its batch somewhere
        specs = [replace(s, shape=(1, *s.shape[1:]) if s.shape else ()) for s in specs]
        try:
            program = torch.export.export(module, tuple(a[:1] for a in args), strict=False)
        except Exception as e:
            raise ConversionError(f"torch.export cannot capture the compressed model: {first_line(e)}") from None
    torch.export.save(program, str(folder / "model.pt2"))
    copy_tokenizer(model.tokenizer_dir, folder)  # text data still tokenizes for the saved program
    record["inputs"] = [str(s) for s in specs]
    return "model.pt2"


def save_torch(module, model: Model, folder: Path, data: Dataset, record: dict[str, Any]) -> str:
    """A PyTorch module as model.pt2 (see save_program) and its weights as weights.safetensors."""
    from safetensors.torch import save_file

    module.eval()
    specs, args = example_batch(model, data)
    entry = save_program(module, model, specs, args, folder, record)
    save_file(
        {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()},
        str(folder / "weights.safetensors"),
    )
    return entry


def save_hf(hf_model, tokenizer_dir: Path | None, folder: Path) -> str:
    """save_pretrained (safetensors) with the source's tokenizer files beside it."""
    hf_model.save_pretrained(str(folder), safe_serialization=True)
    copy_tokenizer(tokenizer_dir, folder)
    return "."


def copy_tokenizer(tokenizer_dir: Path | None, folder: Path) -> None:
    for name in TOKENIZER_FILES:
        if tokenizer_dir is not None and (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, folder / name)


def save_keras(keras_model, folder: Path) -> str:
    """A SavedModel (`model/`) with a serving signature: loads without the custom objects of tfmot wrappers."""
    target = folder / "model"
    if type(keras_model).__module__.startswith("tf_keras"):  # what tfmot trains
        keras_model.save(str(target), save_format="tf", include_optimizer=False)
    else:  # Keras 3
        keras_model.export(str(target))
    return "model"

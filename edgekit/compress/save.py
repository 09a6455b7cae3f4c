"""Write a compressed model as a SOURCE edgekit loads without running code from it: an ExportedProgram
for PyTorch modules, a Hugging Face folder for Hugging Face models, a SavedModel for Keras."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgekit.errors import ConversionError, first_line
from edgekit.sources.base import Model

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "merges.txt",
    "vocab.json",
)


def save_torch(module, model: Model, folder: Path) -> str:
    """model.pt2 (torch.export, with a dynamic batch where the module allows one) and weights.safetensors."""
    import torch
    from safetensors.torch import save_file

    from edgekit.sources.torch_source import example_args

    module.eval()
    args = example_args(model)
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: batch} if s.shape and isinstance(s.shape[0], str) else {} for s in model.signature.inputs)
    try:
        program = torch.export.export(module, args, dynamic_shapes=dynamic, strict=False)
    except Exception:  # a module that fixes its batch somewhere: export it as it is traced
        try:
            program = torch.export.export(module, args, strict=False)
        except Exception as e:
            raise ConversionError(f"torch.export cannot capture the compressed model: {first_line(e)}") from None
    torch.export.save(program, str(folder / "model.pt2"))
    save_file(
        {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()},
        str(folder / "weights.safetensors"),
    )
    return "model.pt2"


def save_hf(hf_model, tokenizer_dir: Path | None, folder: Path) -> str:
    """save_pretrained (safetensors) with the source's tokenizer files beside it."""
    hf_model.save_pretrained(str(folder), safe_serialization=True)
    for name in TOKENIZER_FILES:
        if tokenizer_dir is not None and (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, folder / name)
    return "."


def save_keras(keras_model, folder: Path) -> str:
    """A SavedModel (`model/`) with a serving signature: loads without the custom objects of tfmot wrappers."""
    target = folder / "model"
    if type(keras_model).__module__.startswith("tf_keras"):  # what tfmot trains
        keras_model.save(str(target), save_format="tf", include_optimizer=False)
    else:  # Keras 3
        keras_model.export(str(target))
    return "model"

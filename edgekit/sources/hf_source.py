"""Load a local Hugging Face model folder (no hub access) as a torch module with named inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgekit._lazy import require
from edgekit.errors import ModelLoadError, first_line
from edgekit.sources.base import Model, sha256_path
from edgekit.spec import Signature, TensorSpec


def _wrapper(torch, model, input_names: list[str]):
    """An nn.Module taking the named tensors positionally and returning a tuple of tensors."""

    class HFWrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args):
            out = self.model(**dict(zip(input_names, args)), return_dict=True)
            return tuple(v for v in out.values() if isinstance(v, torch.Tensor))

    return HFWrapper().eval()


def transformers_offline(purpose: str):
    """transformers, set up the one way edgekit uses it: no hub access, no advisory chatter, no progress bars."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    transformers = require("transformers", purpose)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def load_hf(path: Path, inputs: tuple[TensorSpec, ...] = ()) -> Model:
    torch = require("torch", "Loading a Hugging Face model")
    transformers = transformers_offline("Loading a Hugging Face model")
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path}/config.json is unreadable: {e}") from None
    archs = config.get("architectures") or []
    auto = transformers.AutoModel
    if any(a.endswith("ForSequenceClassification") for a in archs):
        auto = transformers.AutoModelForSequenceClassification
    try:
        model = auto.from_pretrained(str(path), local_files_only=True).eval()
    except Exception as e:
        raise ModelLoadError(f"Cannot load the Hugging Face model in {path}: {first_line(e)}") from None
    tokenizer_dir = path if (path / "tokenizer.json").exists() or (path / "vocab.txt").exists() else None
    import inspect

    accepted = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
    overrides = {s.name: s for s in inputs}
    specs = tuple(overrides.get(n, TensorSpec(n, "int64", ("batch", "sequence"))) for n in names)
    with torch.no_grad():
        probe = {n: torch.ones((1, 8), dtype=torch.int64) for n in names}
        out = model(**probe, return_dict=True)
    out_names = tuple(k for k, v in out.items() if isinstance(v, torch.Tensor))
    # a head's logits are class scores (top-1 agreement applies); hidden states and pooled vectors are features
    outputs = tuple(TensorSpec(n, "float32", (), role="scores" if n == "logits" else "features") for n in out_names)
    return Model(
        "torch",
        "hf",
        str(path),
        _wrapper(torch, model, names),
        Signature(specs, outputs),
        sha256_path(path),
        path.name,
        tokenizer_dir=tokenizer_dir,
        extra={"config": config, "vocab_size": config.get("vocab_size")},
    )

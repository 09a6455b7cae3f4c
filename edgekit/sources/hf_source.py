"""Load a local Hugging Face model folder, or a model id from the local hub cache (never a download), text or
vision, as a torch module with named inputs."""

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


def hub_snapshot(repo_id: str) -> Path:
    """The folder of a model id (org/name) in the local Hugging Face cache (HF_HUB_CACHE, HF_HOME, or
    ~/.cache/huggingface): edgekit never downloads; a model that is not there is named with how to get it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hub = require("huggingface_hub", "Finding a Hugging Face model id in the local cache")
    try:
        return Path(hub.snapshot_download(repo_id=repo_id, local_files_only=True))
    except Exception as e:  # LocalEntryNotFoundError and friends
        raise ModelLoadError(
            f"'{repo_id}' is neither a path nor a model in the local Hugging Face cache ({first_line(e, 160)}).",
            hint=f"edgekit does not download: fetch it where there is a network (huggingface-cli download {repo_id}) "
            "and point HF_HUB_CACHE at that cache, or give the model's folder.",
        ) from None


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
    elif any(a.endswith("ForImageClassification") for a in archs):
        auto = transformers.AutoModelForImageClassification
    try:
        model = auto.from_pretrained(str(path), local_files_only=True).eval()
    except Exception as e:
        raise ModelLoadError(f"Cannot load the Hugging Face model in {path}: {first_line(e)}") from None
    tokenizer_dir = path if (path / "tokenizer.json").exists() or (path / "vocab.txt").exists() else None
    import inspect

    accepted = inspect.signature(model.forward).parameters
    overrides = {s.name: s for s in inputs}
    if "input_ids" in accepted:  # text: token ids and masks of a free length
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
        specs = tuple(overrides.get(n, TensorSpec(n, "int64", ("batch", "sequence"))) for n in names)
        probe = {n: torch.ones((1, 8), dtype=torch.int64) for n in names}
    elif "pixel_values" in accepted:  # vision: an image batch at the config's size
        names = ["pixel_values"]
        side = config.get("image_size", 224)
        height, width = (side, side) if isinstance(side, int) else side
        shape = ("batch", config.get("num_channels", 3), height, width)
        specs = (overrides.get("pixel_values", TensorSpec("pixel_values", "float32", shape)),)
        probe = {"pixel_values": torch.zeros((1, *shape[1:]), dtype=torch.float32)}
    else:
        raise ModelLoadError(f"The Hugging Face model in {path} takes neither input_ids nor pixel_values.")
    with torch.no_grad():
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

"""Low-rank factorization: each Linear layer's weight W (out x in) becomes two thin layers from its truncated
SVD, W ≈ (U_r √S_r)(√S_r V_rᵀ), then the model is optionally fine-tuned.

A layer is factorized only where it saves parameters (r·(in + out) < in·out); the classifier (the last Linear
with one output per class) and Linear layers whose weight is shared with another module (tied embeddings) are
left whole. The output is a PyTorch program (model.pt2 + weights): a Hugging Face configuration cannot say
"this projection is two thin ones".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.compress.common import (
    Checkpoints,
    CompressResult,
    TrainSettings,
    file_sizes,
    fit_classifier,
    labelled_split,
    output_layer,
    parameter_count,
    publish,
    scores,
    seed_everything,
    torch_logits,
)
from edgekit.compress.save import save_torch
from edgekit.errors import UsageError
from edgekit.progress import SILENT, Progress
from edgekit.sources import load
from edgekit.sources.base import Model
from edgekit.spec import TensorSpec


def choose_rank(singular: np.ndarray, rank_ratio: float | None = None, energy: float | None = None) -> int:
    """The rank kept: `rank_ratio` of the full rank (rounded up), or the fewest singular values whose squares
    hold `energy` of the total."""
    if rank_ratio is not None:
        return max(1, math.ceil(rank_ratio * len(singular)))
    assert energy is not None
    share = np.cumsum(singular.astype(np.float64) ** 2) / float(np.sum(singular.astype(np.float64) ** 2))
    return min(len(singular), int(np.searchsorted(share, energy - 1e-12)) + 1)


def _shared_weights(module) -> set[int]:
    """ids of parameters that more than one module holds (tied input and output embeddings)."""
    seen: dict[int, int] = {}
    for _, p in module.named_parameters(remove_duplicate=False):
        seen[id(p)] = seen.get(id(p), 0) + 1
    return {k for k, n in seen.items() if n > 1}


def factorize(module, rank_ratio: float | None, energy: float | None, classes: int) -> list[dict[str, Any]]:
    """Replace the Linear layers of `module` in place by their truncated-SVD pairs; one record per layer looked
    at (factorized with its rank and the energy it keeps, or why it was left whole)."""
    import torch

    skip = {id(m) for m in output_layer(module, classes)}
    shared = _shared_weights(module)
    records = []
    for name, layer in list(module.named_modules()):
        if not isinstance(layer, torch.nn.Linear):
            continue
        n_out, n_in = layer.weight.shape
        record: dict[str, Any] = {"layer": name, "in": n_in, "out": n_out}
        if id(layer) in skip or id(layer.weight) in shared:
            records.append({**record, "kept": "the classifier" if id(layer) in skip else "weight shared (tied)"})
            continue
        with torch.no_grad():
            u, s, vh = torch.linalg.svd(layer.weight.detach().double(), full_matrices=False)
        rank = choose_rank(s.numpy(), rank_ratio, energy)
        if rank * (n_in + n_out) >= n_in * n_out:
            records.append({**record, "rank": rank, "kept": "no saving at this rank"})
            continue
        root = s[:rank].sqrt()
        first = torch.nn.Linear(n_in, rank, bias=False, dtype=layer.weight.dtype)
        second = torch.nn.Linear(rank, n_out, bias=layer.bias is not None, dtype=layer.weight.dtype)
        with torch.no_grad():
            first.weight.copy_((root[:, None] * vh[:rank]).to(layer.weight.dtype))
            second.weight.copy_((u[:, :rank] * root[None, :]).to(layer.weight.dtype))
            if layer.bias is not None:
                second.bias.copy_(layer.bias)
        parent_name, _, child = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, child, torch.nn.Sequential(first, second))
        kept = float((s[:rank] ** 2).sum() / (s**2).sum())
        records.append({**record, "rank": rank, "energy_kept": round(kept, 4)})
    return records


def lowrank(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    rank_ratio: float | None = None,
    energy: float | None = None,
    finetune_epochs: int = 30,
    val: str | Path | None = None,
    settings: TrainSettings = TrainSettings(),
    inputs: tuple[TensorSpec, ...] = (),
    weights: str | Path | None = None,
    resume: bool = False,
    progress: Progress = SILENT,
) -> CompressResult:
    """Factorize the Linear layers of `model` by truncated SVD (`rank_ratio` of each layer's rank, or the rank
    that keeps `energy` of its squared singular values), then fine-tune on `data` for `finetune_epochs`."""
    if (rank_ratio is None) == (energy is None):
        raise UsageError("Give one of --rank-ratio (e.g. 0.25) or --energy (e.g. 0.9), not both or neither.")
    for flag, value in (("--rank-ratio", rank_ratio), ("--energy", energy)):
        if value is not None and not 0 < value <= 1:
            raise UsageError(f"{flag} {value} is outside (0, 1].")
    settings = settings.with_epochs(finetune_epochs).with_default_lr(1e-3)
    out = Path(out)
    seed_everything(settings.seed)
    with progress.step(f"load {model}"):
        source = load(model, inputs, weights)
    if source.format != "torch":
        raise UsageError(
            f"Low-rank factorization takes PyTorch sources; {model} is {source.format}.",
            hint="Prune or distill a Keras model instead (edgekit compress prune / distill).",
        )
    return _lowrank_torch(source, data, out, rank_ratio, energy, val, settings, resume, progress)


def _lowrank_torch(
    source: Model,
    data,
    out: Path,
    rank_ratio: float | None,
    energy: float | None,
    val,
    settings: TrainSettings,
    resume: bool,
    progress: Progress,
) -> CompressResult:
    train, validation = labelled_split(data, val, source, settings, "Fine-tuning after factorization")
    scored = validation or train
    module = source.obj
    classes = torch_logits(module, train.head(2), source).shape[-1]
    before = scores(torch_logits(module, scored, source), scored.labels)
    params_before = parameter_count(module)
    with progress.step("factorize the Linear layers (truncated SVD)"):
        layers = factorize(module, rank_ratio, energy, classes)
    if not any("energy_kept" in r for r in layers):
        raise UsageError(
            f"No Linear layer of {source.source} gets smaller at this setting "
            f"({'; '.join(str(r['layer']) + ': ' + str(r['kept']) for r in layers) or 'it has no Linear layers'}).",
            hint="Ask for a lower --rank-ratio or --energy.",
        )
    factorized = scores(torch_logits(module, scored, source), scored.labels)
    checkpoints = Checkpoints(out)
    run = fit_classifier(module, source, train, validation, settings, checkpoints, resume, progress)
    record: dict[str, Any] = {
        "method": "lowrank",
        "rank_ratio": rank_ratio,
        "energy": energy,
        "layers": layers,
        "settings": settings.__dict__,
        "parameters_before": params_before,
        "parameters_after": parameter_count(module),
        "source": {"path": source.source, "sha256": source.source_hash},
        "data": {"path": train.source, "sha256": train.sha256, "samples": len(train)},
        "metrics_before": before,
        "metrics_factorized": factorized,
        "metrics_after": scores(torch_logits(module, scored, source), scored.labels),
        "history": run.history,
        "training": run.stopped,
    }

    def write(folder: Path) -> str:
        entry = save_torch(module, source, folder, train, record)
        record["size"] = file_sizes(folder, "weights.safetensors")
        return entry

    publish(out, write, record)
    checkpoints.remove()
    return CompressResult(out, record, run.history)

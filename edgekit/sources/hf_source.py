"""Load a local Hugging Face model folder, or a model id from the local hub cache (never a download), text or
vision, as a torch module with named inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgekit._lazy import require
from edgekit.errors import ModelLoadError, UsageError, first_line
from edgekit.sources.base import Model, sha256_path
from edgekit.spec import Signature, TensorSpec


def _wrapper(torch, model, input_names: list[str], call_kwargs: dict):
    """An nn.Module taking the named tensors positionally and returning a tuple of tensors; `call_kwargs` are keyword
    arguments every call gets (use_cache=False for a causal LM: one forward pass, no key/value cache out)."""

    class HFWrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args):
            out = self.model(**dict(zip(input_names, args)), **call_kwargs, return_dict=True)
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


# the default length text data is padded to where the model and --input leave it free (edgekit.data.tokenize)
DEFAULT_SEQUENCE = 128


def text_inputs(config: dict, accepted, tokenizer_dir: Path | None) -> list[str]:
    """The text inputs the model uses: those its forward takes, less token types where it has no type
    embeddings (DeBERTa-v2: type_vocab_size 0; GPT-2: none of its own, it would look them up as tokens) or its
    tokenizer makes none (RoBERTa's: the model then uses its zeros)."""
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
    if "token_type_ids" in names:
        made = _tokenizer_inputs(tokenizer_dir)
        if not config.get("type_vocab_size") or (made is not None and "token_type_ids" not in made):
            names.remove("token_type_ids")
    return names


def _tokenizer_inputs(tokenizer_dir: Path | None) -> list[str] | None:
    """The inputs the folder's tokenizer produces (its model_input_names), or None where that is not known."""
    if tokenizer_dir is None:
        return None
    transformers = transformers_offline("Reading the model's tokenizer")
    try:
        return list(
            transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True).model_input_names
        )
    except Exception:  # an unreadable tokenizer is reported where text data is read, with its own message
        return None


def longest_sequence(model, config: dict) -> int | None:
    """The longest token sequence the model's absolute position embeddings allow: max_position_embeddings,
    less RoBERTa's offset (its positions start after the padding index); None where nothing bounds it."""
    limit = config.get("max_position_embeddings")
    if not isinstance(limit, int) or limit <= 0:
        return None
    embeddings = getattr(getattr(model, "base_model", model), "embeddings", None)
    padding_idx = getattr(embeddings, "padding_idx", None)
    if isinstance(padding_idx, int) and getattr(embeddings, "position_embeddings", None) is not None:
        limit -= padding_idx + 1  # RoBERTa, XLM-R, CamemBERT...: position ids run from padding_idx + 1
    return limit


def _within(specs: tuple[TensorSpec, ...], longest: int | None, path: Path) -> tuple[TensorSpec, ...]:
    """The text specs, checked: one shape for all of them (ids, mask and token types go together), a sequence
    within the model's limit (a longer --input is refused, exit 2); a free sequence is fixed to the limit where
    the limit is below the length text data is padded to."""
    static = {str(s): s.shape for s in specs if all(isinstance(d, int) for d in s.shape)}
    if len(set(static.values())) > 1:
        raise UsageError(
            f"The text inputs of the model in {path} take one shape together; --input gives {', '.join(static)}.",
            hint="Give every text input the same shape, e.g. 1x128.",
        )
    if longest is None:
        return specs
    out = []
    for spec in specs:
        seq = spec.shape[1] if len(spec.shape) > 1 else None
        if isinstance(seq, int) and seq > longest:
            raise UsageError(
                f"--input {spec}: the model in {path} takes sequences of at most {longest} tokens "
                f"(its position embeddings), not {seq}.",
                hint=f"Give a sequence length of {longest} or less, e.g. {spec.name}:{spec.dtype}:1x{longest}.",
            )
        if isinstance(seq, str) and longest < DEFAULT_SEQUENCE:
            spec = TensorSpec(spec.name, spec.dtype, (spec.shape[0], longest, *spec.shape[2:]))
        out.append(spec)
    return tuple(out)


# the head a folder's config names (its `architectures`), and the transformers class that loads it with that head;
# any other architecture loads as its base model (hidden states out)
_HEADS = {
    "ForSequenceClassification": "AutoModelForSequenceClassification",
    "ForImageClassification": "AutoModelForImageClassification",
    "ForCausalLM": "AutoModelForCausalLM",
    "LMHeadModel": "AutoModelForCausalLM",  # GPT-2's name for its causal LM
}


def _auto_class(config: dict) -> str:
    """The transformers Auto class for the head the config's architectures end with (AutoModel: none of _HEADS)."""
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    return next((auto for suffix, auto in _HEADS.items() for a in archs if a.endswith(suffix)), "AutoModel")


def is_causal_lm(config: dict) -> bool:
    """Whether a folder's config names a causal-LM head (...ForCausalLM, GPT-2's ...LMHeadModel)."""
    return _auto_class(config) == "AutoModelForCausalLM"


def load_hf(path: Path, inputs: tuple[TensorSpec, ...] = ()) -> Model:
    torch = require("torch", "Loading a Hugging Face model")
    transformers = transformers_offline("Loading a Hugging Face model")
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path}/config.json is unreadable: {e}") from None
    auto = getattr(transformers, _auto_class(config))
    try:
        model = auto.from_pretrained(str(path), local_files_only=True).eval()
    except Exception as e:
        raise ModelLoadError(f"Cannot load the Hugging Face model in {path}: {first_line(e)}") from None
    tokenizer_dir = path if (path / "tokenizer.json").exists() or (path / "vocab.txt").exists() else None
    import inspect

    accepted = inspect.signature(model.forward).parameters
    call_kwargs = {"use_cache": False} if "use_cache" in accepted else {}
    overrides = {s.name: s for s in inputs}
    longest = None  # the longest token sequence (text models)
    if "input_ids" in accepted:  # text: token ids and masks of a free length
        names = text_inputs(config, accepted, tokenizer_dir)
        longest = longest_sequence(model, config)
        # ids, mask and token types go together: those --input leaves out take the shape it gives the others
        given = next((overrides[n].shape for n in names if n in overrides), ("batch", "sequence"))
        specs = tuple(overrides.get(n, TensorSpec(n, "int64", given)) for n in names)
        specs = _within(specs, longest, path)
        # free dims as the given ones fix them (every text input has the same length), else batch 1 x 8
        fixed = [s.shape[1] for s in specs if len(s.shape) > 1 and isinstance(s.shape[1], int)]
        sizes = {"batch": 1, "sequence": fixed[0] if fixed else min(8, longest or 8)}
        probe = {
            s.name: torch.ones(s.concrete_shape(sizes, default=sizes["sequence"]), dtype=torch.int64) for s in specs
        }
    elif "pixel_values" in accepted:  # vision: an image batch at the config's size
        names = ["pixel_values"]
        side = config.get("image_size", 224)
        height, width = (side, side) if isinstance(side, int) else side
        shape = ("batch", config.get("num_channels", 3), height, width)
        specs = (overrides.get("pixel_values", TensorSpec("pixel_values", "float32", shape)),)
        probe = {"pixel_values": torch.zeros((1, *specs[0].concrete_shape()[1:]), dtype=torch.float32)}
    else:
        raise ModelLoadError(f"The Hugging Face model in {path} takes neither input_ids nor pixel_values.")
    try:
        with torch.no_grad():
            out = model(**probe, **call_kwargs, return_dict=True)
    except Exception as e:  # the model's own forward refuses these shapes: name them, not its traceback
        raise ModelLoadError(
            f"The Hugging Face model in {path} fails on inputs "
            + ", ".join(f"{n} of shape {tuple(t.shape)}" for n, t in probe.items())
            + f": {first_line(e)}",
            hint="Give --input NAME:DTYPE:SHAPE with the shapes the model takes.",
        ) from None
    out_names = tuple(k for k, v in out.items() if isinstance(v, torch.Tensor))
    # a head's logits are class scores (top-1 agreement applies); hidden states and pooled vectors are features
    outputs = tuple(TensorSpec(n, "float32", (), role="scores" if n == "logits" else "features") for n in out_names)
    return Model(
        "torch",
        "hf",
        str(path),
        _wrapper(torch, model, names, call_kwargs),
        Signature(specs, outputs),
        sha256_path(path),
        path.name,
        tokenizer_dir=tokenizer_dir,
        extra={"config": config, "vocab_size": config.get("vocab_size")},
    )

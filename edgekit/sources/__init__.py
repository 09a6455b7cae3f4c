"""load(source) -> Model: recognizes the source kind and dispatches to its loader."""

from __future__ import annotations

import json
import re
from pathlib import Path

from edgekit.errors import ModelLoadError, UsageError
from edgekit.sources.base import Model, sha256_path
from edgekit.spec import InputSpecs, Signature, TensorSpec, parse_input_spec, parse_input_specs

COMPRESS_FILE = "compress.json"  # written by edgekit compress beside the model it names

KINDS = (
    ".onnx file; Keras .keras/.h5 file or SavedModel folder; TorchScript .pt; ExportedProgram .pt2; "
    "local Hugging Face folder (config.json) or a model id (org/name) in the local Hugging Face cache; an edgekit "
    "compress output folder; or package.module:factory"
)
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")  # org/name, resolved in the local hub cache


def load(source: str | Path, inputs: InputSpecs = (), weights: str | Path | None = None) -> Model:
    """Load any supported source; `inputs` (TensorSpecs or `--input` strings) fills in or overrides the signature."""
    inputs = parse_input_specs(inputs)
    text = str(source)
    path = Path(text)
    if not path.exists():
        if _FACTORY.match(text):
            from edgekit.sources.torch_source import load_factory

            return load_factory(text, inputs, Path(weights) if weights else None)
        if _HUB_ID.match(text):
            from edgekit.sources.hf_source import hub_snapshot, load_hf

            model = load_hf(hub_snapshot(text), inputs)
            model.name = text.split("/")[1]  # not the snapshot's commit hash
            return model
        raise ModelLoadError(f"Model source '{text}' does not exist.", hint=f"SOURCE is one of: {KINDS}.")
    if path.is_dir() and (path / COMPRESS_FILE).is_file():
        return _load_compressed(path, inputs)
    return _load_path(path, inputs)


def _load_compressed(folder: Path, inputs: tuple[TensorSpec, ...]) -> Model:
    """An `edgekit compress` output: the model file its compress.json names (inside the folder), carrying
    the compression record as provenance."""
    try:
        record = json.loads((folder / COMPRESS_FILE).read_text())
        entry = (folder / record["source"]).resolve()
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{folder / COMPRESS_FILE} is unreadable: {e}") from None
    if not entry.is_relative_to(folder.resolve()) or not entry.exists():
        raise ModelLoadError(
            f"{folder / COMPRESS_FILE} names a model file outside the folder or missing: {record['source']!r}."
        )
    model = _load_path(entry, inputs)
    recorded = record.get("inputs") or []
    if model.kind == "exported-program" and len(recorded) == len(model.signature.inputs):
        # torch.export names inputs after the forward's parameters (`input` for nn.Sequential, args_0 for
        # *args): the source's own specs were recorded, and the program takes its inputs by position
        specs = tuple(map(parse_input_spec, recorded))
        for given in inputs:  # --input may restate them, not contradict what the program fixed
            saved = next((spec for spec in specs if spec.name == given.name), None)
            if saved is not None and (
                len(given.shape) != len(saved.shape)
                or any(isinstance(d, int) and d != g for d, g in zip(saved.shape, given.shape))
            ):
                raise UsageError(
                    f"--input {given} does not fit {entry.name}, whose input is {saved}.",
                    hint="Leave --input out: the compressed program records its inputs.",
                )
        model.signature = Signature(specs, model.signature.outputs)
    model.extra["compression"] = {k: v for k, v in record.items() if k not in ("source", "inputs")}
    if record.get("vocab_size"):  # invented token ids must stay inside the vocabulary of a saved program
        model.extra.setdefault("vocab_size", record["vocab_size"])
    if model.tokenizer_dir is None and any((folder / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        model.tokenizer_dir = folder  # the source's tokenizer, copied beside the compressed model
    model.name = folder.name
    return model


def _load_path(path: Path, inputs: tuple[TensorSpec, ...]) -> Model:
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            from edgekit.sources.keras_source import load_keras

            return load_keras(path, inputs)
        if (path / "config.json").exists():
            from edgekit.sources.hf_source import load_hf

            return load_hf(path, inputs)
        raise ModelLoadError(
            f"Folder {path} is neither a SavedModel (saved_model.pb) nor a Hugging Face model (config.json)."
        )
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from edgekit.sources.onnx_source import load_onnx

        return load_onnx(path, inputs)
    if suffix in (".keras", ".h5"):
        from edgekit.sources.keras_source import load_keras

        return load_keras(path, inputs)
    if suffix == ".pt":
        from edgekit.sources.torch_source import load_torchscript

        return load_torchscript(path, inputs)
    if suffix == ".pt2":
        from edgekit.sources.torch_source import load_exported_program

        return load_exported_program(path, inputs)
    raise ModelLoadError(f"Unknown model file type '{suffix or path.name}'.", hint=f"SOURCE is one of: {KINDS}.")


__all__ = ["Model", "load", "sha256_path"]

"""Load Keras models (Keras 3 and tf_keras; .keras, .h5, SavedModel) as a traced tf.function.

tf2onnx's from_keras fails on Keras 3 models, so every Keras flavour is wrapped the same way:
a tf.function with a fixed input signature, which both the converter and the parity runner call.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgekit._lazy import require
from edgekit.errors import ModelLoadError, UsageError, first_line
from edgekit.sources.base import Model, sha256_path
from edgekit.sources.trust import refuse_code, unsafe_allowed
from edgekit.spec import Signature, TensorSpec


def quiet_tf(purpose: str = "Loading a Keras or TensorFlow model"):
    """TensorFlow, imported with its C++ logging off (set before the first import to take effect)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    return require("tensorflow", purpose)


def _spec_from_tf(name: str, tf_spec) -> TensorSpec:
    dims = tuple(
        d if d is not None else ("batch" if i == 0 else f"{name}_dim{i}") for i, d in enumerate(tf_spec.shape.as_list())
    )
    return TensorSpec(name, tf_spec.dtype.name, dims)


_KERAS_MODULES = ("keras", "tf_keras", "tensorflow", "builtins")  # where a config's classes may come from


def keras_config(path: Path) -> object:
    """The model config a Keras file stores (`model_config` of an .h5, config.json of a .keras zip), read as
    JSON without deserializing anything; None when it has none (a weights-only .h5)."""
    import json
    import zipfile

    try:
        if path.suffix == ".h5":
            h5py = require("h5py", "Reading a Keras .h5 file")
            with h5py.File(str(path), "r") as f:
                raw = f.attrs.get("model_config")
        else:
            with zipfile.ZipFile(path) as z:
                raw = z.read("config.json") if "config.json" in z.namelist() else None
    except (OSError, zipfile.BadZipFile, KeyError) as e:
        raise ModelLoadError(f"{path} is not a readable Keras file: {first_line(e)}") from None
    if raw is None:
        return None
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError as e:
        raise ModelLoadError(f"{path} has a model config that is not JSON: {first_line(e)}") from None


def code_carriers(config: object) -> list[str]:
    """What in a Keras config would run Python when loaded: Lambda layers (stored bytecode or source) and
    classes from modules outside Keras and TensorFlow (the loader would import them)."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        if not isinstance(node, dict):
            return
        name = (node.get("config") or {}).get("name") if isinstance(node.get("config"), dict) else None
        if node.get("class_name") == "Lambda":
            found.append(f"Lambda layer '{name}'")
        module = node.get("module")
        if isinstance(module, str) and module.split(".")[0] not in _KERAS_MODULES and "class_name" in node:
            found.append(f"class {module}.{node['class_name']}" + (f" (layer '{name}')" if name else ""))
        for value in node.values():
            walk(value)

    walk(config)
    return list(dict.fromkeys(found))


def _load_keras_object(path: Path):
    """Try Keras 3 then tf_keras (tf_keras first for legacy .h5); return (model, flavour). A file whose config
    holds code (Lambda layers, classes from other modules) is refused first, unless unsafe_load() is on."""
    refuse_code(path, code_carriers(keras_config(path)))
    order = ["tf_keras", "keras"] if path.suffix == ".h5" else ["keras", "tf_keras"]
    errors = []
    for flavour in order:
        module = require(flavour, "Loading a Keras model")
        try:
            # safe_mode (Keras' own refusal of Lambda bytecode in .keras files) follows the same opt-in
            model = module.models.load_model(str(path), compile=False, safe_mode=not unsafe_allowed())
            return model, ("keras3" if flavour == "keras" else "tf-keras")
        except Exception as e:  # each flavour raises its own types
            errors.append(f"{flavour}: {first_line(e, 200)}")
    raise ModelLoadError(f"Cannot load {path} as a Keras model.", hint="\n".join(errors))


def _keras_function(tf, model, overrides: dict[str, TensorSpec]):
    try:
        inputs = model.inputs
    except AttributeError:  # a subclassed model records no inputs: the user names them
        if not overrides:
            raise UsageError(
                f"The Keras model {model.name} ({type(model).__name__}) is subclassed and records no inputs.",
                hint="Pass --input NAME:DTYPE:SHAPE for each input of its call(), e.g. x:float32:batchx8.",
            ) from None
        inputs = None
    specs = list(overrides.values()) if inputs is None else []
    for i, t in enumerate(inputs or ()):
        name = (getattr(t, "name", None) or f"input_{i}").split(":")[0]
        spec = overrides.get(name) or _spec_from_tf(name, tf.TensorSpec(t.shape, t.dtype))
        specs.append(spec)
    tf_specs = [
        tf.TensorSpec([d if isinstance(d, int) else None for d in s.shape], s.dtype, name=s.name) for s in specs
    ]

    @tf.function(input_signature=tf_specs)
    def fn(*args):
        out = model(list(args) if len(args) > 1 else args[0], training=False)
        return out if isinstance(out, (list, tuple)) else [out]

    return fn, specs


def _savedmodel_function(tf, path: Path):
    loaded = tf.saved_model.load(str(path))
    if "serving_default" not in loaded.signatures:
        raise ModelLoadError(
            f"SavedModel {path} has no 'serving_default' signature.",
            hint=f"Signatures found: {', '.join(loaded.signatures) or 'none'}.",
        )
    sig = loaded.signatures["serving_default"]
    named = sig.structured_input_signature[1]
    names = sorted(named)
    specs = [_spec_from_tf(n, named[n]) for n in names]
    out_keys = sorted(sig.structured_outputs)

    @tf.function(input_signature=[tf.TensorSpec(named[n].shape, named[n].dtype, name=n) for n in names])
    def fn(*args):
        result = sig(**dict(zip(names, args)))
        return [result[k] for k in out_keys]

    fn._edgekit_keepalive = loaded  # the signature needs its object alive
    return fn, specs, out_keys


def load_keras(path: Path, inputs: tuple[TensorSpec, ...] = ()) -> Model:
    tf = quiet_tf()
    overrides = {s.name: s for s in inputs}
    if path.is_dir():
        try:
            fn, specs, out_names = _savedmodel_function(tf, path)
        except ModelLoadError:
            raise
        except Exception as e:
            raise ModelLoadError(f"Cannot load the SavedModel {path}: {first_line(e)}") from None
        kind, keras_model = "savedmodel", None
    else:
        keras_model, kind = _load_keras_object(path)
        fn, specs = _keras_function(tf, keras_model, overrides)
        try:
            n_outputs = len(keras_model.outputs)
        except AttributeError:  # subclassed: outputs are known only after a call; most have one
            n_outputs = 1
        out_names = [f"output_{i}" for i in range(n_outputs)]
    unknown = set(overrides) - {s.name for s in specs}
    if unknown:
        raise UsageError(
            f"--input names {', '.join(sorted(unknown))} are not inputs of {path}.",
            hint=f"Its inputs: {', '.join(s.name for s in specs)}.",
        )
    outputs = tuple(TensorSpec(n, "float32", ()) for n in out_names)
    return Model(
        "keras",
        kind,
        str(path),
        fn,
        Signature(tuple(specs), outputs),
        sha256_path(path),
        path.stem if path.is_file() else path.name,
        extra={"keras_model": keras_model},
    )

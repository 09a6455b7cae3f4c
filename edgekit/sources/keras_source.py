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


def _load_keras_object(path: Path):
    """Try Keras 3 then tf_keras (tf_keras first for legacy .h5); return (model, flavour)."""
    order = ["tf_keras", "keras"] if path.suffix == ".h5" else ["keras", "tf_keras"]
    errors = []
    for flavour in order:
        module = require(flavour, "Loading a Keras model")
        try:
            return module.models.load_model(str(path), compile=False), ("keras3" if flavour == "keras" else "tf-keras")
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

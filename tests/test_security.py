"""Model files are untrusted data: loading one never runs code stored in it unless the user opts in.

The files here carry a Keras Lambda layer whose stored function, when run, creates a marker file: the test
sees whether loading ran it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli

_BUILD = """
import sys, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
flavour, path, marker = sys.argv[1:]
keras = __import__("tf_keras" if flavour == "tf_keras" else "keras")
code = "lambda x: (__import__('pathlib').Path(%r).touch(), x)[1]" % marker
inputs = keras.Input((4,), name="x")
hidden = keras.layers.Dense(3, name="dense")(inputs)
outputs = keras.layers.Lambda(eval(code), name="sneaky")(hidden)
keras.Model(inputs, outputs).save(path)
"""


def _build(flavour: str, path: Path, marker: Path) -> Path:
    """A Keras model with a code-carrying Lambda layer, saved by `flavour` (tf_keras .h5, Keras 3 .keras)."""
    result = subprocess.run([sys.executable, "-c", _BUILD, flavour, str(path), str(marker)], capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    marker.unlink()  # building the model called the function once
    return path


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "code-ran"
    return {
        "h5": _build("tf_keras", folder / "evil.h5", marker),
        "keras": _build("keras", folder / "evil.keras", marker),
        "marker": marker,
    }


@pytest.mark.parametrize("kind", ["h5", "keras"])
def test_a_keras_file_with_a_lambda_layer_is_refused_without_running_it(evil, kind, tmp_path, capsys):
    code, out = run_cli(capsys, "export", evil[kind], "-t", "onnx-fp32", "-o", tmp_path / "out")
    assert code == 2 and "Lambda layer 'sneaky'" in out and "--unsafe-load" in out, out
    assert not evil["marker"].exists(), "loading the file ran its code"
    assert not (tmp_path / "out").exists()  # nothing written: the folder the command created goes again


def test_unsafe_load_is_the_opt_in(evil, tmp_path, capsys):
    """With --unsafe-load the legacy .h5 loads (its Lambda runs, as the user allowed) and exports."""
    code, out = run_cli(capsys, "export", evil["h5"], "-t", "onnx-fp32", "-o", tmp_path, "--unsafe-load")
    assert code == 0, out
    assert evil["marker"].exists()
    evil["marker"].unlink()


def test_the_python_api_refuses_too_and_opts_in_with_a_context(evil):
    import edgekit
    from edgekit.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="Lambda layer 'sneaky'"):
        edgekit.load(evil["keras"])
    assert not evil["marker"].exists()
    with edgekit.unsafe_load():
        model = edgekit.load(evil["keras"])
    assert model.kind == "keras3"
    evil["marker"].unlink(missing_ok=True)


def test_a_config_naming_a_class_from_another_module_is_refused():
    """A Keras config may name any importable module; the loader would import it."""
    from edgekit.sources.keras_source import code_carriers

    config = {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": [
                {"module": "keras.layers", "class_name": "Dense", "config": {"name": "ok"}},
                {"module": "os", "class_name": "system", "config": {"name": "bad"}},
            ],
        },
    }
    assert code_carriers(config) == ["class os.system (layer 'bad')"]


_WORKER = str(Path(__file__).resolve().parent.parent / "edgekit" / "bench" / "worker.py")


@pytest.mark.parametrize(
    "probe, starts",
    [
        (["-c", "import onnxruntime"], True),  # without edgekit it starts here, so the check can fail
        (["-c", "import edgekit; import onnxruntime"], False),
        ([_WORKER, "--env"], False),  # the worker's version probe, as ssh starts it: no edgekit, a clean environment
    ],
    ids=["onnxruntime-alone", "edgekit-first", "worker-env-probe"],
)
def test_onnx_runtime_telemetry_is_off_in_edgekit(tmp_path, probe, starts):
    """ONNX Runtime 1.32 starts Microsoft's 1DS telemetry on import: a session file, $TMPDIR/.ses, and an event
    queue under ~/.cache/Microsoft. It starts only where it can write that queue and where no CI variable (CI,
    GITHUB_ACTIONS, JENKINS_URL, ...) is set, so each probe gets a minimal environment, as ssh gives, with a
    writable home of its own. Without edgekit both traces appear; in edgekit's process and its worker, neither.
    Each probe runs in a network namespace of its own (`unshare --net`: a loopback that is down, nothing else),
    so the control case, which starts the telemetry on purpose, cannot send anything."""
    import os
    import shutil

    isolate = ["unshare", "--net", "--"]
    if shutil.which("unshare") is None or subprocess.run([*isolate, "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here (unshare --net needs root or user namespaces)")
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(tmp)}
    done = subprocess.run([*isolate, sys.executable, *probe], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-500:]
    traces = [p.relative_to(tmp_path) for p in (tmp / ".ses", home / ".cache" / "Microsoft") if p.exists()]
    assert bool(traces) is starts, (traces, done.stdout[-300:], done.stderr[-500:])

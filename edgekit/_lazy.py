"""Import optional heavy stacks only when a backend needs them, naming the extra when missing."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from edgekit.errors import MissingDependencyError

# importable module -> the extra that installs it, for the stacks several parts of edgekit share; a backend's own
# runtime names its extra where it imports it (require(..., extra=...)) and in its Backend.extra
EXTRAS = {
    "torch": "torch",
    "onnxscript": "torch",
    "safetensors": "torch",
    "tensorflow": "tensorflow",
    "tf_keras": "tensorflow",
    "tf2onnx": "tensorflow",
    "keras": "tensorflow",
    "transformers": "hf",
    "tokenizers": "hf",
    "huggingface_hub": "hf",
    "sklearn": "data",
    "torch_pruning": "compress",
    "tensorflow_model_optimization": "tensorflow",
    "onnx_graphsurgeon": "tensorrt",
    "h5py": "tensorflow",
    "optuna": "search",
}
# importable module -> how to get it where no extra can (NVIDIA's GPU stacks)
INSTALL = {
    "tensorrt": "on a GPU machine: pip install tensorrt-cu12 cuda-python, or docker/tensorrt.Dockerfile",
    "cuda": "pip install cuda-python (on a machine with an NVIDIA driver)",
}
# importable module -> packages installed with --no-deps (their metadata pins would break the stack)
_EXECUTORCH = "executorch==1.5.1 torchao==0.18.0 ruamel.yaml==0.19.1 tabulate==0.10.0"
# module -> an optional dependency it imports when installed, which prints on import (torchao reports
# each CUDA kernel library it cannot load on a CPU machine): imported first, silenced
IMPORTS_NOISY_DEPENDENCY = {"transformers": "torchao", "executorch": "torchao"}
NO_DEPS = {
    "onnx2tf": "onnx2tf==1.29.24 onnx-graphsurgeon==0.6.1 sng4onnx==2.0.1",
    "executorch": _EXECUTORCH,
    "torchao": _EXECUTORCH,
    "litert_torch": "litert-torch==0.10.0 litert-converter==0.5.0 jax==0.10.2 jaxlib==0.10.2 "
    "ai-edge-quantizer==0.10.0 immutabledict==4.2.1",
    "pandas": "pandas==3.1.1 python-dateutil==4.0.0 tzdata==2026.6",  # executorch.devtools imports it
}


def require(module: str, purpose: str, extra: str | None = None) -> ModuleType:
    """Import `module`, or raise an error that says which extra installs it (`extra`, for a backend's own stack)."""
    top = module.split(".")[0]
    if top in IMPORTS_NOISY_DEPENDENCY and available(IMPORTS_NOISY_DEPENDENCY[top]):
        from edgekit.quiet import quiet

        with quiet():
            importlib.import_module(IMPORTS_NOISY_DEPENDENCY[top])
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name and e.name.split(".")[0] != top:
            raise
        if top in NO_DEPS:
            raise MissingDependencyError(top, "", purpose, command=f"pip install --no-deps {NO_DEPS[top]}") from None
        if top in INSTALL and top not in EXTRAS:
            raise MissingDependencyError(top, "", purpose, command=INSTALL[top]) from None
        raise MissingDependencyError(top, extra or EXTRAS.get(top, "all"), purpose) from None


def available(module: str) -> bool:
    """True when `module` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False

"""A backend's own export settings, declared once as a typed model in its folder.

Each field of a backend's options model is at once a flag of `edgekit export` (`--field-name`; a bool that
defaults to True becomes `--no-field-name`), a key under the runtime's name in a pipeline's `options:`,
and a key of `edgekit.export(..., options={...})`. Its description is the flag's help. A field whose
json_schema_extra has `engine: True` is an engine-build setting, also taken by `edgekit build-engine`; one whose
json_schema_extra has `search: [values]` is varied over those values by `edgekit search` (only for the targets
of the quantizations its `quantizations: [...]` lists, when it has that key).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class BackendOptions(BaseModel):
    """No options: the model of a backend that declares none, and the base of every backend's own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def engine_host(self) -> str | None:
        """Where the engine stage is built when not on this machine (TensorRT's --build-on); None: here."""
        return None


# One flag, two runtimes (`--adaround`): the help says both, whichever backend declares it first
ADAROUND_HELP = (
    "static int8 (onnx-int8; tflite-int8 through ONNX): learn whether each weight of a Conv, Gemm or MatMul rounds "
    "up or down, against the layer's output on the calibration data (AdaRound; needs the torch extra; seconds per "
    "layer of a small model, minutes for a transformer)"
)

"""Typed, frozen views of the YAML in targets/: targets, quantization schemes, device profiles."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# Runtimes are open: a backend folder brings its own (edgekit.backends.registry), with the format it writes.
Runtime = str
# What the file's weights are stored in: fp32, fp16, int8, int16x8 (int16 activations), int4, or a backend's own
# (Core ML's n-bit palettes: lut); descriptive, like the YAML's description
Precision = Annotated[str, Field(pattern=r"^[a-z0-9]+$")]
# A kind of quantization (none, fp16, dynamic, static, int8-auto, full-integer, int16x8, weight-only, ...): open,
# like runtimes; the known kinds are data in targets/quantizations.yaml, which a target's name is checked against.
Quantization = str
IntType = Literal["int8", "uint8"]
Hardware = Literal["nvidia-gpu"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuantizationKind(_Frozen):
    """One kind of quantization a target may name: what it is, and whether an export takes the device's scheme."""

    description: str
    # never: no int8 settings to choose; optional: the device row's scheme when it has one for the runtime, else
    # the runtime's own; required: the device must have a row for the runtime
    device_scheme: Literal["never", "optional", "required"]


class Requirements(_Frozen):
    modules: tuple[str, ...] = ()  # importable modules the runtime and converter need
    hardware: tuple[Hardware, ...] = ()


class OutputTolerance(_Frozen):
    """Parity bounds for one output (top1_min applies to class-score outputs only)."""

    cosine_min: float = Field(ge=0, le=1)
    top1_min: float = Field(ge=0, le=1)
    max_abs: float | None = None  # optional absolute bound


class Tolerance(OutputTolerance):
    """Parity gate between the source model and the exported file: a default, and overrides by output name."""

    outputs: dict[str, OutputTolerance] = {}

    def for_output(self, name: str) -> OutputTolerance:
        return self.outputs.get(name, self)


class EngineStage(_Frozen):
    """A second stage built where the runtime runs (TensorRT engines are specific to one GPU and TensorRT
    version): the exported file is the portable stage; this one is built from it on the device."""

    suffix: str
    description: str
    requires: Requirements


class Target(_Frozen):
    name: str
    runtime: Runtime
    suffix: str
    precision: Precision
    quantization: Quantization
    needs_calibration: bool
    description: str
    requires: Requirements = Requirements()
    parity: Tolerance
    engine: EngineStage | None = None


class TensorQuant(_Frozen):
    dtype: IntType
    symmetric: bool
    per_channel: bool = False


class Scheme(_Frozen):
    """A named int8 scheme (like NNCF's q8_w_sym), reused across device rows."""

    description: str
    activations: TensorQuant
    weights: TensorQuant
    reduce_range: bool = False
    # Keep a node float when its input's max|x| / p99.9|x| on the calibration data exceeds this.
    max_outlier_ratio: float | None = Field(default=None, gt=1)


class Detect(_Frozen):
    """How to recognize the local machine as this device (CPU flags from /proc/cpuinfo)."""

    arch: str
    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    none_of: tuple[str, ...] = ()

    def explain(self) -> str:
        """The rule in words: `x86_64 with avx2, without avx512_vnni`."""
        parts = [self.arch]
        if self.all_of:
            parts.append(f"with {' and '.join(self.all_of)}")
        if self.any_of:
            parts.append(f"with any of {', '.join(self.any_of)}")
        if self.none_of:
            parts.append(f"without {', '.join(self.none_of)}")
        return " ".join(parts)

    def matches(self, arch: str, flags: set[str]) -> bool:
        return (
            arch == self.arch
            and all(f in flags for f in self.all_of)
            and (not self.any_of or any(f in flags for f in self.any_of))
            and not any(f in flags for f in self.none_of)
        )


class RuntimeRule(_Frozen):
    """What a device wants from one runtime: a scheme, and which ops run in int8."""

    scheme: str
    int8_ops: tuple[str, ...] = ()
    dynamic_ops: tuple[str, ...] = ()
    # within a static int8 target, the ops whose activation ranges are measured at run time instead of
    # calibrated (XNNPACK's dynamically quantized linear: BERT-class activations have outlier channels)
    dynamic_activation_ops: tuple[str, ...] = ()
    engine: str | None = None  # e.g. the torch quantized engine (qnnpack, x86); OpenVINO's device (CPU, GPU, NPU)
    # the precision the runtime computes float layers in (OpenVINO's f32, bf16, f16; None: its default)
    inference_precision: str | None = None
    # MatMul of two activations (attention): quantize it too, or keep it (and the Softmax between) float
    quantize_activation_products: bool = False
    # Accelerators (NPU/DSP) that run only some files and ops: the target quantizations the device
    # accepts (None: any) and the runtime's op names it runs (None: all; TFLite builtin names for litert).
    quantizations: tuple[Quantization, ...] | None = None
    supported_ops: tuple[str, ...] | None = None
    # The runtime as the device ships it (TensorRT from JetPack): its version, and the newest ONNX opset
    # its parser reads (the export writes that opset or older)
    version: str | None = None
    max_opset: int | None = None


class Gpu(_Frozen):
    """An NVIDIA GPU: what TensorRT can build for it."""

    name: str
    compute_capability: str  # e.g. "8.7": engines are specific to it
    fp16: bool = True
    int8: bool = True  # int8 tensor cores (sm_61 and later)
    fp8: bool = False  # Ada and Hopper
    dla_cores: int = 0  # Jetson deep-learning accelerators (AGX Xavier/Orin: 2)


class Device(_Frozen):
    name: str
    description: str
    arch: Literal["x86_64", "aarch64"]
    os: Literal["linux", "android", "ios"]
    features: tuple[str, ...] = ()
    gpu: Gpu | None = None
    transport: Literal["local", "ssh", "adb"] = "local"
    detect: Detect | None = None
    runtimes: dict[Runtime, RuntimeRule]


@dataclass(frozen=True)
class Recipe:
    """What a quantizer needs: the target, the device, the named scheme and the ops to quantize."""

    target: str
    device: str
    quantization: str
    scheme_name: str | None
    scheme: Scheme | None
    int8_ops: tuple[str, ...]
    engine: str | None
    quantize_activation_products: bool = False
    supported_ops: tuple[str, ...] | None = None  # the device runs only these ops (None: any)
    allow_float_fallback: bool = False  # the user accepts float ops in an integer target (listed in the sidecar)
    dynamic_activation_ops: tuple[str, ...] = ()  # see RuntimeRule
    runtime_version: str | None = None  # see RuntimeRule.version
    max_opset: int | None = None  # see RuntimeRule.max_opset
    gpu: Gpu | None = None  # the device's GPU, for runtimes that build for one
    inference_precision: str | None = None  # see RuntimeRule

    def to_json(self) -> dict:
        data = asdict(self)
        data["scheme"] = self.scheme.model_dump() if self.scheme else None
        data["gpu"] = self.gpu.model_dump() if self.gpu else None
        return data

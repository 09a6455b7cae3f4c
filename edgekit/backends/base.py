"""The Backend interface: everything one runtime needs, declared in one object.

A backend owns its converters (edges of the route graph into its format), its quantizers, its runner,
the reading of its files' I/O description, the benchmark-worker loader and the native benchmark tool.
Declaring a backend imports nothing heavy: every step body imports its framework when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol

from typing_extensions import TypeVar

from edgekit.backends.options import BackendOptions
from edgekit.errors import ConversionError, DataError

if TYPE_CHECKING:
    from edgekit.catalog.schema import Recipe, RuntimeRule, Scheme
    from edgekit.data import Dataset
    from edgekit.runners.base import Runner
    from edgekit.sidecar import ArtifactIO
    from edgekit.sources.base import Model


@dataclass(frozen=True)
class StepContext:
    """What every conversion or quantization step receives.

    model: the loaded source; src: the previous step's file, or None when the step starts from the model
    in memory; recipe: the catalog's resolved recipe; plan: the backend's own typed recipe built from it;
    data: calibration data (None when not given); out: where the step writes its file.
    """

    model: Model
    src: Path | None
    recipe: Recipe
    plan: Any
    data: Dataset | None
    out: Path
    batch_size: int = 1  # the batch each calibration feed must have (fixed-batch models)
    keep_float: tuple[str, ...] = ()  # source layers (torch module paths, ONNX node names) to leave float
    # the target's backend's own options (edgekit.backends.options); frozen, so one default is shared safely
    options: BackendOptions = BackendOptions()  # noqa: RUF009

    @property
    def src_file(self) -> Path:
        """The previous step's file; quantizers always have one (the exporter saves an ONNX source first)."""
        if self.src is None:
            raise ConversionError(f"A step after conversion got no file to work on ({self.recipe.target}).")
        return self.src

    @property
    def calibration(self) -> Dataset:
        """The calibration data, for steps that cannot work without it."""
        if self.data is None:
            from edgekit.data import CALIB_HINT

            raise DataError(
                f"Target {self.recipe.target} quantizes activations and needs calibration data.", hint=CALIB_HINT
            )
        return self.data


@dataclass
class StepNotes:
    """What a step did, for the sidecar.

    applied: the quantization the step actually applied ("none", "dynamic", "static", ...), when it
    applied one; details: the facts worth keeping (tool settings, ops quantized, delegation...).
    """

    details: dict[str, Any] = field(default_factory=dict)
    applied: str | None = None


StepFn = Callable[[StepContext], StepNotes]


@dataclass(frozen=True)
class Converter:
    """An edge of the route graph: a model in format `src` becomes a file in format `dst`."""

    src: str
    dst: str
    run: StepFn
    tool: str  # what does the work, for the sidecar
    needs: tuple[str, ...] = ()  # importable modules the converter uses
    quantizes: tuple[str, ...] = ()  # target quantizations the converter applies itself, while converting
    static_shapes: bool = False  # needs every input dim fixed: the whole route then exports with fixed shapes
    # the target quantizations for which this (quantizing) converter honours StepContext.keep_float
    keeps_float: tuple[str, ...] = ()
    # groups of ops the runtime keeps float before any named layer (TFLite: everything but linear/conv)
    float_first: tuple[str, ...] = ()
    # groups it keeps float only when every layer float fails its gate (TFLite: the embedding lookups)
    float_last: tuple[str, ...] = ()
    # the target quantizations whose file from this converter keeps some ops float by design (litert-torch's
    # int8: the non-linear ops): a route ending here is tried after the others, and never for a device that
    # runs only the ops it lists (an accelerator that needs the whole graph in integer)
    partly_float: tuple[str, ...] = ()


# The fallback's group for what a quantizer touches outside the layers: pooling, activations, element-wise ops,
# embedding lookups (EfficientNet's squeeze-excitation pooling and Multiply, a BERT's word-embedding Gather)
NON_LAYER_OPS = "(non-layer ops)"


@dataclass(frozen=True)
class Quantizer:
    """A step after conversion that turns the float file into a quantized one."""

    quantization: str
    run: StepFn
    keeps_float: bool = False  # honours StepContext.keep_float (the exporter's per-layer fallback)
    # groups of ops, not layers, the fallback keeps float only when every layer float fails its gate
    float_last: tuple[str, ...] = ()


@dataclass(frozen=True)
class NativeTool:
    """The runtime's own benchmark program (run on adb and ssh devices with --tool)."""

    name: str
    command: Callable[[str, str, int, int, int], list[str]]  # (tool, model, threads, runs, warmup) -> argv
    parse: Callable[[str], dict[str, Any]]  # its output -> edgekit's run fields
    # more arguments read from the local artifact and its sidecar (trtexec: the input shapes to run)
    extra_args: Callable[[Path], list[str]] = lambda artifact: []
    # where the device has the tool installed (trtexec beside TensorRT): find it there (Transport -> path)
    locate: Callable[[Any], str] | None = None


@dataclass(frozen=True)
class GenerationTool:
    """The runtime's own generation benchmark (llama.cpp's llama-bench, ExecuTorch's llama_main), run by
    `benchmark --generate --tool`."""

    name: str
    # (tool, the file on the device, the file here, threads, prompt tokens, new tokens, repetitions) -> the
    # commands one repetition of the benchmark runs, each a fresh process
    commands: Callable[[str, str, Path, int, int, int, int], list[list[str]]]
    # their outputs, in order -> {"ttft_ms": [...], "decode_tokens_per_s": [...]} with one figure per repetition,
    # and optionally "load_ms", "versions", "tool_settings", "prompt_tokens_counted" (checked against the asked)
    parse: Callable[[list[str]], dict[str, Any]]


class RunnerFactory(Protocol):
    def __call__(self, path: Path, io: ArtifactIO | None, threads: int | None = None) -> Runner: ...


# a backend's own typed recipe (OrtPlan, LiteRTPlan...); the catalog's Recipe itself when it needs none
PlanT = TypeVar("PlanT", default="Recipe")


@dataclass(frozen=True)
class Backend(Generic[PlanT]):
    """One runtime. The registry holds one per runtime; routes, availability, runners and benchmark
    dispatch are all derived from these objects."""

    runtime: str  # the `runtime` of targets/*.yaml
    format: str  # the route-graph node its files are (onnx, tflite, ptl, pte)
    suffixes: tuple[str, ...]  # artifact file suffixes it runs
    runner: RunnerFactory
    describe_io: Callable[[Path, Model], ArtifactIO]  # the written file's inputs and outputs
    worker_loader: Path  # self-contained loader file the benchmark worker imports on the device
    runtime_modules: tuple[str, ...]  # what a device's Python needs to run its files
    converters: tuple[Converter, ...] = ()
    quantizers: tuple[Quantizer, ...] = ()
    native_tool: NativeTool | None = None
    extra: str | None = None  # the pip extra that installs its stack
    # the app platforms whose apps embed this runtime: a bundle for one of them takes its files (android, ios)
    app_platforms: tuple[str, ...] = ()
    # the packages (distribution names) whose versions every sidecar records, as the tools that made the file
    versioned: tuple[str, ...] = ()
    # Build this backend's typed recipe from the catalog's, or raise UsageError when it cannot be honoured.
    plan: Callable[[Recipe], PlanT] = lambda recipe: recipe  # type: ignore[assignment,return-value]
    # What a device row's scheme asks that this runtime cannot do (empty: it fits); checked when devices load.
    scheme_problems: Callable[[Scheme, RuntimeRule], list[str]] = lambda scheme, rule: []
    # Files the runtime cannot describe itself (.ptl, .pte) need the sidecar's tensors to run.
    needs_sidecar_io: bool = False
    # The device profile an export uses when none is named and this machine's profile has no rule for the
    # runtime (TensorRT on a CPU-only machine: the generic NVIDIA GPU profile)
    default_device: str | None = None
    # a self-contained module that edgekit's generation worker (edgekit/bench/generate_worker.py) loads on a device
    # to time generation of its files (`benchmark --generate`; causal LMs): describe, load, generation, versions
    generation_loader: Path | None = None
    # the runtime's own generation benchmark program, run instead of edgekit's worker with `--generate --tool`
    generation_tool: GenerationTool | None = None
    # a generating file's facts for a bundle's manifest (edgekit.release.manifest.Generation: context length, end
    # ids, the key/value cache's size, whether there is a chat template), read from the file; None: not an LM runtime
    describe_generation: Callable[[Path], dict[str, Any]] | None = None
    # its artifacts are folders named with its suffix (an ONNX Runtime GenAI model: decoder, config, tokenizer)
    folders: bool = False
    # its own export settings (a pydantic model; edgekit.backends.options): CLI flags, pipeline keys and
    # edgekit.export(options=...) all come from it
    options: type[BackendOptions] = BackendOptions
    # builds a target's engine stage (TensorRT: the .plan) from the exported file: (file, its options,
    # progress) -> the engine; whether this machine can is the target YAML's `engine.requires`
    engine: Callable[[Path, Any, Any], Path] | None = None
    # what of a quantized file no layer kept float can undo (TFLite's int8 outputs), read from the file: the hint
    # of the fallback's refusal when every layer float still fails the gate; None: nothing to add
    gate_hint: Callable[[Path], str | None] = lambda artifact: None
    # a graph optimization between conversion and quantization (ONNX Runtime's transformer fusion); it writes
    # ctx.out only when it changed something (the backend's options may turn it off: ONNX Runtime's fuse)
    optimize: StepFn | None = None
    # the files that belong to an artifact besides itself, by its path (OpenVINO: the .bin beside the .xml);
    # they are published, hashed in the sidecar, and pushed to devices with it
    companions: Callable[[Path], tuple[Path, ...]] = lambda path: ()
    # what the runtime's words mean when it cannot load a file (ExecuTorch's bare error codes), or None
    load_hint: Callable[[str], str | None] = lambda message: None
    # the file's arithmetic work at the benchmarked input shapes (path, {input: shape}) -> the document of
    # edgekit.backends.work.tally, for the benchmark's GFLOP/s and efficiency; None: not counted for this runtime
    count_work: Callable[[Path, dict[str, list[int]]], dict[str, Any]] | None = None
    # the file run with its weighted layers' inputs and outputs exposed, for `edgekit diff`: (file, its I/O) ->
    # an edgekit.backends.taps.LayerTaps; None: this runtime exposes no intermediates here
    layer_taps: Callable[[Path, ArtifactIO | None], Any] | None = None
    # why this machine cannot run its files and what an export checks instead (Core ML off macOS), or None when it
    # can: an export here is then published without parity (its sidecar says so) and `edgekit targets` says why
    cannot_run_here: Callable[[], str | None] = lambda: None

    def quantizer(self, quantization: str) -> Quantizer | None:
        return next((q for q in self.quantizers if q.quantization == quantization), None)

    def keeps_float(self, quantization: str) -> bool:
        """Whether an export to this backend with `quantization` can keep chosen layers float (the fallback)."""
        quantizer = self.quantizer(quantization)
        if quantizer is not None:
            return quantizer.keeps_float
        return any(quantization in c.keeps_float for c in self.converters)

    def quantizes(self, quantization: str) -> bool:
        """Whether an export to this backend can apply `quantization` (in a converter or after it)."""
        return (
            quantization == "none"
            or self.quantizer(quantization) is not None
            or any(quantization in c.quantizes for c in self.converters)
        )

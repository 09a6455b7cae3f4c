"""The backend registry: a new runtime is one Backend object plus its targets/*.yaml, and nothing else.

The fake runtime here stores ONNX bytes in a `.fake` file and runs them with ONNX Runtime, so export,
parity, `edgekit targets` and the benchmark all run for real through what the registry derives.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import run_cli
from onnx_graphs import inputs_npz, linear_classifier
from pydantic import Field

from edgekit.backends import registry
from edgekit.backends.base import Backend, Converter, StepContext, StepNotes
from edgekit.backends.options import BackendOptions
from edgekit.catalog import loader
from edgekit.catalog.resolve import resolve
from edgekit.dispatch import check_device_rules
from edgekit.errors import EdgekitError, UsageError
from edgekit.sidecar import ArtifactIO

ROOT = Path(__file__).resolve().parents[1]

LOADER = """
def import_runtime():
    import onnxruntime
    return onnxruntime

def load(ort, path, threads, specs=None):
    session = ort.InferenceSession(open(path, "rb").read(), providers=["CPUExecutionProvider"])
    specs = [(i.name, "float32", list(i.shape)) for i in session.get_inputs()]
    return specs, lambda feed: session.run(None, feed), {"onnxruntime": ort.__version__}
"""


@dataclass(frozen=True)
class FakePlan:
    """The fake backend's own typed recipe."""

    target: str
    scale: float


class FakeOptions(BackendOptions):
    """The fake backend's own export settings: a flag, a pipeline key and an export() option without any
    code outside this backend."""

    scale: float = Field(1.0, description="a number only the fake runtime reads")


def _plan(recipe) -> FakePlan:
    return FakePlan(recipe.target, 1.0)


def _fake_backend(tmp_path: Path, seen: list[StepContext]) -> Backend:
    def convert(ctx: StepContext) -> StepNotes:
        seen.append(ctx)
        data = ctx.src.read_bytes() if ctx.src else Path(ctx.model.source).read_bytes()
        ctx.out.write_bytes(data)
        return StepNotes({"copied_bytes": len(data)}, applied="none")

    def runner(path, io, threads=None):
        from edgekit.backends.onnxruntime.runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(Path(path).read_bytes(), io, threads)

    def describe_io(path, model):
        return ArtifactIO.from_signature(model.signature)

    loader_file = tmp_path / "fake_loader.py"
    loader_file.write_text(LOADER)
    return Backend(
        runtime="fake",
        format="fakefmt",
        suffixes=(".fake",),
        runner=runner,
        describe_io=describe_io,
        worker_loader=loader_file,
        runtime_modules=("onnxruntime",),
        converters=(Converter("onnx", "fakefmt", convert, "copy"),),
        plan=_plan,
        options=FakeOptions,
        app_platforms=("android",),
        versioned=("pyyaml",),
    )


@pytest.fixture
def catalog(tmp_path, monkeypatch):
    """A copy of the shipped catalog that tests may add YAML to; caches cleared before and after."""
    folder = tmp_path / "targets"
    shutil.copytree(ROOT / "targets", folder)
    monkeypatch.setattr(loader, "catalog_dir", lambda: folder)
    caches = (loader.targets, loader.device_files, loader.schemes, loader.quantizations)
    for cache in caches:
        cache.cache_clear()
    yield folder
    for cache in caches:
        cache.cache_clear()


def _fake_target(catalog: Path, **extra) -> None:
    """targets/fake-fp32.yaml: what a new runtime adds to the catalog."""
    target = {
        "name": "fake-fp32",
        "runtime": "fake",
        "suffix": ".fake",
        "precision": "fp32",
        "quantization": "none",
        "needs_calibration": False,
        "description": "a test runtime",
        "parity": {"cosine_min": 0.9999, "top1_min": 0.99},
        **extra,
    }
    (catalog / "fake-fp32.yaml").write_text(yaml.safe_dump(target))


@pytest.fixture
def fake(tmp_path, catalog):
    seen: list[StepContext] = []
    _fake_target(catalog, requires={"modules": ["onnxruntime"]})
    registry.register(_fake_backend(tmp_path, seen))
    yield seen
    registry.unregister("fake")


def test_a_registered_backend_exports_runs_and_benchmarks(fake, tmp_path, capsys):
    from edgekit.bench.harness import Settings, benchmark
    from edgekit.exporter import export

    source = linear_classifier(tmp_path / "linear.onnx")
    calib = inputs_npz(tmp_path / "x.npz")
    result = export(source, "fake-fp32", tmp_path / "out", calib=calib, options={"scale": 2.5})
    assert result.artifact.suffix == ".fake" and result.parity.passed
    assert result.sidecar["route"] == [
        {
            "step": "onnx->fakefmt",
            "tool": "copy",
            "applied": "none",
            "seconds": result.sidecar["route"][0]["seconds"],
            "copied_bytes": source.stat().st_size,
        }
    ]
    assert result.sidecar["runtime"] == "fake" and result.sidecar["quantization"]["applied"] == "none"
    # the step contract: one typed context, with the backend's own plan
    (ctx,) = fake
    assert ctx.src is None and ctx.model.format == "onnx" and ctx.out.parent != result.artifact.parent
    assert ctx.plan == FakePlan("fake-fp32", 1.0) and ctx.data is not None and len(ctx.data) == 64
    assert ctx.options == FakeOptions(scale=2.5)  # its own options, typed, defaults filled in
    assert result.sidecar["tools"]["pyyaml"] == yaml.__version__  # the tools it names are recorded

    from edgekit.release.bundle import bundle

    assert bundle([result.artifact], tmp_path / "app", platform="android").path.is_dir()  # android apps embed it
    with pytest.raises(EdgekitError, match="is a fake file; ios apps embed .*litert"):
        bundle([result.artifact], tmp_path / "ios-app", platform="ios")

    code, text = run_cli(capsys, "targets", "--json")
    row = next(r for r in __import__("json").loads(text) if r["name"] == "fake-fp32")
    assert code == 0 and row["runs_here"] and row["exports_here"], row

    runs, error = benchmark([result.artifact], "local", Settings(min_runs=5, min_time=0.01, processes=1))
    assert error is None and runs[0]["target"] == "fake-fp32" and len(runs[0]["samples_ms"]) >= 5


def test_a_backend_whose_files_cannot_run_here_exports_without_parity_and_says_so(fake, tmp_path, capsys):
    """Core ML off macOS: the file is published with parity marked not measured (never "passed"), and listed as
    not running here, with the backend's reason."""
    from dataclasses import replace

    why = "Fake files run on FakeOS only. Checked here instead: the copy's size"
    registry.register(replace(registry.backend_for_runtime("fake"), cannot_run_here=lambda: why))
    source, calib = linear_classifier(tmp_path / "linear.onnx"), inputs_npz(tmp_path / "x.npz")
    from edgekit.exporter import export

    result = export(source, "fake-fp32", tmp_path / "out", calib=calib)  # the API: the CLI's flags stay unbuilt
    assert result.parity.not_measured == why and not result.parity.passed
    sidecar = __import__("json").loads((tmp_path / "out" / "linear-fake-fp32.edgekit.json").read_text())
    assert sidecar["parity"]["passed"] is False and sidecar["parity"]["not_measured"] == why
    assert sidecar["parity"]["outputs"] == [] and sidecar["parity"]["samples"] == 0
    assert f"parity was not measured: {why}" in sidecar["warnings"]
    code, text = run_cli(capsys, "targets", "--json")
    assert code == 0
    row = next(r for r in __import__("json").loads(text) if r["name"] == "fake-fp32")
    assert not row["runs_here"] and row["exports_here"] and "Fake files run on FakeOS only" in row["why_not"], row


def test_a_backends_options_become_flags_and_other_runtimes_options_are_refused(fake, tmp_path):
    import click
    from click.testing import CliRunner

    from edgekit.cli.backend_flags import backend_option_flags, given_backend_options
    from edgekit.errors import UsageError
    from edgekit.exporter import export

    seen: list[dict] = []
    command = click.command()(backend_option_flags()(lambda **kw: seen.append(given_backend_options(kw))))
    help_text = " ".join(CliRunner().invoke(command, ["--help"]).output.split())  # as read, not as wrapped
    assert "--scale FLOAT" in help_text and "fake targets: a number only the fake runtime reads" in help_text
    assert "--no-fuse" in help_text and "--profile NAME:MIN,OPT,MAX" in help_text  # the built-in backends' own
    assert CliRunner().invoke(command, ["--scale", "3", "--no-fuse"]).exit_code == 0
    assert seen == [{"scale": 3.0, "fuse": False}]  # only what was given, by option name

    source, calib = linear_classifier(tmp_path / "linear.onnx"), inputs_npz(tmp_path / "x.npz")
    with pytest.raises(UsageError) as refused:
        export(source, "fake-fp32", tmp_path / "out", calib=calib, options={"fuse": False})
    said = refused.value.message + refused.value.hint
    assert "no option fuse" in said and "onnxruntime targets" in said and "fake's options: scale" in said
    with pytest.raises(UsageError, match="scale: Input should be a valid number"):
        export(source, "fake-fp32", tmp_path / "out", calib=calib, options={"scale": "big"})
    assert not (tmp_path / "out").exists() and not fake  # refused before anything was loaded or written


def test_without_the_backend_the_target_is_listed_but_not_built(catalog, tmp_path, capsys):
    _fake_target(catalog)
    code, text = run_cli(capsys, "export", linear_classifier(tmp_path / "l.onnx"), "-t", "fake-fp32", "-o", tmp_path)
    assert code == 2 and "has no exporter in this version" in text
    assert not list(tmp_path.glob("*.fake"))


def test_a_scheme_its_runtime_cannot_honour_is_refused(catalog, tmp_path, capsys):
    """TFLite's converter writes one int8 layout: a device row asking it for uint8 reduce_range is an error."""
    (catalog / "devices" / "odd-phone.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "odd-phone",
                "description": "a phone whose litert row asks for an x86 scheme",
                "arch": "aarch64",
                "os": "android",
                "runtimes": {"litert": {"scheme": "u8s8_reduce_range"}},
            }
        )
    )
    with pytest.raises(EdgekitError, match="litert for scheme 'u8s8_reduce_range'.*asymmetric int8.*reduce_range"):
        check_device_rules()
    code, text = run_cli(capsys, "targets")
    assert code == 1 and "odd-phone" in text and "cannot honour" in text
    model = linear_classifier(tmp_path / "l.onnx")
    code, text = run_cli(capsys, "export", model, "-t", "tflite-fp32", "--device", "odd-phone", "-o", tmp_path / "o")
    assert code == 1 and "odd-phone.yaml" in text and "cannot honour" in text and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "runtime, scheme, phrase",
    [
        ("torch-lite", "tflite_int8", "uint8 activations"),
        ("executorch", "u8s8", "asymmetric int8"),
        ("litert", "trt_symmetric", "asymmetric int8"),
    ],
)
def test_each_backend_checks_its_scheme(catalog, runtime, scheme, phrase):
    (catalog / "devices" / "odd.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "odd",
                "description": "mismatched",
                "arch": "aarch64",
                "os": "linux",
                "runtimes": {runtime: {"scheme": scheme}},
            }
        )
    )
    with pytest.raises(EdgekitError, match=phrase):
        check_device_rules(["odd"])


def test_routes_and_runners_derive_from_the_registry():
    runtimes = {b.runtime for b in registry.backends().values()}
    assert runtimes >= {"onnxruntime", "litert", "torch-lite", "executorch", "tensorrt"}
    # PyTorch reaches TFLite directly (litert-torch) and through ONNX (onnx2tf): the direct route first
    assert [[e.dst for e in r] for r in registry.find_routes("torch", "tflite")] == [["tflite"], ["onnx", "tflite"]]
    assert [e.dst for e in registry.find_route("torch", "tensorrt")] == ["onnx", "tensorrt"]
    assert registry.backend_for_file("m.pte").runtime == "executorch"
    assert registry.backend_for_file("m.plan").runtime == "tensorrt"
    assert registry.supports("torch-lite", "int8-auto") and registry.supports("tensorrt", "none")
    assert not registry.supports("tensorrt", "dynamic")
    with pytest.raises(EdgekitError, match="No runtime for '.xyz' files"):
        registry.backend_for_file("m.xyz")


def test_a_kind_of_quantization_is_catalog_data(catalog, tmp_path, capsys):
    """A target naming an undeclared kind is refused naming its file; declared in quantizations.yaml, it loads."""
    _fake_target(catalog, quantization="palettized-3bit")
    with pytest.raises(UsageError, match=r"fake-fp32\.yaml.*'palettized-3bit'.*known: none, fp16"):
        loader.targets()
    with (catalog / "quantizations.yaml").open("a") as f:
        f.write("palettized-3bit:\n  description: 3-bit lookup-table weights\n  device_scheme: never\n")
    loader.quantizations.cache_clear()
    assert loader.targets()["fake-fp32"].quantization == "palettized-3bit"
    recipe = resolve(loader.targets()["fake-fp32"], loader.devices()["x86-vnni"])
    assert recipe.scheme is None and recipe.quantization == "palettized-3bit"  # `never`: no device scheme taken

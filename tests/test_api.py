"""The Python API works like the CLI: the same input strings, real signatures, errors that name Python
arguments, and exceptions instead of error values."""

from __future__ import annotations

import inspect

import pytest

import edgekit
from edgekit.errors import BenchmarkError, UsageError
from edgekit_demo import zoo


@pytest.fixture(scope="module")
def onnx_file(cnn, calib_npz, tmp_path_factory):
    """The digits CNN exported through the public API, its input given as the CLI's --input string."""
    result = edgekit.export(
        "edgekit_demo.zoo:digits_cnn",
        "onnx-fp32",
        tmp_path_factory.mktemp("api"),
        weights=cnn[1],
        calib=calib_npz,
        inputs=[zoo.DIGITS_INPUT],
    )
    assert result.parity.passed
    return result.artifact


def test_input_strings_are_the_clis(onnx_file, cnn):
    report = edgekit.evaluate(
        onnx_file,
        "builtin:digits:test",
        reference="edgekit_demo.zoo:digits_cnn",
        reference_inputs=zoo.DIGITS_INPUT,  # one spec alone, not in a list
        reference_weights=cnn[1],
        max_drop=0.5,
    )
    assert report.passed and report.metrics["accuracy"] > 0.85
    assert edgekit.load("edgekit_demo.zoo:digits_cnn", [zoo.DIGITS_INPUT]).signature.inputs[0].name == "image"
    alone = edgekit.load("edgekit_demo.zoo:digits_cnn", zoo.DIGITS_INPUT).signature.inputs
    assert [(s.name, s.shape) for s in alone] == [("image", ("batch", 1, 8, 8))]


def test_signatures_and_docstrings_are_the_real_ones():
    for function in (edgekit.export, edgekit.evaluate, edgekit.benchmark, edgekit.load):
        parameters = inspect.signature(function).parameters
        assert "args" not in parameters and "kwargs" not in parameters, function
        assert function.__doc__ and len(function.__doc__) > 60
    assert list(inspect.signature(edgekit.export).parameters)[:3] == ["source", "target", "out_dir"]


def test_errors_name_python_arguments_not_cli_options(tmp_path):
    with pytest.raises(UsageError) as caught:
        edgekit.export("edgekit_demo.zoo:digits_cnn", "onnx-int8", tmp_path, inputs=[zoo.DIGITS_INPUT])
    text = str(caught.value)
    assert "calib=DATA" in text and "--calib" not in text, text
    with pytest.raises(UsageError, match=r"max_drop= needs reference=SOURCE"):
        edgekit.evaluate("x.onnx", "builtin:digits:test", max_drop=1.0)


def test_benchmark_returns_runs_and_raises_when_the_device_fails(onnx_file):
    from edgekit.bench.harness import Settings

    runs = edgekit.benchmark([onnx_file], "local", Settings(min_runs=5, min_time=0.0, warmup=1, processes=1))
    assert [r["artifact"] for r in runs] == [str(onnx_file)] and runs[0]["latency_ms"]["p50"] > 0
    endless = Settings(batches=(64,), min_runs=10**9, min_time=600, processes=1)  # outlives a 3 s timeout
    with pytest.raises(BenchmarkError, match="did not answer within 3s") as caught:
        edgekit.benchmark([onnx_file], "local", endless, timeout=3)
    assert caught.value.runs == []

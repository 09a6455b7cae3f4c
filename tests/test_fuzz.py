"""Parsers that read untrusted bytes, fuzzed: whatever they are given, they return a result or raise edgekit's
own error (which the CLI turns into a one-paragraph message and an exit code), never anything else.

A bounded profile runs by default (EDGEKIT_FUZZ=long, or `make test-slow`, runs many more examples).
"""

from __future__ import annotations

import json
import os
import string
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.errors import EdgekitError

settings.register_profile("fast", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("long" if os.environ.get("EDGEKIT_FUZZ") == "long" else "fast")

FUNCTION_SCOPED = [HealthCheck.function_scoped_fixture]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
tool_text = st.text(alphabet=string.printable, max_size=400) | st.builds(
    lambda lines: "\n".join(lines),
    st.lists(
        st.sampled_from(["[ INFO ]    Median:        8.92 ms", "Count: x iterations", "Average inference time cost: ms",
                         "Latency: min = 1 ms", "=== Performance summary ===", "P50 Latency is 0.001 sec",
                         "Timings (microseconds): count=3 first=1 curr=2 min=1 max=3 avg=2 std=0",
                         "Inference latency", "[ INFO ] Throughput:   x FPS", "Median: 1e9999 us"])
        | st.text(alphabet=string.printable, max_size=60),
        max_size=12,
    ),
)  # fmt: skip


def _only_our_errors(call):
    try:
        call()
    except EdgekitError:
        pass


@settings(suppress_health_check=FUNCTION_SCOPED)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_sidecar_reader(tmp_path, data):
    from edgekit.sidecar import read_sidecar

    (tmp_path / "m.edgekit.json").write_bytes(data)
    _only_our_errors(lambda: read_sidecar(tmp_path / "m.onnx"))


@given(json_values)
def test_manifest_reader(data):
    from edgekit.release.manifest import parse_manifest

    _only_our_errors(lambda: parse_manifest(data, "manifest.json"))


@settings(suppress_health_check=FUNCTION_SCOPED)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_benchmark_baseline_reader(tmp_path, data):
    from edgekit.cli.benchmark_cmd import read_baseline

    path = tmp_path / "old.json"
    path.write_bytes(data)
    _only_our_errors(lambda: read_baseline(path))


@given(st.binary(max_size=400))
def test_tflite_flatbuffer_reader(data):
    from edgekit.backends.litert.tflite_file import read_tflite

    _only_our_errors(lambda: read_tflite(data))


@pytest.mark.parametrize(
    "parser",
    [
        "edgekit.backends.onnxruntime.native:parse_ort_perf_test",
        "edgekit.backends.litert.native:parse_tflite_benchmark",
        "edgekit.backends.executorch.native:parse_executor_runner",
        "edgekit.backends.tensorrt.trtexec:parse_performance",
        "edgekit.backends.openvino.benchmark_app:parse",
    ],
)
@settings(suppress_health_check=FUNCTION_SCOPED)
@given(text=tool_text)
def test_native_tool_output_parsers(parser, text):
    import importlib

    module, _, name = parser.partition(":")
    parse = getattr(importlib.import_module(module), name)
    _only_our_errors(lambda: parse(text))


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".jsonl"])
@settings(suppress_health_check=FUNCTION_SCOPED)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_data_readers(tmp_path, suffix, data):
    from edgekit.data import read_data
    from edgekit.spec import Signature, TensorSpec

    path = tmp_path / f"data{suffix}"
    path.write_bytes(data)
    signature = Signature((TensorSpec("image", "float32", ("batch", 4)),))
    _only_our_errors(lambda: read_data(path, signature, tokenizer_dir=None))


@settings(suppress_health_check=FUNCTION_SCOPED)
@given(entries=st.lists(st.tuples(st.text(min_size=1, max_size=30), st.binary(max_size=80)), max_size=5,
                        unique_by=lambda e: e[0]),
       manifest=json_values)  # fmt: skip
def test_bundle_verifier(tmp_path, entries, manifest):
    from edgekit.release.verify import verify

    archive = tmp_path / "b.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("root/manifest.json", json.dumps(manifest))
        for name, data in entries:
            z.writestr(f"root/{name}", data)
    _only_our_errors(lambda: verify(archive))


def test_the_fuzz_profile_is_bounded_by_default():
    assert settings().max_examples == (2000 if os.environ.get("EDGEKIT_FUZZ") == "long" else 40)
    assert Path(__file__).name == "test_fuzz.py"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@settings(suppress_health_check=FUNCTION_SCOPED)
@given(data=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_text_rows_reader(tmp_path, suffix, data):
    from edgekit.data import read_text_rows

    path = tmp_path / f"rows{suffix}"
    path.write_bytes(data)
    _only_our_errors(lambda: read_text_rows(path))


@settings(suppress_health_check=FUNCTION_SCOPED)
@given(data=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_pipeline_reader(tmp_path, data):
    from edgekit.release.pipeline import load_pipeline

    path = tmp_path / "p.yaml"
    path.write_bytes(data)
    _only_our_errors(lambda: load_pipeline(path))


@settings(suppress_health_check=FUNCTION_SCOPED)
@given(text=tool_text | json_values.map(json.dumps), second=tool_text)
def test_llama_bench_output_parser(text, second):
    from edgekit.backends.gguf.llama_bench import parse

    _only_our_errors(lambda: parse([text, second]))
    _only_our_errors(lambda: parse([text + "\n" + text, text]))

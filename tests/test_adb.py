"""adb benchmarks. There is no Android device here, so:
- the output parsers are tested on real outputs of TFLite's benchmark_model and onnxruntime_perf_test
  (tests/fixtures/, each citing the public issue it was posted in);
- the command sequence runs against a stand-in `adb` (tests/fixtures/stand_in_adb.py) that executes the
  shell commands in a temporary folder standing for the device, with a stand-in tool printing a real
  benchmark_model output. The edgekit code under test is the real adb transport and harness.
"""

from __future__ import annotations

import json
import re

import pytest
from helpers import fixture_text, run_cli, stand_in_adb

from edgekit.backends.litert.native import parse_tflite_benchmark
from edgekit.backends.onnxruntime.native import parse_ort_perf_test
from edgekit.bench.harness import Settings, benchmark


def test_parse_tflite_benchmark_model_output():
    out = parse_tflite_benchmark(fixture_text("tflite_benchmark_model.txt"))
    assert out["init_ms"] == pytest.approx(0.855)
    assert out["first_inference_ms"] == pytest.approx(49.060)
    assert out["latency_ms"]["mean"] == pytest.approx(33.2094)
    assert out["latency_ms"]["std"] == pytest.approx(0.450)  # from the timed-runs line, not the warm-up one
    assert out["latency_ms"]["n"] == 50 and out["latency_ms"]["min"] == pytest.approx(32.641)
    assert out["tool_memory_mb"] == {"init": 0.0, "overall": pytest.approx(12.8672), "kind": "peak"}


def test_parse_newer_tflite_memory_line():
    out = parse_tflite_benchmark(fixture_text("tflite_benchmark_model_rpi.txt"))
    assert out["latency_ms"]["mean"] == pytest.approx(55.0432)
    assert out["tool_memory_mb"]["kind"] == "delta from tool start"
    assert out["tool_memory_mb"]["overall"] == pytest.approx(18.7227)


def test_parse_onnxruntime_perf_test_output():
    out = parse_ort_perf_test(fixture_text("onnxruntime_perf_test.txt"))
    assert out["init_ms"] == pytest.approx(127.918)
    assert out["latency_ms"]["mean"] == pytest.approx(144.871)
    assert out["latency_ms"]["n"] == 10
    assert out["tool_memory_mb"]["overall"] == pytest.approx(158171136 / 2**20)


def test_parse_onnxruntime_perf_test_percentiles():
    out = parse_ort_perf_test(fixture_text("onnxruntime_perf_test_percentiles.txt"))
    assert out["latency_ms"]["p50"] == pytest.approx(58.7108)
    assert out["latency_ms"]["p99"] == pytest.approx(61.9517)
    assert out["latency_ms"]["n"] == 1000


def test_parse_executorch_executor_runner_output():
    from edgekit.backends.executorch.native import parse_executor_runner

    out = parse_executor_runner(fixture_text("executorch_executor_runner.txt"))
    assert out["latency_ms"]["mean"] == pytest.approx(15.013292) and out["latency_ms"]["n"] == 1


def test_truncated_tool_output_is_an_error():
    from edgekit.errors import EdgekitError

    with pytest.raises(EdgekitError, match="no 'Inference timings'"):
        parse_tflite_benchmark("STARTING!\nLoaded model x.tflite\n")


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A stand-in adb on PATH and a stand-in benchmark_model that prints a real output after 0.3 s."""
    adb = stand_in_adb(tmp_path, monkeypatch)
    tool = tmp_path / "benchmark_model"
    tool.write_text("#!/bin/sh\nsleep 0.3\ncat <<'OUT'\n" + fixture_text("tflite_benchmark_model.txt") + "\nOUT\n")
    tool.chmod(0o755)
    return adb, tool, tmp_path


def test_adb_command_sequence_and_results(stand_in, capsys):
    adb, tool, tmp = stand_in
    model = tmp / "model.tflite"
    model.write_bytes(b"\x00" * 1000)  # the stand-in tool does not read it
    out = tmp / "adb.json"
    code, text = run_cli(
        capsys,
        "benchmark",
        model,
        "--device",
        "adb://emulator-5554",
        "--adb",
        adb,
        "--tool",
        tool,
        "--processes",
        "2",
        "--min-runs",
        "50",
        "--warmup",
        "1",
        "--json",
        out,
    )
    assert code == 0, text
    calls = [json.loads(line) for line in (tmp / "adb.log").read_text().splitlines()]
    assert all(c["serial"] == "emulator-5554" for c in calls)
    kinds = [c["args"][0] for c in calls]
    assert kinds[0] == "shell" and "mktemp" in calls[0]["args"][1]
    assert kinds[1:4] == ["push", "push", "shell"]  # VmHWM poller, tool, chmod
    runs = [c for c in calls if c["args"][0] == "shell" and "--graph=" in c["args"][1]]
    assert len(runs) == 2 and "--num_threads=1" in runs[0]["args"][1] and "--num_runs=50" in runs[0]["args"][1]
    assert calls[-1]["args"][0] == "shell" and calls[-1]["args"][1].startswith("rm -rf /data/local/tmp/edgekit-")
    result = json.loads(out.read_text())[0]
    assert result["device"] == "adb://emulator-5554"
    assert result["latency_ms"]["mean"] == pytest.approx(33.2094)
    assert result["init_ms"] == pytest.approx(0.855)
    assert result["peak_rss_mb"] and result["peak_rss_mb"] > 0  # VmHWM read from /proc/<pid>/status while it ran
    assert not list((tmp / "device" / "data" / "local" / "tmp").iterdir())  # the device was cleaned up


def test_adb_without_tool_says_what_to_pass(stand_in, capsys):
    adb, _, tmp = stand_in
    model = tmp / "model.tflite"
    model.write_bytes(b"\x00")
    code, text = run_cli(capsys, "benchmark", model, "--device", "adb://X", "--adb", adb)
    assert code == 2 and "--tool" in text


def test_unreachable_adb_device(stand_in):
    adb, tool, tmp = stand_in
    model = tmp / "model.tflite"
    model.write_bytes(b"\x00")
    from edgekit.transport.base import DeviceError

    with pytest.raises(DeviceError, match="Cannot reach adb://offline-device"):
        benchmark([model], "adb://offline-device", Settings(processes=1), tool=str(tool), adb=str(adb))


def test_adb_runs_are_gateable_on_the_tools_aggregates(stand_in, capsys):
    """No raw samples over adb: --baseline tests the per-process figures of the native tool, and a tool that
    twice as slow fails the gate (it used to pass silently: no samples, nothing tested)."""
    adb, tool, tmp = stand_in
    model = tmp / "model.tflite"
    model.write_bytes(b"\x00" * 1000)
    common = ["--device", "adb://emulator-5554", "--adb", adb, "--processes", "3", "--warmup", "1"]
    code, text = run_cli(capsys, "benchmark", model, *common, "--tool", tool, "--json", tmp / "old.json")
    assert code == 0, text
    slower = tmp / "slow" / "benchmark_model"
    slower.parent.mkdir()
    doubled = re.sub(
        r"(Inference \(avg\): )([0-9.]+)", lambda m: m.group(1) + str(2 * float(m.group(2))), tool.read_text()
    )
    slower.write_text(re.sub(r"(avg=)([0-9.]+)", lambda m: m.group(1) + str(2 * float(m.group(2))), doubled))
    slower.chmod(0o755)
    code, text = run_cli(capsys, "benchmark", model, *common, "--tool", slower, "--baseline", tmp / "old.json")
    assert code == 1 and "regression: model.tflite" in text and "+100.0%" in text
    code, text = run_cli(capsys, "benchmark", model, *common, "--tool", tool, "--baseline", tmp / "old.json")
    assert code == 0, text

"""`edgekit demo` end to end: its steps run side by side on the local executor, the timing alone at the end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _demo(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", "demo", *args], capture_output=True, text=True, cwd=cwd, timeout=1200
    )


def test_the_demo_refuses_a_target_it_does_not_export_to_before_any_work(tmp_path):
    run = _demo("-o", "out", "--targets", "onnx-fp32,coreml-9", cwd=tmp_path)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "coreml-9" in run.stderr and "Its targets here" in run.stderr and "onnx-fp32" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "out").exists()  # the folder it made is gone
    run = _demo("-o", "out", "--jobs", "0", cwd=tmp_path)
    assert run.returncode == 2 and "--jobs must be at least 1" in run.stderr and not (tmp_path / "out").exists()


@pytest.mark.slow  # MiniLM exported and evaluated twice (3 minutes on 2 cores; the first run fits its head)
def test_the_demo_runs_its_exports_side_by_side_and_times_each_file_alone(tmp_path):
    run = _demo("-o", "out", "--targets", "onnx-fp32,tflite-fp32", "--jobs", "2", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "out"
    results = json.loads((out / "demo-results.json").read_text())
    rows = {r["target"]: r for r in results["classifier"]["targets"]}
    assert set(rows) == {"onnx-fp32", "tflite-fp32"}
    for row in rows.values():  # float files: the source's accuracy, each timed
        assert "error" not in row, row
        assert abs(row["accuracy_drop_pts"]) <= 0.5 and row["p50_ms"] > 0 and (out / row["file"]).is_file()
        sidecar = json.loads((out / row["file"]).with_suffix(".edgekit.json").read_text())
        assert sidecar["file"] == row["file"]
    assert results["classifier"]["source"]["p50_ms"] > 0 and results["classifier"]["source"]["accuracy"] > 0.5
    assert not results["distillation"]["rows"] and not results["language_model"]["rows"]
    steps = {s["step"]: s for s in results["steps"]}
    exports = [steps[f"export and evaluate {t}"] for t in rows]
    timing = next(s for name, s in steps.items() if name.startswith("time every file"))
    # two workers: the two exports overlapped; the timing started after every other step had ended
    assert exports[0]["started"] < exports[1]["ended"] and exports[1]["started"] < exports[0]["ended"]
    assert all(timing["started"] >= s["ended"] for name, s in steps.items() if s is not timing)
    assert not (out / ".steps").exists()  # the run's own step cache is gone; its files moved to the folder
    assert (out / "report.html").is_file()

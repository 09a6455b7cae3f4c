"""edgekit run as a graph of cached steps: executors that agree byte for byte, matrix sweeps, a cache that
detects tampering and survives two runs racing on it."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import run_cli, run_cli_process

import edgekit

# the example pipeline without its benchmark and bundle: what the executors must agree on exactly
_PLAIN = {"benchmark:\n  devices: [local]\n  processes: 3\n": "", "  max_p90_ms: {local: 5.0}\n": ""}
FOUR = "[tflite-int8, onnx-int8, onnx-fp32, tflite-fp32]"


def _edit(pipeline: Path, replacements: dict[str, str]) -> Path:
    text = pipeline.read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    pipeline.write_text(text)
    return pipeline


def _last_run(cache: Path) -> dict:
    return json.loads((cache / "last-run.json").read_text())


def _entry(cache: Path, key: str) -> dict:
    """An entry's files by sha256; sidecars and evaluations by their content, less when and how long each step
    took and the cache folder they name."""
    files = json.loads((cache / key / "record.json").read_text())["_files"]
    for name in [n for n in files if n.endswith(".json")]:
        text = re.sub(r'"(created|seconds)": [^,\n]+', "", (cache / key / name).read_text())
        files[name] = text.replace(str(cache), "CACHE")
    return files


def test_local_with_two_jobs_equals_serial_byte_for_byte(pipeline, capsys):
    two = "targets: [onnx-int8, onnx-fp32]"
    _edit(pipeline, {**_PLAIN, "targets: [tflite-int8, onnx-int8]": two, "bundle:": "x_bundle:"})
    text = pipeline.read_text()
    pipeline.write_text(text[: text.index("x_bundle:")])
    serial, local = pipeline.parent / "serial", pipeline.parent / "local"
    code, out = run_cli(capsys, "run", pipeline, "--executor", "serial", "--cache", serial)
    assert code == 0 and "4 step(s) ran" in out, out
    code, out = run_cli(capsys, "run", pipeline, "--executor", "local", "--jobs", "2", "--cache", local)
    assert code == 0 and "4 step(s) ran" in out, out
    a, b = _last_run(serial), _last_run(local)
    keys = {s["step"]: s["key"] for s in a["steps"]}
    assert len(keys) == 4 and keys == {s["step"]: s["key"] for s in b["steps"]}  # so the files each read are equal
    for step in a["steps"]:
        assert _entry(serial, step["key"]) == _entry(local, step["key"]), step["step"]
    evaluations = [json.loads((c / s["key"] / "evaluate.json").read_text())["metrics"] for c in (serial, local)
                   for s in a["steps"] if s["step"].startswith("evaluate")]  # fmt: skip
    assert evaluations[:2] == evaluations[2:] and all(m["accuracy"] > 0.9 for m in evaluations)
    # two jobs ran side by side: some step started before another one ended
    spans = sorted((s["started"], s["ended"]) for s in b["steps"])
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), spans


def test_a_matrix_runs_each_combination_shares_common_steps_and_names_the_one_that_fails(pipeline, capsys):
    _edit(pipeline, {**_PLAIN, "targets: [tflite-int8, onnx-int8]": "targets: [onnx-int8]",
                     "gates:": "matrix:\n  gates.max_size_mb: [0.5, 0.001]\ngates:"})  # fmt: skip
    code, out = run_cli(capsys, "run", pipeline, "--executor", "serial")
    assert code == 1, out
    assert "gate failed: gates.max_size_mb=0.001: onnx-int8: size" in out and "=0.5:" not in out, out
    result = _last_run(pipeline.parent / ".edgekit-run")
    names = [c["name"] for c in result["combinations"]]
    assert names == ["gates.max_size_mb=0.5", "gates.max_size_mb=0.001"]
    assert sum(not s["cached"] for s in result["steps"]) == 2 and len(result["steps"]) == 4  # export + evaluate once
    bundles = [Path(c["bundle"]) for c in result["combinations"]]
    assert [b.parent.name for b in bundles] == names and all((b / "manifest.json").is_file() for b in bundles)
    assert run_cli(capsys, "verify", bundles[0])[0] == 0
    page = (pipeline.parent / ".edgekit-run" / "report.html").read_text()  # the report covers the sweep
    assert all(f"{name}: onnx-int8" in page for name in names) and page.count("<tr") == 3


@pytest.mark.parametrize(
    "matrix, phrase",
    [
        ("matrix:\n  colour: [red]\n", "line 21: matrix key 'colour' is not a pipeline setting"),
        ("matrix:\n  benchmark.speed: [1]\n", "matrix key 'benchmark.speed' is not a pipeline setting"),
        ("matrix:\n  targets: [[onnx-fp32]]\n", "matrix key 'targets' is not a pipeline setting"),
        ("matrix:\n  calib: []\n", "line 21: matrix key 'calib' must list at least one value"),
        ("matrix: [calib]\n", "line 20: matrix must map pipeline keys to lists of values"),
        ("matrix:\n  device: [x86-vnni, x86-avx3]\n", "line 21: matrix combination device=x86-avx3: Unknown device"),
        ("matrix:\n  benchmark.devices: [[local, local]]\n", '"local"]: benchmark: devices lists local'),
        ("matrix:\n  options.onnxruntime.nope: [1]\n", "matrix key 'options.onnxruntime.nope' is not a pipeline"),
        ("options:\n  litert: {fuse: false}\n", "line 21: Target tflite-int8 runs on litert, which has no option fuse"),
        ("options:\n  coreml9: {}\n", "line 21: options: 'coreml9' is not a runtime"),
    ],
)  # fmt: skip
def test_a_bad_matrix_is_refused_with_its_line(pipeline, capsys, matrix, phrase):
    pipeline.write_text(pipeline.read_text().replace("bundle:", matrix + "bundle:"))
    code, out = run_cli(capsys, "run", pipeline)
    assert code == 2 and phrase in out and "Traceback" not in out, out
    assert not (pipeline.parent / ".edgekit-run").exists() or not any((pipeline.parent / ".edgekit-run").iterdir())


def test_a_matrix_varies_a_runtimes_own_option_and_only_that_runtimes_files_change(pipeline, tmp_path):
    from edgekit.release.pipeline import _Plan, load_sweep

    _edit(pipeline, {"bundle:": "matrix:\n  options.onnxruntime.fuse: [true, false]\nbundle:"})
    combinations = load_sweep(pipeline)
    assert [c.name for c in combinations] == ["options.onnxruntime.fuse=true", "options.onnxruntime.fuse=false"]
    unfused = combinations[1].pipeline
    assert unfused.options_for("onnx-int8") == {"fuse": False} and unfused.options_for("tflite-int8") == {}
    keys = [
        {s.id.rpartition("export ")[2]: s.plan({}).key for s in _Plan(c, pipeline.parent, tmp_path).steps()
         if "export " in s.id}
        for c in combinations
    ]  # fmt: skip
    assert keys[0]["onnx-int8"] != keys[1]["onnx-int8"] and keys[0]["tflite-int8"] == keys[1]["tflite-int8"]


def _small(pipeline: Path) -> Path:
    """One float target, no evaluation, benchmark or bundle: the cheapest pipeline that caches a file."""
    text = _edit(pipeline, {**_PLAIN, "targets: [tflite-int8, onnx-int8]": "targets: [onnx-fp32]"}).read_text()
    pipeline.write_text(text[: text.index("evaluate:")])
    return pipeline


def test_an_altered_cache_entry_is_redone_and_the_cache_can_be_listed_and_pruned(pipeline, capsys):
    _small(pipeline)
    cache = pipeline.parent / ".edgekit-run"
    assert run_cli(capsys, "run", pipeline, "--executor", "serial")[0] == 0
    key = _last_run(cache)["steps"][0]["key"]
    (artifact,) = (cache / key).glob("*.onnx")
    original = artifact.read_bytes()
    artifact.write_bytes(original[:-10])  # truncated after it was written
    code, out = run_cli(capsys, "cache", "ls", pipeline)
    assert code == 0 and "altered" in out and "1 entries" in out, out
    code, out = run_cli(capsys, "run", pipeline, "--executor", "serial")
    assert code == 0 and "was altered after it was written; redoing" in out and "1 step(s) ran, 0 cached" in out, out
    assert artifact.read_bytes() == original
    code, out = run_cli(capsys, "cache", "ls", cache)
    assert code == 0 and "export onnx-fp32" in out and "altered" not in out, out
    code, out = run_cli(capsys, "cache", "prune", pipeline, "--older-than", "1d")
    assert code == 0 and "removed 0 entries" in out and (cache / key).is_dir(), out
    code, out = run_cli(capsys, "cache", "prune", pipeline, "--older-than", "0s")
    assert code == 0 and "removed 1 entries" in out and not (cache / key).exists(), out
    code, out = run_cli(capsys, "cache", "prune", pipeline, "--older-than", "soon")
    assert code == 2 and "30m, 12h or 7d" in out, out


def test_two_runs_racing_on_one_cache_both_finish_and_leave_intact_entries(pipeline):
    _small(pipeline)
    argv = [sys.executable, "-m", "edgekit", "run", str(pipeline), "--executor", "serial", "-q"]
    racers = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in racers]
    assert [p.returncode for p in racers] == [0, 0], outputs
    from edgekit.release.stepcache import entries

    found = entries(pipeline.parent / ".edgekit-run")
    assert len(found) == 1 and found[0].intact
    assert not [p for p in (pipeline.parent / ".edgekit-run").iterdir() if p.name.startswith(".staging")]


def test_benchmarks_on_this_machine_never_overlap_anything(pipeline, capsys):
    _edit(pipeline, {"targets: [tflite-int8, onnx-int8]": "targets: [onnx-fp32]", "processes: 3": "processes: 1",
                     "gates:": "matrix:\n  benchmark.min_runs: [5, 6]\ngates:", "bundle:": "x_bundle:"})  # fmt: skip
    text = pipeline.read_text()
    pipeline.write_text(text[: text.index("x_bundle:")].replace("evaluate:\n  data: builtin:digits:test\n", ""))
    pipeline.write_text(pipeline.read_text().replace("max_accuracy_drop: 1.0", "max_size_mb: 1.0"))
    code, out = run_cli(capsys, "run", pipeline, "--jobs", "2")
    assert code == 0, out
    steps = [s for s in _last_run(pipeline.parent / ".edgekit-run")["steps"] if not s["cached"]]
    benches = [s for s in steps if "benchmark on local" in s["step"]]
    assert len(benches) == 2
    for bench in benches:
        others = [s for s in steps if s is not bench]
        assert all(o["ended"] <= bench["started"] or o["started"] >= bench["ended"] for o in others), steps


def test_an_unreachable_ray_address_is_named_within_the_timeout(pipeline, capsys):
    from sshd import free_port

    _small(pipeline)
    port = free_port()
    code, out = run_cli(capsys, "run", pipeline, "--executor", "ray", "--address", f"127.0.0.1:{port}",
                        "--timeout", "5")  # fmt: skip
    assert code == 2 and f"No Ray cluster answers at 127.0.0.1:{port}" in out, out
    code, out = run_cli(capsys, "run", pipeline, "--address", "127.0.0.1:1")
    assert code == 2 and "use it with --executor ray" in out, out
    import socket

    with socket.socket() as silent:  # takes the connection, never answers (a hung head, a wrong service)
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()  # in its own process: the abandoned join would stay in this one
        done = run_cli_process("run", pipeline, "--executor", "ray", "--address", address, "--timeout", "3")
    assert done.returncode == 2 and f"The Ray cluster at {address} did not answer within 3 s" in done.stderr, done
    assert time.monotonic() - start < 60


def test_the_ray_executor_without_ray_says_what_to_install(pipeline, capsys, monkeypatch):
    _small(pipeline)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    code, out = run_cli(capsys, "run", pipeline, "--executor", "ray")
    assert code == 2 and re.search(r"pip install 'edgekit\[ray\]'", out), out


@pytest.fixture
def ray_cluster(monkeypatch):
    """A Ray head and two worker nodes on 127.0.0.1 (one CPU each); the head holds the benchmark devices."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's one-machine mode: loopback addresses
    cluster_utils = pytest.importorskip("ray.cluster_utils")

    def start(devices: list[str]):
        resources = {f"edgekit-device:{d}": 1 for d in devices}
        cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": resources})
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        started.append(cluster)
        return cluster, workers

    started: list = []
    yield start
    for cluster in started:
        cluster.shutdown()


@pytest.mark.slow
def test_a_ray_cluster_gives_the_serial_results_keeps_devices_apart_and_survives_a_dead_node(
    pipeline, sshd, tmp_path, ray_cluster
):
    from sshd import LoopbackSshd

    (tmp_path / "sshd2").mkdir()
    second = LoopbackSshd(tmp_path / "sshd2").start()  # a second device, which lets the first server's key in
    (second.folder / "authorized_keys").write_text((sshd.folder / "client_key.pub").read_text())
    try:
        devices = [sshd.url, second.url]
        ssh = {"identity": str(sshd.key), "python": sys.executable, "options": list(sshd.ssh_options)}
        _edit(pipeline, {"targets: [tflite-int8, onnx-int8]": f"targets: {FOUR}", "processes: 3": "processes: 1",
                         "devices: [local]": f"devices: {json.dumps(devices)}\n  ssh: {json.dumps(ssh)}",
                         "  max_p90_ms: {local: 5.0}\n": "",
                         "gates:": "matrix:\n  benchmark.min_runs: [5, 6]\ngates:"})  # fmt: skip
        cluster, workers = ray_cluster(devices)
        results: dict = {}

        def sweep() -> None:
            results["ray"] = edgekit.run(pipeline, executor="ray", address=cluster.address, cache=tmp_path / "ray")

        runner = threading.Thread(target=sweep)
        runner.start()
        while not _published(tmp_path / "ray"):
            assert runner.is_alive(), "the sweep stopped before its first step finished"
            time.sleep(0.1)
        cluster.remove_node(workers[1], allow_graceful=False)  # a node dies mid-sweep
        runner.join(900)
        ray_run = results["ray"]
        assert sum(not s["cached"] for s in ray_run["steps"]) == 12  # 4 exports, 4 evaluations, 4 benchmarks
        again = edgekit.run(pipeline, executor="ray", address=cluster.address, cache=tmp_path / "ray")
        assert all(s["cached"] for s in again["steps"])
        serial = edgekit.run(pipeline, executor="serial", cache=tmp_path / "serial")
    finally:
        second.stop()
    for step in serial["steps"]:
        if not step["step"].split("] ")[-1].startswith("benchmark"):
            assert _entry(tmp_path / "serial", step["key"]) == _entry(tmp_path / "ray", step["key"]), step["step"]
    for device in devices:  # the two benchmarks on each device (one per combination) never overlapped
        spans = sorted((s["started"], s["ended"]) for s in ray_run["steps"] if s["step"].endswith(f"on {device}"))
        assert len(spans) == 2 and spans[0][1] <= spans[1][0], spans
    assert [c["name"] for c in ray_run["combinations"]] == [c["name"] for c in serial["combinations"]]
    for r, s in zip(ray_run["combinations"], serial["combinations"], strict=True):
        assert r["gates"] == s["gates"] == {"failures": []}


def _published(cache: Path) -> list[Path]:
    """The cache's finished entries (staging folders start with a dot)."""
    return [p for p in cache.glob("*") if p.is_dir() and not p.name.startswith(".")]


def _started(pipeline: Path, until: Callable[[Path], object]) -> tuple[subprocess.Popen, Path, list[str]]:
    """`edgekit run --jobs 2` of the four-target pipeline in its own process, once `until(cache)` holds."""
    _edit(pipeline, {**_PLAIN, "targets: [tflite-int8, onnx-int8]": f"targets: {FOUR}"})
    cache = pipeline.parent / ".edgekit-run"
    argv = [sys.executable, "-m", "edgekit", "run", str(pipeline), "--jobs", "2"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not until(cache):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    return proc, cache, argv


@pytest.mark.slow  # 32 s; the cache's integrity is also checked by the racing and altered-entry tests
def test_ctrl_c_mid_sweep_leaves_only_complete_entries_and_a_rerun_resumes(pipeline):
    import signal

    proc, cache, argv = _started(pipeline, _published)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 130 and "Traceback" not in out, out
    from edgekit.release.stepcache import entries

    kept = entries(cache)
    assert 1 <= len(kept) < 9 and all(e.intact for e in kept), kept
    assert not list(cache.glob(".staging-*"))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and f"{len(kept)} cached" in done.stdout, done.stdout + done.stderr


@pytest.mark.slow  # 24 s; the slow Ray test kills a node mid-sweep too
def test_a_local_worker_killed_mid_sweep_has_its_step_run_again(pipeline):
    import psutil

    proc, cache, _ = _started(pipeline, lambda cache: list(cache.glob(".staging-*")))  # a step is under way
    workers = [c for c in psutil.Process(proc.pid).children() if "multiprocessing" in " ".join(c.cmdline())]
    workers = [w for w in workers if "resource_tracker" not in " ".join(w.cmdline())]
    assert workers
    workers[0].kill()
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0 and "its worker process died; running it again" in out, out
    from edgekit.release.stepcache import entries

    assert len(entries(cache)) == 8 and all(e.intact for e in entries(cache))


def test_the_results_table_marks_the_file_a_latency_gate_failed(pipeline, capsys):
    """A p90 gate names the file, not the target: the table's row for that target still says failed."""
    text = _edit(pipeline, {"targets: [tflite-int8, onnx-int8]": "targets: [onnx-fp32]",
                            "processes: 3": "processes: 1\n  min_runs: 5\n  min_time: 0",
                            "max_p90_ms: {local: 5.0}": "max_p90_ms: {local: 0.000001}"}).read_text()  # fmt: skip
    pipeline.write_text(text[: text.index("bundle:")])
    code, out = run_cli(capsys, "run", pipeline, "--executor", "serial")
    assert code == 1 and "digits_cnn-onnx-fp32.onnx on local: p90" in out, out
    row = next(line for line in out.splitlines() if "onnx-fp32" in line and "│" in line)
    assert "failed" in row and "passed" not in row, out

"""User mistakes: a one-paragraph error, exit code 2, no traceback, nothing half-written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli, run_cli_process

from edgekit_demo import zoo


def _export_cnn(capsys, weights, target, out, *extra):
    """`edgekit export` of the built-in digits CNN with `weights`, as a user would type it."""
    return run_cli(
        capsys,
        "export",
        "edgekit_demo.zoo:digits_cnn",
        "--weights",
        weights,
        "-t",
        target,
        "--input",
        zoo.DIGITS_INPUT,
        *extra,
        "-o",
        out,
    )


def _no_outputs(folder):
    return not folder.exists() or not [p for p in folder.iterdir()]


def _assert_clean_failure(code, output, out_dir, *phrases):
    assert code == 2, output
    assert "Traceback" not in output
    assert output.startswith("error:") or "error:" in output
    for phrase in phrases:
        assert phrase in output, output
    assert _no_outputs(out_dir), list(out_dir.iterdir())


def test_missing_model_file(capsys, tmp_path):
    code, out = run_cli(capsys, "export", tmp_path / "nope.onnx", "-t", "onnx-fp32", "-o", tmp_path / "out")
    _assert_clean_failure(code, out, tmp_path / "out", "does not exist", "SOURCE is one of")


def test_corrupt_onnx_file(capsys, tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07this is not a protobuf at all" * 10)
    code, out = run_cli(capsys, "export", bad, "-t", "onnx-fp32", "-o", tmp_path / "out")
    _assert_clean_failure(code, out, tmp_path / "out", "not a valid ONNX model")


def test_truncated_onnx_file(capsys, cnn, calib_npz, tmp_path):
    from edgekit.exporter import export

    good = export(
        "edgekit_demo.zoo:digits_cnn",
        "onnx-fp32",
        tmp_path / "a",
        weights=cnn[1],
        calib=calib_npz,
        inputs=(zoo_input(),),
    ).artifact
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    code, out = run_cli(capsys, "export", cut, "-t", "onnx-fp32", "-o", tmp_path / "out")
    _assert_clean_failure(code, out, tmp_path / "out", "not a valid ONNX model")


def zoo_input():
    from edgekit.spec import parse_input_spec

    return parse_input_spec(zoo.DIGITS_INPUT)


def test_unknown_target_suggests_names(capsys, tmp_path):
    code, out = run_cli(capsys, "export", "x.onnx", "-t", "tflite-int9", "-o", tmp_path / "out")
    _assert_clean_failure(code, out, tmp_path / "out", "Unknown target 'tflite-int9'", "tflite-int8")


def test_wrong_input_spec(capsys, cnn, tmp_path):
    code, out = run_cli(
        capsys,
        "export",
        "edgekit_demo.zoo:digits_cnn",
        "--weights",
        cnn[1],
        "-t",
        "onnx-fp32",
        "--input",
        "image:float32",
        "-o",
        tmp_path / "out",
    )
    _assert_clean_failure(code, out, tmp_path / "out", "NAME:DTYPE:SHAPE")


def test_calibration_arrays_named_wrong(capsys, cnn, digits, tmp_path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, pixels=digits[0][:16])
    code, out = _export_cnn(capsys, cnn[1], "onnx-int8", tmp_path / "out", "--calib", calib)
    _assert_clean_failure(code, out, tmp_path / "out", "no array for input(s) image", "pixels")


def test_calibration_arrays_of_wrong_shape(capsys, cnn, digits, tmp_path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, image=digits[0][:16, :, :4, :])
    code, out = _export_cnn(capsys, cnn[1], "onnx-int8", tmp_path / "out", "--calib", calib)
    _assert_clean_failure(code, out, tmp_path / "out", "dim 2 must be 8")


def test_int8_without_calibration_says_what_to_pass(capsys, cnn, tmp_path):
    code, out = _export_cnn(capsys, cnn[1], "onnx-int8", tmp_path / "out")
    assert code == 2 and "--calib" in out and "Traceback" not in out


def test_output_folder_is_a_file(capsys, cnn, tmp_path):
    out_file = tmp_path / "out"
    out_file.write_text("keep me")
    code, out = _export_cnn(capsys, cnn[1], "onnx-fp32", out_file)
    assert code == 2 and "is a file" in out
    assert out_file.read_text() == "keep me"


def test_weights_that_do_not_fit(capsys, mlp, tmp_path):
    code, out = _export_cnn(capsys, mlp[1], "onnx-fp32", tmp_path / "out")
    _assert_clean_failure(code, out, tmp_path / "out", "do not fit")


def test_text_data_for_a_model_without_tokenizer(capsys, cnn, tmp_path):
    data = tmp_path / "t.csv"
    data.write_text("text,label\nhello,1\n")
    code, out = _export_cnn(capsys, cnn[1], "onnx-int8", tmp_path / "out", "--calib", data)
    _assert_clean_failure(code, out, tmp_path / "out", "no tokenizer")


def test_no_route_names_what_exists(capsys, cnn, tmp_path):
    code, out = _export_cnn(capsys, cnn[1], "onnx-fp32", tmp_path / "onnx")
    assert code == 0, out
    code, out = run_cli(
        capsys,
        "export",
        tmp_path / "onnx" / "digits_cnn-onnx-fp32.onnx",
        "-t",
        "pytorch-mobile",
        "-o",
        tmp_path / "out",
    )
    assert code == 2 and "Traceback" not in out
    assert "No converter route from a onnx model to ptl" in out and "From onnx, edgekit can produce" in out


def test_parity_failure_exits_1_and_keeps_nothing_at_the_final_name(capsys, cnn, calib_npz, tmp_path, monkeypatch):
    """A tolerance no int8 file can meet: the export must fail loudly and say by how much."""
    import edgekit.exporter as exporter
    from edgekit.catalog import get_target
    from edgekit.catalog.schema import Tolerance

    strict = get_target("onnx-int8").model_copy(
        update={"parity": Tolerance(cosine_min=1.0, top1_min=1.0, max_abs=1e-9)}
    )
    monkeypatch.setattr(exporter, "get_target", lambda name: strict)
    out_dir = tmp_path / "out"
    code, out = _export_cnn(capsys, cnn[1], "onnx-int8", out_dir, "--calib", calib_npz, "--no-fallback")
    assert code == 1, out
    assert "failed its gate (--no-fallback)" in out and "max abs error" in out and "short by" in out
    assert not (out_dir / "digits_cnn-onnx-int8.onnx").exists()
    rejected = out_dir / "digits_cnn-onnx-int8.rejected.onnx"
    assert rejected.exists()
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".edgekit-tmp")]
    # the error ends with the command that finds the diverging layer, and that command runs
    command = " ".join(out.split()).split("Find the layer where it diverges: ")[1].split()
    assert command[:2] == ["edgekit", "diff"] and command[2] == str(rejected), command
    code, out = run_cli(capsys, *command[1:])
    assert code == 0 and "4 of 4 weighted layers compared" in out, out

    # with the fallback, every layer ends up float and the gate still fails: said so, exit 1, nothing written
    out_dir = tmp_path / "out2"
    code, out = _export_cnn(capsys, cnn[1], "onnx-int8", out_dir, "--calib", calib_npz)
    assert code == 1, out
    assert "No float fallback meets the gate" in out and "kept float" in out and "max abs error" in out
    assert not out_dir.exists() or not list(out_dir.iterdir())


def test_help_does_not_import_frameworks():
    import subprocess
    import sys

    code = (
        "import sys; from edgekit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'onnxruntime', 'transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
    assert "export" in result.stdout and "targets" in result.stdout


def test_targets_command_lists_every_target_without_frameworks():
    result = run_cli_process("targets", "--json")
    assert result.returncode == 0, result.stderr
    import json

    rows = json.loads(result.stdout)
    catalog = Path(__file__).parent.parent / "targets"
    named = ("schemes", "quantizations")  # the catalog's tables of names, not targets
    assert sorted(r["name"] for r in rows) == sorted(p.stem for p in catalog.glob("*.yaml") if p.stem not in named)
    by_name = {r["name"]: r for r in rows}
    assert by_name["openvino-int8"]["runs_here"] and by_name["openvino-int8"]["file"] == ".xml"
    assert by_name["onnx-int8"]["runs_here"] and by_name["onnx-int8"]["exports_here"]
    trt = by_name["tensorrt-int8"]
    assert trt["runs_here"] and trt["exports_here"] and trt["file"] == ".onnx"
    if not trt["engine_here"]:
        assert "NVIDIA GPU" in trt["engine_why_not"]


@pytest.mark.parametrize("args", [["export"], ["export", "x.onnx"], ["nosuchcommand"]])
def test_click_usage_errors_exit_2(capsys, args):
    code, out = run_cli(capsys, *args)
    assert code == 2 and "Traceback" not in out


def test_user_frames_are_told_from_edgekit_by_its_folder_not_its_name():
    """A project that lives under a folder named edgekit is still the user's code in error messages."""
    import edgekit.errors
    from edgekit.errors import is_user_frame

    assert is_user_frame("/home/ana/edgekit/models.py") and is_user_frame("/tmp/ci/edgekit/tests/tests_models.py")
    assert not is_user_frame(edgekit.errors.__file__)
    assert not is_user_frame("/usr/lib/python3/site-packages/keras/src/layers/layer.py")


def test_a_failed_command_leaves_no_empty_output_folder(tmp_path, capsys):
    code, out = run_cli(capsys, "export", tmp_path / "missing.onnx", "-t", "onnx-fp32", "-o", tmp_path / "new" / "out")
    assert code == 2 and "does not exist" in out
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())
    assert not (tmp_path / "new" / "out").exists()


def test_sigterm_during_an_export_cleans_up_and_exits_143(cnn, calib_npz, tmp_path):
    """SIGTERM is handled like Ctrl-C: the staging folder goes, the empty output folder goes, exit 143."""
    import signal
    import subprocess
    import sys

    _, weights = cnn
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "edgekit", "export", "edgekit_demo.zoo:digits_cnn", "--weights", str(weights),
            "--input", zoo.DIGITS_INPUT, "--calib", str(calib_npz), "-t", "onnx-int8", "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # the first step is done: a staging folder exists and conversion is running
        if "load edgekit_demo.zoo:digits_cnn" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 143, rest
    assert "Terminated; nothing half-written" in rest and "Traceback" not in rest
    assert not out.exists(), list(out.iterdir())


@pytest.mark.parametrize(
    "args, option",
    [
        (["benchmark", "m.onnx", "--processes", "0"], "--processes"),
        (["benchmark", "m.onnx", "--min-runs", "0"], "--min-runs"),
        (["benchmark", "m.onnx", "--min-time", "-1"], "--min-time"),
        (["benchmark", "m.onnx", "--warmup", "-1"], "--warmup"),
        (["benchmark", "m.onnx", "--timeout", "0"], "--timeout"),
        (["benchmark", "m.onnx", "--max-time", "-5"], "--max-time"),
        (["benchmark", "m.onnx", "--target-ci", "0"], "--target-ci"),
        (["evaluate", "m.onnx", "--data", "d.npz", "--limit", "0"], "--limit"),
        (["export", "m.onnx", "-t", "onnx-fp32", "-o", "out", "--calib-limit", "-3"], "--calib-limit"),
    ],
)
def test_counts_and_durations_out_of_range_are_usage_errors(capsys, args, option):
    """0 processes measured nothing and passed a --baseline gate; 0 as a limit silently meant "all"."""
    code, out = run_cli(capsys, *args)
    assert code == 2 and option in out and "Traceback" not in out, out


@pytest.mark.parametrize(
    "content, phrase",
    [("", "not readable JSON"), ("{not json", "not readable JSON"), ('{"runs": []}', "list of runs"),
     ("[]", "list of runs"), ('[{"artifact": "m.onnx"}]', "list of runs")],
)  # fmt: skip
def test_a_bad_baseline_fails_before_anything_runs(tmp_path, capsys, content, phrase):
    baseline = tmp_path / "old.json"
    baseline.write_text(content)
    code, out = run_cli(capsys, "benchmark", tmp_path / "missing.onnx", "--baseline", baseline)
    assert code == 2 and phrase in out and "does not exist" not in out, out


@pytest.mark.parametrize("where", ["folder", "missing-parent"])
def test_json_output_must_be_a_file_in_an_existing_folder(tmp_path, capsys, where):
    target = tmp_path if where == "folder" else tmp_path / "nope" / "bench.json"
    code, out = run_cli(capsys, "benchmark", tmp_path / "missing.onnx", "--json", target)
    assert code == 2 and "--json" in out and "Traceback" not in out, out
    assert [p.name for p in tmp_path.iterdir()] == []  # and no temp file left behind


def test_a_state_dict_given_as_source_says_to_use_a_factory(cnn, tmp_path, capsys):
    _, weights = cnn  # torch.save(model.state_dict())
    source = tmp_path / "model.pt"
    source.write_bytes(Path(weights).read_bytes())
    code, out = run_cli(capsys, "export", source, "-t", "onnx-fp32", "-o", tmp_path / "out")
    assert code == 2 and "written by torch.save" in out and f"--weights {source}" in out, out


@pytest.mark.parametrize("command", ["export", "evaluate"])
def test_nan_in_data_is_a_data_error_naming_the_input(cnn, calib_npz, tmp_path, capsys, command):
    """NaN in calibration data used to fail the export's parity (exit 1, .rejected files); in evaluation data
    it gave a silent accuracy."""
    x = np.load(calib_npz)["image"].copy()
    x[3, 0, 2, 2] = np.nan
    bad = tmp_path / "nan.npz"
    np.savez(bad, image=x, labels=np.load(calib_npz)["labels"])
    if command == "export":
        code, out = _export_cnn(capsys, cnn[1], "onnx-fp32", tmp_path / "out", "--calib", bad)
    else:
        artifact = tmp_path / "ok"
        assert _export_cnn(capsys, cnn[1], "onnx-fp32", artifact)[0] == 0
        code, out = run_cli(capsys, "evaluate", next(artifact.glob("*.onnx")), "--data", bad)
    assert code == 2 and "input 'image' has NaN or Inf values in 1 of 256 samples" in out, out


@pytest.mark.parametrize(
    "code_text, phrase",
    [
        ("import x y\n", "does not compile: invalid syntax"),
        ("raise RuntimeError('no GPU here')\ndef make():\n    pass\n", "raised RuntimeError: no GPU here"),
        ("def make(width):\n    pass\n", "could not be called without arguments"),
        ("def make():\n    raise ValueError('bad config')\n", "raised ValueError: bad config"),
    ],
)
def test_a_broken_factory_is_a_one_line_error(tmp_path, capsys, monkeypatch, code_text, phrase):
    (tmp_path / "userfactory.py").write_text(code_text)
    monkeypatch.syspath_prepend(str(tmp_path))
    import sys

    sys.modules.pop("userfactory", None)
    code, out = run_cli(capsys, "export", "userfactory:make", "--input", "x:float32:1x3", "-t", "onnx-fp32",
                        "-o", tmp_path / "out")  # fmt: skip
    assert code == 2 and phrase in out and "Traceback" not in out, out


@pytest.mark.parametrize("content", [b"", b"\x00" * 7, b"\xff" * 100])
def test_unreadable_safetensors_weights_are_named(tmp_path, capsys, content):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(content)
    code, out = _export_cnn(capsys, weights, "onnx-fp32", tmp_path / "out")
    assert code == 2 and "is not a readable .safetensors file" in out and "Traceback" not in out, out


def test_export_json_dash_is_the_sidecar_on_stdout(cnn, tmp_path):
    from helpers import run_cli_process

    result = run_cli_process("export", "edgekit_demo.zoo:digits_cnn", "--weights", cnn[1], "--input", zoo.DIGITS_INPUT,
                             "-t", "onnx-fp32", "-o", tmp_path, "-q", "--json", "-")  # fmt: skip
    assert result.returncode == 0, result.stderr
    import json

    out = json.loads(result.stdout)
    assert (
        out["sidecar"]["target"] == "onnx-fp32"
        and Path(out["artifact"]).is_file()
        and out["files"] == [out["artifact"]]
    )


TEXT_SOURCE = ["edgekit_demo.zoo_text:tiny_bert_sentiment", "--input", "input_ids:int64:batchx32",
               "--input", "attention_mask:int64:batchx32"]  # fmt: skip


@pytest.mark.parametrize(
    "case, phrase",
    [
        ("jsonl-not-objects", "row 1: a list, not an object with a 'text' field"),
        ("tokenizer-missing", "The tokenizer folder"),
        ("tokenizer-empty", "holds no tokenizer: none of tokenizer.json"),
    ],
)
def test_text_data_and_tokenizer_mistakes_are_named(tmp_path, capsys, case, phrase):
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_text import minilm_dir

    data, tokenizer = write_tweets_csv(tmp_path / "t.csv", "validation", 8), minilm_dir()
    if case == "jsonl-not-objects":
        data = tmp_path / "bad.jsonl"
        data.write_text('[1, 2]\n"x"\n')
    elif case == "tokenizer-missing":
        tokenizer = tmp_path / "nope"
    else:
        tokenizer = tmp_path / "empty"
        tokenizer.mkdir()
    code, out = run_cli(capsys, "export", *TEXT_SOURCE, "--calib", data, "--tokenizer", tokenizer, "-t", "onnx-fp32",
                        "-o", tmp_path / "out")  # fmt: skip
    assert code == 2 and phrase in out and "Traceback" not in out, out


def test_a_cache_path_that_is_a_file_is_named(tmp_path, monkeypatch):
    from edgekit.cache import cache_dir
    from edgekit.errors import UsageError

    (tmp_path / "cache").write_text("")
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UsageError, match="is a file"):
        cache_dir()


def test_an_onnx_file_exports_to_onnx_fp32_as_it_is(cnn, tmp_path, capsys):
    """No route step at all (the source already is ONNX): the CLI used to index the empty route and crash."""
    code, _ = _export_cnn(capsys, cnn[1], "onnx-fp32", tmp_path / "a")
    source = next((tmp_path / "a").glob("*.onnx"))
    code, out = run_cli(capsys, "export", source, "-t", "onnx-fp32", "-o", tmp_path / "b")
    assert code == 0 and "parity passed" in out, out


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_is_one_line_and_leaves_nothing(cnn, tmp_path, capsys):
    """The disk fills up mid-write (a 64 KB tmpfs for a 150 KB model): exit 1, the system's words, the output
    folder as empty as before, no staging folder."""
    import subprocess

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        code, out = _export_cnn(capsys, cnn[1], "onnx-fp32", tiny)
        assert code == 1 and "No space left on device" in out and "Traceback" not in out, out
        assert list(tiny.iterdir()) == []
    finally:
        subprocess.run(["umount", str(tiny)])


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write in: a read-only tmpfs as root (root ignores permission bits), mode 0555
    otherwise."""
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)]).returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        yield folder
        subprocess.run(["umount", str(folder)])
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_a_read_only_output_folder_is_refused_before_any_work(cnn, read_only_folder, tmp_path, capsys):
    """export -o and evaluate --json into a folder that cannot be written: exit 2 before the model loads or the
    evaluation runs, saying why; nothing written anywhere."""
    code, out = _export_cnn(capsys, cnn[1], "onnx-fp32", read_only_folder)
    assert code == 2 and "is not writable" in out and "Traceback" not in out and "load " not in out, out
    code, out = _export_cnn(capsys, cnn[1], "onnx-fp32", tmp_path / "fine")
    artifact = next((tmp_path / "fine").glob("*.onnx"))
    code, out = run_cli(capsys, "evaluate", artifact, "--data", "builtin:digits:test", "--json",
                        read_only_folder / "report.json")  # fmt: skip
    assert code == 2 and "is not writable" in out and "accuracy" not in out, out
    assert list(read_only_folder.iterdir()) == []


def test_two_exports_racing_into_one_folder_leave_a_matching_pair(cnn, tmp_path):
    """Both succeed; the file and its sidecar left in place come from the same export (never a mixed pair)."""
    import hashlib
    import json
    import subprocess
    import sys

    argv = [sys.executable, "-m", "edgekit", "export", "edgekit_demo.zoo:digits_cnn", "--weights", str(cnn[1]),
            "--input", zoo.DIGITS_INPUT, "-t", "onnx-fp32", "-o", str(tmp_path), "-q"]  # fmt: skip
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    artifact = next(tmp_path.glob("*.onnx"))
    sidecar = json.loads(artifact.with_name(artifact.stem + ".edgekit.json").read_text())
    assert sidecar["sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_disk_that_fills_while_publishing_leaves_no_file_without_its_sidecar(mlp, tmp_path, capsys):
    """Tmpfs sizes from too small for the model to roomy: each export either publishes the file with its
    sidecar, or fails with the system's words and leaves the folder empty (an .onnx without its sidecar was
    left where the disk filled while the sidecar was written)."""
    import subprocess

    codes = set()
    for kb in (16, 20, 24, 64):
        tiny = tmp_path / f"tiny-{kb}"
        tiny.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kb}k", "tmpfs", str(tiny)]).returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        try:
            code, out = run_cli(
                capsys, "export", "edgekit_demo.zoo:digits_mlp", "--weights", mlp[1], "-t", "onnx-fp32",
                "--input", zoo.DIGITS_INPUT, "--no-fuse", "-o", tiny,
            )  # fmt: skip
            files = sorted(p.name for p in tiny.iterdir())
            if code == 0:
                assert files == ["digits_mlp-onnx-fp32.edgekit.json", "digits_mlp-onnx-fp32.onnx"], (kb, files)
            else:
                assert code == 1 and "No space left on device" in out and files == [], (kb, out, files)
            codes.add(code)
        finally:
            subprocess.run(["umount", str(tiny)])
    assert codes == {0, 1}

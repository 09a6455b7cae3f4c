"""`edgekit evaluate --device ssh://...` and `edgekit export --run-on ssh://...`: the file runs on the device through
edgekit's worker (--serve), in the device's own runtime, and scores and matches exactly as it does here; a device
without the runtime, a file its runtime cannot load and a link that cannot carry the frames are each said plainly."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli, ssh_device_args

from edgekit.bench.remote import RemoteRunner
from edgekit.dispatch import open_runner
from edgekit.exporter import export
from edgekit.spec import parse_input_spec
from edgekit_demo import zoo


@pytest.fixture(scope="module")
def files(tmp_path_factory, cnn, calib_npz):
    out = tmp_path_factory.mktemp("remote")
    made = {}
    for target in ("onnx-int8", "pytorch-mobile"):  # outputs by position (ORT), and one bare tensor (torch lite)
        made[target] = export("edgekit_demo.zoo:digits_cnn", target, out, calib=calib_npz, weights=cnn[1],
                              inputs=(parse_input_spec(zoo.DIGITS_INPUT),)).artifact  # fmt: skip
    return made


@pytest.mark.ssh
@pytest.mark.parametrize("target", ["onnx-int8", "pytorch-mobile"])
def test_a_file_evaluated_over_ssh_scores_what_it_scores_here(sshd, files, test_npz, tmp_path, capsys, target):
    here, there = tmp_path / "here.json", tmp_path / "there.json"
    code, text = run_cli(capsys, "evaluate", files[target], "--data", test_npz, "--json", here)
    assert code == 0, text
    code, text = run_cli(capsys, "evaluate", files[target], "--data", test_npz, *ssh_device_args(sshd), "--json", there)
    assert code == 0, text
    local, remote = json.loads(here.read_text())["metrics"], json.loads(there.read_text())["metrics"]
    assert remote["samples"] == local["samples"] == 449 and remote["accuracy"] > 0.8  # the whole test split
    assert remote == local  # the same runtime on the same inputs: the same predictions, every metric


def test_the_worker_answers_feeds_until_told_to_stop_and_survives_a_bad_one(files, test_npz):
    """The protocol itself, with the worker started here (the local transport): outputs named as the sidecar
    names them, equal to the runner's here; a wrong shape is an error for that call only."""
    import numpy as np

    from edgekit.transport.base import DeviceError

    image = np.load(test_npz)["image"][:16]
    with RemoteRunner(files["onnx-int8"], "local", {}) as remote, open_runner(files["onnx-int8"]) as here:
        got, want = remote.infer({"image": image}), here.infer({"image": image})
        assert list(got) == list(want) and all(np.array_equal(got[k], want[k]) for k in want)
        with pytest.raises(DeviceError, match="inference failed"):
            remote.infer({"image": image[:, :, :4]}, check=False)
        assert np.array_equal(remote.infer({"image": image})[next(iter(want))], want[next(iter(want))])
        process = remote.proc
    assert process is not None and process.returncode == 0  # it stopped when told to, not killed


@pytest.mark.ssh
def test_a_device_without_the_runtime_is_named(sshd, files, test_npz, tmp_path, capsys):
    bare = tmp_path / "python-without-ort"
    bare.write_text('#!/bin/sh\nexec /usr/bin/env -i PATH=/usr/bin:/bin python3 -I "$@"\n')
    bare.chmod(0o755)
    code, text = run_cli(capsys, "evaluate", files["onnx-int8"], "--data", test_npz, *ssh_device_args(sshd, str(bare)))
    assert code == 1 and "onnxruntime" in text and "Traceback" not in text


@pytest.mark.ssh
def test_a_file_the_devices_runtime_cannot_load_is_bad_input(sshd, files, test_npz, tmp_path, capsys):
    broken = tmp_path / files["onnx-int8"].name
    broken.write_bytes(files["onnx-int8"].read_bytes()[:200])  # truncated on the way
    sidecar = files["onnx-int8"].with_name(files["onnx-int8"].stem + ".edgekit.json")
    (tmp_path / sidecar.name).write_text(sidecar.read_text())
    code, text = run_cli(capsys, "evaluate", broken, "--data", test_npz, *ssh_device_args(sshd))
    assert code == 2 and "the runtime cannot load it" in text and "Traceback" not in text


def test_a_device_whose_link_cannot_carry_the_frames_is_refused(files, test_npz, capsys):
    code, text = run_cli(capsys, "evaluate", files["onnx-int8"], "--data", test_npz, "--device", "adb://emulator-1")
    assert code == 2 and "cannot run a file for evaluation" in text and "ssh://" in text


@pytest.mark.ssh
def test_export_measures_parity_with_the_file_on_the_device(sshd, cnn, calib_npz, tmp_path, capsys):
    run_on = ssh_device_args(sshd, device="--run-on")
    argv = ["export", "edgekit_demo.zoo:digits_cnn", "--weights", cnn[1], "--input", zoo.DIGITS_INPUT,
            "-t", "onnx-int8", "--calib", calib_npz]  # fmt: skip
    code, text = run_cli(capsys, *argv, "-o", tmp_path / "there", *run_on)
    assert code == 0 and "parity passed" in text, text
    code, text = run_cli(capsys, *argv, "-o", tmp_path / "here")
    assert code == 0, text
    there, here = (
        json.loads(next((tmp_path / d).glob("*.edgekit.json")).read_text())["parity"] for d in ("there", "here")
    )
    assert there["ran_on"] == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}" and here["ran_on"] is None
    assert there["outputs"] == here["outputs"]  # the same runtime on the same inputs


def test_a_device_that_does_not_answer_in_time_is_named_and_nothing_is_left_running(files):
    from edgekit.transport.base import DeviceError

    remote = RemoteRunner(files["onnx-int8"], "local", {"timeout": 0.01})
    with pytest.raises(DeviceError, match="did not answer within"):
        remote.activate()
    assert remote.proc is None and remote.transport is None and not remote.is_active

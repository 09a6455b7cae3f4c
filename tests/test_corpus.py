"""A corpus of bad inputs and faults, one table: every case is a command a user could type, and each must end
with its exit code, a message that names the problem, no traceback, and nothing left behind (in -o and in
$TMPDIR).

The bad files are built from the test models: truncated, emptied and scrambled copies of real exports, data of
the wrong names, shapes and values, folders where files belong. The fault tests that need root or processes
(a full disk, a read-only mount, SIGTERM, racing exports) live in test_bad_input.py.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from edgekit_demo import zoo
from edgekit_demo.zoo_text import TINY_BERT_INPUTS, minilm_dir

KINDS = {  # an exported kind -> the target that writes it
    "onnx": "onnx-fp32",
    "tflite": "tflite-fp32",
    "ptl": "pytorch-mobile",
    "pte": "executorch-fp32",
    "xml": "openvino-fp32",
}
FAULTS = ("missing", "folder", "empty", "truncated", "scrambled")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.stem + ".edgekit.json")


def _bad_copies(good: Path, folder: Path) -> None:
    """`good`'s faulty twins in `folder`: FAULT.EXT for each fault, each with the good sidecar beside it (so the
    runtime's own loading is what fails, not the missing description), an .xml with its .bin."""
    data = good.read_bytes()
    rng = np.random.default_rng(len(data))
    contents = {"empty": b"", "truncated": data[: len(data) // 2], "scrambled": rng.bytes(len(data))}
    for fault in FAULTS:
        bad = folder / f"{fault}{good.suffix}"
        if fault == "folder":
            bad.mkdir()
        elif fault in contents:
            bad.write_bytes(contents[fault])
            shutil.copyfile(_sidecar(good), _sidecar(bad))
            if good.suffix == ".xml":
                shutil.copyfile(good.with_suffix(".bin"), bad.with_suffix(".bin"))


def _npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture(scope="module")
def kit(tmp_path_factory, cnn, mlp, calib_npz, test_npz, digits) -> dict[str, str]:
    """Paths for the table's placeholders: good exports, their faulty twins, bad data, bad configuration."""
    from edgekit.exporter import export

    root = tmp_path_factory.mktemp("corpus")
    x, y = np.load(test_npz)["image"], np.load(test_npz)["labels"]
    paths: dict[str, str] = {"weights": str(cnn[1]), "mlp_weights": str(mlp[1]), "calib": str(calib_npz)}
    paths["test"] = str(test_npz)
    for kind, target in KINDS.items():
        good = export("edgekit_demo.zoo:digits_cnn", target, root / "good", weights=cnn[1], calib=calib_npz,
                      inputs=(zoo.DIGITS_INPUT,)).artifact  # fmt: skip
        paths[kind] = str(good)
        (root / kind).mkdir()
        _bad_copies(good, root / kind)
        for fault in FAULTS:
            paths[f"{fault}_{kind}"] = str(root / kind / f"{fault}.{kind}")
    no_bin = root / "nobin"
    no_bin.mkdir()
    shutil.copyfile(paths["xml"], no_bin / "model.xml")
    paths["xml_without_bin"] = str(no_bin / "model.xml")
    bare = root / "bare.onnx"  # a real ONNX file without its sidecar
    shutil.copyfile(paths["onnx"], bare)
    paths["bare_onnx"] = str(bare)
    shutil.copyfile(paths["ptl"], root / "bare.ptl")
    paths["bare_ptl"] = str(root / "bare.ptl")
    text = export("edgekit_demo.zoo_text:tiny_bert_sentiment", "onnx-fp32", root / "text", tokenizer=minilm_dir(),
                  inputs=TINY_BERT_INPUTS).artifact  # fmt: skip
    paths["text_onnx"] = str(text)

    d = root / "data"
    d.mkdir()
    paths.update(
        npz_wrong_names=_npz(d / "names.npz", pixels=x[:8], labels=y[:8]),
        npz_wrong_shape=_npz(d / "shape.npz", image=x[:8, :, :4], labels=y[:8]),
        npz_wrong_rank=_npz(d / "rank.npz", image=x[:8, 0], labels=y[:8]),
        npz_no_labels=_npz(d / "nolabels.npz", image=x[:8]),
        npz_float_labels=_npz(d / "floatlabels.npz", image=x[:8], labels=y[:8] + 0.5),
        npz_label_out_of_range=_npz(d / "range.npz", image=x[:8], labels=np.full(8, 40)),
        npz_label_count=_npz(d / "count.npz", image=x[:8], labels=y[:5]),
        npz_nan=_npz(
            d / "nan.npz", image=np.where(np.arange(x[:8].size).reshape(x[:8].shape) == 3, np.nan, x[:8]), labels=y[:8]
        ),
        npz_inf=_npz(d / "inf.npz", image=np.full_like(x[:8], np.inf), labels=y[:8]),
        npz_empty=_npz(d / "empty.npz", image=x[:0], labels=y[:0]),
        npz_strings=_npz(d / "strings.npz", image=np.array(["a"] * 8), labels=y[:8]),
        npz_objects=str(d / "objects.npz"),
        npz_scrambled=str(d / "scrambled.npz"),
        npz_zero=str(d / "zero.npz"),
        csv_no_header=str(d / "noheader.csv"),
        csv_text=str(d / "text.csv"),
        csv_empty=str(d / "empty.csv"),
        jsonl_not_objects=str(d / "lists.jsonl"),
        jsonl_broken=str(d / "broken.jsonl"),
        jsonl_no_text=str(d / "notext.jsonl"),
        txt_data=str(d / "data.txt"),
        data_folder=str(d),
    )
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object))  # a pickled object inside an .npz
    with zipfile.ZipFile(paths["npz_objects"], "w") as z:
        z.write(d / "objects.npy", "image.npy")
    Path(paths["npz_scrambled"]).write_bytes(np.random.default_rng(1).bytes(4000))
    Path(paths["npz_zero"]).write_bytes(b"")
    Path(paths["csv_no_header"]).write_text("0.1,0.2\n0.3,0.4\n")
    Path(paths["csv_text"]).write_text("text,label\ngood day,2\nbad day,0\n")
    Path(paths["csv_empty"]).write_text("")
    Path(paths["jsonl_not_objects"]).write_text('["good day", 2]\n[1, 2]\n')
    Path(paths["jsonl_broken"]).write_text('{"text": "good day", "label": 2}\n{"text": \n')
    Path(paths["jsonl_no_text"]).write_text('{"words": "good day", "label": 2}\n')
    Path(paths["txt_data"]).write_text("just some words\n")

    w = root / "weights"
    w.mkdir()
    paths.update(
        weights_zero=str(w / "zero.pt"),
        weights_scrambled=str(w / "scrambled.pt"),
        weights_pickle=str(w / "pickle.pt"),
        weights_safetensors_zero=str(w / "zero.safetensors"),
        weights_safetensors_header=str(w / "header.safetensors"),
        weights_folder=str(w),
        weights_npz=str(calib_npz),
    )
    Path(paths["weights_zero"]).write_bytes(b"")
    Path(paths["weights_scrambled"]).write_bytes(np.random.default_rng(2).bytes(3000))
    Path(paths["weights_pickle"]).write_bytes(pickle.dumps(Path("/")))  # a pickle that builds an object
    Path(paths["weights_safetensors_zero"]).write_bytes(b"")
    Path(paths["weights_safetensors_header"]).write_bytes((2**40).to_bytes(8, "little") + b"{}")

    m = root / "factories"
    m.mkdir()
    (m / "corpus_syntax.py").write_text("def model(:\n")
    (m / "corpus_raises.py").write_text("def model():\n    raise RuntimeError('no GPU here')\n")
    (m / "corpus_args.py").write_text("def model(width):\n    return None\n")
    (m / "corpus_not_module.py").write_text("def model():\n    return 42\n")
    paths["factories"] = str(m)

    c = root / "config"
    c.mkdir()
    paths["folder"] = str(c)
    (c / "file").write_text("not a folder")
    paths["file"] = str(c / "file")
    for name, content in {
        "baseline_empty.json": "",
        "baseline_broken.json": "{",
        "baseline_list.json": "[1, 2]",
        "baseline_no_runs.json": '{"schema_version": "1.0", "results": []}',
        "results_broken.json": "{not json",
        "pipeline_broken.yaml": "source: [",
        "pipeline_unknown.yaml": "source: edgekit_demo.zoo:digits_cnn\ntargets: [onnx-fp32]\ncolour: blue\n",
        "pipeline_no_source.yaml": "targets: [onnx-fp32]\n",
        "pipeline_bad_target.yaml": "source: edgekit_demo.zoo:digits_cnn\ntargets: [onnx-fp33]\n",
        "pipeline_prune.yaml": "source: x:y\ntargets: [onnx-fp32]\ncompress: {method: prune, data: d.npz}\n",
        "pipeline_list.yaml": "- a\n- b\n",
        "labels.txt": "zero\n",
    }.items():
        (c / name).write_text(content)
        paths[name.replace(".", "_")] = str(c / name)
    cat = root / "catalog_broken"
    (cat / "devices").mkdir(parents=True)
    (cat / "devices" / "board.yaml").write_text("name: [unclosed\n")
    paths["catalog_broken"] = str(cat)
    cat = root / "catalog_invalid"
    (cat / "devices").mkdir(parents=True)
    (cat / "devices" / "board.yaml").write_text("name: board\ncpu: {isa: x86}\nfavourite_colour: blue\n")
    paths["catalog_invalid"] = str(cat)

    bundle = root / "bundle"
    run_cli_quiet("bundle", paths["onnx"], "--platform", "android", "-o", bundle)
    folder = next(p for p in bundle.iterdir() if p.is_dir())
    tampered = root / "tampered"
    shutil.copytree(folder, tampered)
    model = next((tampered / "models").iterdir())
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    paths["bundle_tampered"] = str(tampered)
    broken = root / "broken_manifest"
    shutil.copytree(folder, broken)
    (broken / "manifest.json").write_text("{")
    paths["bundle_broken_manifest"] = str(broken)
    paths["zip_scrambled"] = str(root / "scrambled.zip")
    Path(paths["zip_scrambled"]).write_bytes(np.random.default_rng(3).bytes(2000))
    paths["missing"] = str(root / "nothing-here")
    return paths


def run_cli_quiet(*args) -> None:
    from edgekit.cli import main

    with pytest.raises(SystemExit) as done:
        main([str(a) for a in args])
    assert done.value.code == 0


W = "export edgekit_demo.zoo:digits_cnn --input image:float32:1x1x8x8 -t onnx-fp32 -o {out} --weights"
X = " --input x:float32:1x4 -t onnx-fp32 -o {out}"  # for the factories in kit["factories"]
E = "export edgekit_demo.zoo:digits_cnn --weights {weights} --input image:float32:1x1x8x8 -o {out}"
E8 = E + " -t onnx-int8"
EV = "evaluate {onnx} --data"
P = "compress prune --model edgekit_demo.zoo:digits_cnn --weights {weights} --input image:float32:1x1x8x8 -o {out}"
B = "benchmark {onnx} --min-runs 2 --warmup 0 --processes 1"

# id, command (placeholders from kit, {out} a fresh folder), exit code, words the message must contain
CASES: list[tuple[str, str, int, tuple[str, ...]]] = []
for _kind in KINDS:
    CASES += [
        (f"evaluate-missing-{_kind}", f"evaluate {{missing_{_kind}}} --data {{test}}", 2, ("does not exist",)),
        (f"evaluate-folder-{_kind}", f"evaluate {{folder_{_kind}}} --data {{test}}", 2, ("is a folder",)),
        (f"evaluate-empty-{_kind}", f"evaluate {{empty_{_kind}}} --data {{test}}", 2, ("empty", "0 bytes")),
        (f"evaluate-truncated-{_kind}", f"evaluate {{truncated_{_kind}}} --data {{test}}", 2, ("truncated.",)),
        (f"evaluate-scrambled-{_kind}", f"evaluate {{scrambled_{_kind}}} --data {{test}}", 2, ("scrambled.",)),
        (f"benchmark-missing-{_kind}", f"benchmark {{missing_{_kind}}}", 2, ("does not exist",)),
        (f"benchmark-folder-{_kind}", f"benchmark {{folder_{_kind}}}", 2, ("is a folder",)),
        (f"benchmark-empty-{_kind}", f"benchmark {{empty_{_kind}}}", 2, ("empty", "0 bytes")),
        (f"benchmark-truncated-{_kind}", f"benchmark {{truncated_{_kind}}} --min-runs 1", 2, ("truncated.",)),
        (f"benchmark-scrambled-{_kind}", f"benchmark {{scrambled_{_kind}}} --min-runs 1", 2, ("scrambled.",)),
    ]
CASES += [
    # the model given to export
    ("source-missing", "export {missing} -t onnx-fp32 -o {out}", 2, ("does not exist", "SOURCE is one of")),
    ("source-empty-folder", "export {folder} -t onnx-fp32 -o {out}", 2, ("neither a SavedModel",)),
    ("source-empty-onnx", "export {empty_onnx} -t onnx-fp32 -o {out}", 2, ("empty.onnx",)),
    ("source-truncated-onnx", "export {truncated_onnx} -t onnx-fp32 -o {out}", 2, ("not a valid ONNX model",)),
    ("source-scrambled-onnx", "export {scrambled_onnx} -t onnx-fp32 -o {out}", 2, ("not a valid ONNX model",)),
    ("source-tflite", "export {tflite} -t onnx-fp32 -o {out}", 2, (".tflite",)),
    ("source-unknown-suffix", "export {file} -t onnx-fp32 -o {out}", 2, ("file",)),
    ("source-state-dict", "export {weights} -t onnx-fp32 -o {out}", 2, ("--weights",)),
    ("source-pickle-pt", "export {weights_pickle} -t onnx-fp32 -o {out}", 2, ("pickle.pt",)),
    ("source-scrambled-pt", "export {weights_scrambled} -t onnx-fp32 -o {out}", 2, ("scrambled.pt",)),
    ("source-scrambled-ptl", "export {scrambled_ptl} -t onnx-fp32 -o {out}", 2, (".ptl", "SOURCE is one of")),
    ("source-no-module", "export no_such_package.models:net -t onnx-fp32 -o {out}", 2, ("no_such_package",)),
    ("source-no-factory", "export edgekit_demo.zoo:no_such_net -t onnx-fp32 -o {out}", 2, ("no_such_net",)),
    (
        "source-factory-syntax",
        "export corpus_syntax:model" + X,
        2,
        ("does not compile",),
    ),
    (
        "source-factory-raises",
        "export corpus_raises:model" + X,
        2,
        ("no GPU here",),
    ),
    (
        "source-factory-args",
        "export corpus_args:model" + X,
        2,
        ("corpus_args:model",),
    ),
    (
        "source-factory-not-module",
        "export corpus_not_module:model" + X,
        2,
        ("not a torch.nn.Module",),
    ),
    ("source-hub-id-uncached", "export nobody/no-such-model -t onnx-fp32 -o {out}", 2, ("nobody/no-such-model",)),
    # weights
    ("weights-missing", W + " {missing}", 2, ("does not exist",)),
    ("weights-folder", W + " {weights_folder}", 2, ("is a folder",)),
    ("weights-empty", W + " {weights_zero}", 2, ("zero.pt",)),
    ("weights-scrambled", W + " {weights_scrambled}", 2, ("scrambled.pt",)),
    ("weights-pickled-object", W + " {weights_pickle}", 2, ("pickle.pt",)),
    ("weights-other-architecture", W + " {mlp_weights}", 2, ("do not fit", "missing", "another shape")),
    ("weights-safetensors-empty", W + " {weights_safetensors_zero}", 2, ("zero.safetensors",)),
    ("weights-safetensors-header", W + " {weights_safetensors_header}", 2, ("header.safetensors",)),
    ("weights-npz", W + " {weights_npz}", 2, ("calib.npz",)),
    # input specs
    (
        "input-no-dtype",
        "export edgekit_demo.zoo:digits_cnn --weights {weights} --input image -t onnx-fp32 -o {out}",
        2,
        ("NAME:DTYPE:SHAPE",),
    ),
    (
        "input-unknown-dtype",
        "export edgekit_demo.zoo:digits_cnn --weights {weights} --input image:float99:1x1x8x8 -t onnx-fp32 -o {out}",
        2,
        ("float99",),
    ),
    (
        "input-wrong-rank",
        "export edgekit_demo.zoo:digits_cnn --weights {weights} --input image:float32:1x8x8 -t onnx-fp32 -o {out}",
        2,
        ("image",),
    ),
    (
        "input-wrong-size",
        "export edgekit_demo.zoo:digits_cnn --weights {weights} --input image:float32:1x1x16x16 -t onnx-fp32 -o {out}",
        2,
        ("image",),
    ),
    (
        "input-wrong-dtype",
        "export edgekit_demo.zoo:digits_cnn --weights {weights} --input image:int64:1x1x8x8 -t onnx-fp32 -o {out}",
        2,
        ("image",),
    ),
    (
        "input-none-for-factory",
        "export edgekit_demo.zoo:digits_cnn --weights {weights} -t onnx-fp32 -o {out}",
        2,
        ("--input",),
    ),
    (
        "input-zero-dim",
        "export edgekit_demo.zoo:digits_cnn --weights {weights} --input image:float32:0x1x8x8 -t onnx-fp32 -o {out}",
        2,
        ("image",),
    ),
    # targets and devices
    ("target-unknown", E + " -t onnx-fp33", 2, ("onnx-fp33", "onnx-fp32")),
    ("target-empty", E + " -t ''", 2, ("target",)),
    ("device-unknown", E + " -t onnx-fp32 --device pixel-99", 2, ("pixel-99",)),
    ("device-refuses-precision", E + " -t openvino-fp32 --device intel-npu", 2, ("intel-npu",)),
    ("keep-float-no-layer", E8 + " --calib {calib} --keep-float no_such_layer", 2, ("no_such_layer",)),
    ("calibration-unknown", E8 + " --calib {calib} --calibration entropy", 2, ("entropy", "percentile")),
    # calibration data
    ("calib-missing-for-int8", E8, 2, ("--calib",)),
    ("calib-missing-file", E8 + " --calib {missing}", 2, ("does not exist",)),
    ("calib-folder", E8 + " --calib {data_folder}", 2, ("is a folder",)),
    ("calib-zero-bytes", E8 + " --calib {npz_zero}", 2, ("zero.npz",)),
    ("calib-scrambled", E8 + " --calib {npz_scrambled}", 2, ("scrambled.npz",)),
    ("calib-pickled-objects", E8 + " --calib {npz_objects}", 2, ("objects.npz",)),
    ("calib-wrong-names", E8 + " --calib {npz_wrong_names}", 2, ("image",)),
    ("calib-wrong-shape", E8 + " --calib {npz_wrong_shape}", 2, ("image",)),
    ("calib-wrong-rank", E8 + " --calib {npz_wrong_rank}", 2, ("image",)),
    ("calib-nan", E8 + " --calib {npz_nan}", 2, ("NaN",)),
    ("calib-inf", E8 + " --calib {npz_inf}", 2, ("image",)),
    ("calib-no-samples", E8 + " --calib {npz_empty}", 2, ("empty.npz",)),
    ("calib-strings", E8 + " --calib {npz_strings}", 2, ("image",)),
    ("calib-csv-no-header", E8 + " --calib {csv_no_header}", 2, ("noheader.csv",)),
    ("calib-text-for-image-model", E8 + " --calib {csv_text}", 2, ("tokenizer",)),
    ("calib-unknown-suffix", E8 + " --calib {txt_data}", 2, ("data.txt",)),
    ("calib-limit-zero", E8 + " --calib {calib} --calib-limit 0", 2, ("--calib-limit",)),
    ("calib-limit-negative", E8 + " --calib {calib} --calib-limit -3", 2, ("--calib-limit",)),
    # where the output goes
    (
        "out-is-a-file",
        "export edgekit_demo.zoo:digits_cnn --weights {weights} --input image:float32:1x1x8x8 -t onnx-fp32 -o {file}",
        2,
        ("file",),
    ),
    ("export-json-folder", E + " -t onnx-fp32 --json {folder}", 2, ("--json",)),
    ("export-json-missing-parent", E + " -t onnx-fp32 --json {missing}/x.json", 2, ("does not exist",)),
    ("tokenizer-missing", E + " -t onnx-fp32 --tokenizer {missing}", 2, ("does not exist",)),
    ("tokenizer-not-a-tokenizer", E + " -t onnx-fp32 --tokenizer {folder}", 2, ("tokenizer",)),
    ("eval-during-export-missing", E8 + " --calib {calib} --eval {missing} --max-drop 1", 2, ("does not exist",)),
    # evaluate's data and metrics
    ("data-missing", EV + " {missing}", 2, ("does not exist",)),
    ("data-folder", EV + " {data_folder}", 2, ("is a folder",)),
    ("data-zero-bytes", EV + " {npz_zero}", 2, ("zero.npz",)),
    ("data-scrambled", EV + " {npz_scrambled}", 2, ("scrambled.npz",)),
    ("data-pickled-objects", EV + " {npz_objects}", 2, ("objects.npz",)),
    ("data-wrong-names", EV + " {npz_wrong_names}", 2, ("image",)),
    ("data-wrong-shape", EV + " {npz_wrong_shape}", 2, ("image",)),
    ("data-wrong-rank", EV + " {npz_wrong_rank}", 2, ("image",)),
    ("data-no-labels", EV + " {npz_no_labels}", 2, ("labels",)),
    ("data-float-labels", EV + " {npz_float_labels}", 2, ("labels", "whole")),
    ("data-label-out-of-range", EV + " {npz_label_out_of_range}", 2, ("40",)),
    ("data-label-count", EV + " {npz_label_count}", 2, ("labels",)),
    ("data-nan", EV + " {npz_nan}", 2, ("NaN",)),
    ("data-inf", EV + " {npz_inf}", 2, ("image",)),
    ("data-no-samples", EV + " {npz_empty}", 2, ("empty.npz",)),
    ("data-strings", EV + " {npz_strings}", 2, ("image",)),
    ("data-csv-no-header", EV + " {csv_no_header}", 2, ("noheader.csv",)),
    ("data-csv-empty", EV + " {csv_empty}", 2, ("empty.csv",)),
    ("data-text-without-tokenizer", EV + " {csv_text}", 2, ("tokenizer",)),
    ("data-jsonl-not-objects", "evaluate {text_onnx} --data {jsonl_not_objects}", 2, ("lists.jsonl",)),
    ("data-jsonl-broken", "evaluate {text_onnx} --data {jsonl_broken}", 2, ("broken.jsonl",)),
    ("data-jsonl-no-text", "evaluate {text_onnx} --data {jsonl_no_text}", 2, ("text",)),
    ("data-unknown-suffix", EV + " {txt_data}", 2, ("data.txt",)),
    ("data-builtin-unknown", EV + " builtin:no-such-set:test", 2, ("no-such-set",)),
    ("data-builtin-unknown-split", EV + " builtin:digits:everything", 2, ("everything",)),
    ("data-builtin-wrong-model", "evaluate {text_onnx} --data builtin:digits:test", 2, ("digits",)),
    ("evaluate-limit-zero", EV + " {test} --limit 0", 2, ("--limit",)),
    ("evaluate-limit-negative", EV + " {test} --limit -5", 2, ("--limit",)),
    ("metric-unknown", EV + " {test} --metric bleu", 2, ("bleu",)),
    ("metric-mixed-kinds", EV + " {test} --metric accuracy,perplexity", 2, ("one kind per run",)),
    ("perplexity-on-image-classifier", EV + " {test} --metric perplexity", 2, ("causal language model",)),
    (
        "perplexity-on-text-classifier",
        "evaluate {text_onnx} --data {csv_text} --metric perplexity",
        2,
        ("causal language model", "shape"),
    ),
    ("max-drop-without-reference", EV + " {test} --max-drop 1", 2, ("--reference",)),
    ("reference-missing", EV + " {test} --reference {missing} --max-drop 1", 2, ("does not exist",)),
    (
        "reference-other-architecture",
        EV + " {test} --reference edgekit_demo.zoo:digits_cnn --weights {mlp_weights} --max-drop 1",
        2,
        ("do not fit",),
    ),
    ("evaluate-json-folder", EV + " {test} --json {folder}", 2, ("--json",)),
    ("evaluate-json-missing-parent", EV + " {test} --json {missing}/r.json", 2, ("does not exist",)),
    ("evaluate-ptl-without-sidecar", "evaluate {bare_ptl} --data {test}", 2, ("sidecar",)),
    ("evaluate-xml-without-bin", "evaluate {xml_without_bin} --data {test}", 2, (".bin",)),
    # benchmark options
    ("processes-zero", B.replace("--processes 1", "--processes 0"), 2, ("--processes",)),
    ("min-runs-zero", B.replace("--min-runs 2", "--min-runs 0"), 2, ("--min-runs",)),
    ("min-time-negative", B + " --min-time -1", 2, ("--min-time",)),
    ("warmup-negative", B.replace("--warmup 0", "--warmup -2"), 2, ("--warmup",)),
    ("timeout-zero", B + " --timeout 0", 2, ("--timeout",)),
    ("threads-zero", B + " --threads 0", 2, ("--threads",)),
    ("batch-zero", B + " --batch 0", 2, ("--batch",)),
    ("baseline-missing", B + " --baseline {missing}", 2, ("does not exist",)),
    ("baseline-empty", B + " --baseline {baseline_empty_json}", 2, ("baseline_empty.json",)),
    ("baseline-broken", B + " --baseline {baseline_broken_json}", 2, ("baseline_broken.json",)),
    ("baseline-list", B + " --baseline {baseline_list_json}", 2, ("baseline_list.json",)),
    ("baseline-no-runs", B + " --baseline {baseline_no_runs_json}", 2, ("baseline_no_runs.json",)),
    ("benchmark-json-folder", B + " --json {folder}", 2, ("--json",)),
    ("benchmark-json-missing-parent", B + " --json {missing}/b.json", 2, ("does not exist",)),
    ("aa-two-artifacts", "benchmark {onnx} {tflite} --aa", 2, ("exactly one",)),
    ("device-unknown-scheme", "benchmark {onnx} --device ftp://127.0.0.1", 2, ("ftp://127.0.0.1",)),
    ("ssh-connection-refused", "benchmark {onnx} --device ssh://nobody@127.0.0.1:1 --timeout 20", 1, ("127.0.0.1",)),
    ("adb-without-tool", "benchmark {tflite} --device adb://emulator-5554", 2, ("--tool",)),
    ("tool-missing-path", "benchmark {onnx} --tool {missing}/benchmark_model", 2, ("does not exist",)),
    ("aa-missing", "benchmark {missing} --aa", 2, ("does not exist",)),
    ("benchmark-unknown-kind", "benchmark {file}", 2, ("file",)),
    ("benchmark-xml-without-bin", "benchmark {xml_without_bin}", 2, (".bin",)),
    # release
    ("bundle-missing", "bundle {missing} --platform android -o {out}", 2, ("does not exist",)),
    ("bundle-folder", "bundle {folder} --platform android -o {out}", 2, ("is a folder",)),
    ("bundle-empty", "bundle {empty_onnx} --platform android -o {out}", 2, ("empty",)),
    ("bundle-without-sidecar", "bundle {bare_onnx} --platform android -o {out}", 2, ("sidecar",)),
    ("bundle-ir-for-android", "bundle {xml} --platform android -o {out}", 2, ("android",)),
    ("bundle-unknown-platform", "bundle {onnx} --platform symbian -o {out}", 2, ("symbian",)),
    ("bundle-labels-missing", "bundle {onnx} --platform android --labels {missing} -o {out}", 2, ("does not exist",)),
    (
        "bundle-results-broken",
        "bundle {onnx} --platform android --results {results_broken_json} -o {out}",
        2,
        ("results_broken.json",),
    ),
    ("bundle-nothing", "bundle --platform android -o {out}", 2, ("ARTIFACT",)),
    ("verify-missing", "verify {missing}", 2, ("does not exist",)),
    ("verify-scrambled-zip", "verify {zip_scrambled}", 2, ("scrambled.zip",)),
    ("verify-tampered", "verify {bundle_tampered}", 1, ("sha256",)),
    ("verify-broken-manifest", "verify {bundle_broken_manifest}", 1, ("manifest.json", "not JSON")),
    ("verify-a-model", "verify {onnx}", 2, ("bundle",)),
    ("run-missing", "run {missing}", 2, ("No such file",)),
    ("run-broken-yaml", "run {pipeline_broken_yaml}", 2, ("pipeline_broken.yaml",)),
    ("run-unknown-field", "run {pipeline_unknown_yaml}", 2, ("colour",)),
    ("run-no-source", "run {pipeline_no_source_yaml}", 2, ("source",)),
    ("run-unknown-target", "run {pipeline_bad_target_yaml}", 2, ("onnx-fp33",)),
    ("run-prune-without-sparsity", "run {pipeline_prune_yaml}", 2, ("sparsity",)),
    ("run-not-a-mapping", "run {pipeline_list_yaml}", 2, ("pipeline_list.yaml",)),
    ("report-missing", "report {missing} -o {out}/r.html", 2, ("does not exist",)),
    ("report-broken", "report {results_broken_json} -o {out}/r.html", 2, ("results_broken.json",)),
    # compression
    ("compress-unknown-kind", "compress shrink --model edgekit_demo.zoo:digits_cnn -o {out}", 2, ("shrink",)),
    ("compress-prune-unknown-method", P + " --data {test} --sparsity 0.5 --method random", 2, ("random",)),
    ("compress-prune-sparsity-too-big", P + " --data {test} --sparsity 1.5", 2, ("sparsity",)),
    ("compress-prune-data-missing", P + " --data {missing} --sparsity 0.5", 2, ("does not exist",)),
    ("compress-prune-data-without-labels", P + " --data {npz_no_labels} --sparsity 0.5", 2, ("labels",)),
    ("compress-prune-epochs-negative", P + " --data {test} --sparsity 0.5 --finetune-epochs -1", 2, ("epochs",)),
    # catalogs and listings
    ("catalog-missing", "--catalog {missing} targets", 2, ("nothing-here",)),
    ("catalog-broken-yaml", "--catalog {catalog_broken} devices", 2, ("board.yaml",)),
    ("catalog-invalid-profile", "--catalog {catalog_invalid} devices", 2, ("favourite_colour",)),
    ("command-unknown", "exprot {onnx}", 2, ("exprot",)),
    ("option-unknown", "export {onnx} -t onnx-fp32 --quantise -o {out}", 2, ("--quantise",)),
]


def _argv(command: str, kit: dict[str, str], out: Path) -> list[str]:
    import shlex

    return [part.format(out=out, **kit) for part in shlex.split(command)]


@pytest.fixture
def own_catalog(monkeypatch):
    """`--catalog` sets EDGEKIT_CATALOG for the process: the built-in catalog again after each case."""
    from edgekit.catalog import clear_caches

    monkeypatch.delenv("EDGEKIT_CATALOG", raising=False)
    yield
    os.environ.pop("EDGEKIT_CATALOG", None)  # not through monkeypatch, whose undo would put the value back
    clear_caches()


@pytest.mark.parametrize(("command", "code", "phrases"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(kit, command, code, phrases, tmp_path, capsys, monkeypatch, own_catalog):
    out = tmp_path / "out"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.syspath_prepend(kit["factories"])
    before = {p: p.stat().st_mtime_ns for p in Path(kit["folder"]).iterdir()}
    got, output = run_cli(capsys, *_argv(command, kit, out))
    assert got == code, output
    assert "Traceback" not in output, output
    if code == 2:
        assert "error:" in output.lower(), output  # edgekit's "error:" or click's "Error:"
    for phrase in phrases:
        assert phrase in output, output
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    assert not any(scratch.iterdir()), list(scratch.iterdir())
    assert {p: p.stat().st_mtime_ns for p in Path(kit["folder"]).iterdir()} == before  # nothing overwritten


def test_the_corpus_has_at_least_150_cases():
    assert len(CASES) >= 150 and len({c[0] for c in CASES}) == len(CASES)

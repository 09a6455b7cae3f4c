"""A BERT-shaped encoder (2 layers, real attention mask, exact GELU, LayerNorm) trained on real tweets,
through every target that runs here, and the per-layer float fallback on a model with a planted outlier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from edgekit_demo.zoo_text import TINY_BERT_INPUTS, minilm_dir

SOURCE = "edgekit_demo.zoo_text:tiny_bert_sentiment"
# every target that exports and runs here
TARGETS = [
    "onnx-fp32",
    "onnx-fp16",
    "onnx-int8-dynamic",
    "onnx-int8",
    "pytorch-mobile",
    "pytorch-mobile-int8",
    "executorch-fp32",
    # covered fast on the digits CNN (test_export_mobile); an ExecuTorch int8 lowering of the encoder takes a minute
    pytest.param("executorch-int8", marks=pytest.mark.slow),
    "tflite-fp32",
    "tflite-fp16",
    "tflite-dynamic",
    "tflite-int8",
    # test_int16x8_takes_the_token_ids_through_litert_torch_with_16_bit_activations makes the same file, fast
    pytest.param("tflite-int16x8", marks=pytest.mark.slow),
    "openvino-fp32",
    "openvino-fp16",
    "openvino-int8",
    "openvino-int8-weights",
]
INT8 = ["onnx-int8", "onnx-int8-dynamic", "pytorch-mobile-int8", "executorch-int8", "openvino-int8"]
PLANTED_CHANNEL, PLANTED_SCALE = 5, 300.0
UNUSED_TOKEN = 1  # [unused0] in MiniLM's vocabulary: the tokenizer never produces it


@pytest.fixture(scope="session")
def tiny_bert(workdir) -> dict:
    """The trained encoder's weights, 200 training tweets (calibration, parity) and 300 test tweets."""
    from safetensors.torch import save_file

    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_text import train_tiny_bert

    model = train_tiny_bert()
    weights = workdir / "tiny-bert.safetensors"
    save_file(model.state_dict(), str(weights))
    # the planted outlier: one channel of the last LayerNorm 300x larger, the head's weights for it 300x
    # smaller: the float model computes the same logits, but the head's int8 input range is stretched
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for name in ("encoder.encoder.layer.1.output.LayerNorm.weight", "encoder.encoder.layer.1.output.LayerNorm.bias"):
        state[name][PLANTED_CHANNEL] *= PLANTED_SCALE
    state["head.weight"][:, PLANTED_CHANNEL] /= PLANTED_SCALE
    planted = workdir / "tiny-bert-planted.safetensors"
    save_file(state, str(planted))
    # an outlier outside every layer: a word-embedding row no tweet looks up ([unused0]), 1000x the table's
    # largest value; the float model computes the same, the int8 embedding Gather's scale crushes every row
    state = {k: v.clone() for k, v in model.state_dict().items()}
    table = state["encoder.embeddings.word_embeddings.weight"]
    table[UNUSED_TOKEN] = 1000 * table.abs().max()
    embedding = workdir / "tiny-bert-embedding-outlier.safetensors"
    save_file(state, str(embedding))
    return {
        "weights": weights,
        "planted": planted,
        "embedding": embedding,
        "calib": write_tweets_csv(workdir / "tweets-calib.csv", "train", 200),
        "test": write_tweets_csv(workdir / "tweets-test-300.csv", "test", 300),
    }


def _export(tiny_bert: dict, target: str, out: Path, weights: str = "weights", **options):
    from edgekit.exporter import export
    from edgekit.spec import parse_input_specs

    return export(
        SOURCE,
        target,
        out,
        calib=tiny_bert["calib"],
        inputs=parse_input_specs(TINY_BERT_INPUTS),
        weights=tiny_bert[weights],
        tokenizer=minilm_dir(),
        **options,
    )


def _accuracy(artifact, test_csv) -> float:
    from edgekit.evaluation import evaluate

    return evaluate(artifact, test_csv).metrics["accuracy"]


@pytest.fixture(scope="session")
def float_accuracy(tiny_bert, tmp_path_factory) -> float:
    from edgekit.evaluation import evaluate

    out = tmp_path_factory.mktemp("tiny-ref")
    result = _export(tiny_bert, "onnx-fp32", out)
    report = evaluate(result.artifact, tiny_bert["test"], reference=SOURCE, reference_weights=tiny_bert["weights"])
    assert report.metrics["accuracy"] == pytest.approx(report.reference["accuracy"], abs=1e-9)
    assert report.reference["accuracy"] > 0.55  # it learned the task (3 classes, the largest is 45%)
    return report.reference["accuracy"]


@pytest.mark.parametrize("target", TARGETS)
def test_the_tiny_encoder_goes_through_every_target(target, tiny_bert, float_accuracy, tmp_path):
    result = _export(tiny_bert, target, tmp_path)
    assert result.parity.passed and result.artifact.exists()
    accuracy = _accuracy(result.artifact, tiny_bert["test"])
    assert accuracy >= float_accuracy - 0.015, f"{target}: {accuracy:.4f} vs float {float_accuracy:.4f}"
    if target in [*INT8, "tflite-int8"]:
        fallback = result.sidecar["quantization"]["fallback"]
        assert fallback["attempts"][0]["passed"] and fallback["float_layers"] == []


# tflite-int8 also tries the litert-torch route after the ONNX route's file passes (about 75 s in all); the ONNX
# route's fallback on this encoder is checked fast by test_tflite_int8_splits_outlier_layers_into_channel_groups_...
@pytest.mark.parametrize(
    "target",
    ["onnx-int8", "onnx-int8-dynamic", "pytorch-mobile-int8", pytest.param("tflite-int8", marks=pytest.mark.slow),
     "openvino-int8"],
)  # fmt: skip
def test_the_fallback_keeps_exactly_the_planted_outlier_layer_float(target, tiny_bert, tmp_path):
    from edgekit.backends.litert.plan import OTHER_OPS

    # PyTorch Mobile's channel groups give the planted channel a scale of its own (below): the fallback without
    options = {"options": {"channel_groups": False}} if target == "pytorch-mobile-int8" else {}
    result = _export(tiny_bert, target, tmp_path, weights="planted", **options)
    record = result.sidecar["quantization"]["fallback"]
    # TFLite keeps its non-linear ops float first (full-integer LayerNorm/Softmax), then named layers
    expected = [OTHER_OPS, "head"] if target.startswith("tflite") else ["head"]
    assert [f["layer"] for f in record["float_layers"]] == expected, record["attempts"]
    assert not record["attempts"][0]["passed"] and record["attempts"][-1]["passed"]
    assert record["sensitivity"][0]["layer"] == "head"  # measured the most sensitive
    head = next(f for f in record["float_layers"] if f["layer"] == "head")
    assert head["error"] > 10 * record["sensitivity"][1]["error"] and not head["pinned"] and result.parity.passed
    if target == "tflite-int8":  # litert-torch's file (non-linear ops float by design) was tried, and said why not
        (later,) = result.sidecar["route_choice"]["tried"]
        assert "litert-torch" in later["route"] and later["result"].startswith("not taken: "), later
    if target == "openvino-int8":  # NNCF's ignored scope, in the IR's names
        assert result.sidecar["quantization"]["kept_float_ops"] == ["__module.head/aten::linear/MatMul"]
    if target == "onnx-int8":  # calibrated once: the attempt that kept the head float reused the ranges
        assert result.sidecar["quantization"]["calibration_ranges"] == "reused"
        from edgekit.fallback import FallbackOptions

        pinned = _export(
            tiny_bert, target, tmp_path / "pinned", weights="planted", fallback=FallbackOptions(keep_float=("head",))
        )
        assert pinned.sidecar["quantization"]["calibration_ranges"] == "measured"
        assert _initializers(pinned.artifact) == _initializers(result.artifact)  # the same scales either way


def test_channel_groups_quantize_the_planted_outlier_layer_with_nothing_float(tiny_bert, tmp_path):
    """PyTorch Mobile's per-layer static int8 gives the head's 300x input channel an int8 scale of its own: the
    head is quantized, no layer is kept float, and the file agrees with the source."""
    result = _export(tiny_bert, "pytorch-mobile-int8", tmp_path, weights="planted")
    notes = result.sidecar["route"][0]["quantization"]
    assert result.sidecar["quantization"]["applied"] == "static" and notes["float_layers"] == []
    assert notes["channel_groups"]["layers"]["head"]["input"] >= 2, notes["channel_groups"]
    fallback = result.sidecar["quantization"]["fallback"]
    assert fallback["float_layers"] == [] and fallback["attempts"][0]["passed"] and result.parity.passed
    assert result.parity.outputs[0].top1 >= 0.98


@pytest.mark.parametrize("target", ["onnx-int8", "onnx-int8-dynamic"])
def test_an_outlier_outside_every_layer_is_kept_float_by_the_non_layer_group(target, tiny_bert, tmp_path):
    """Keeping all 13 layers float cannot fix an int8 embedding table: the fallback then keeps ONNX Runtime's
    quantized non-layer ops float, tries the layers again on top, and the sidecar says which ops those were."""
    import onnx

    from edgekit.backends.base import NON_LAYER_OPS

    result = _export(tiny_bert, target, tmp_path, weights="embedding")
    record, quantization = result.sidecar["quantization"]["fallback"], result.sidecar["quantization"]
    assert result.parity.passed and [f["layer"] for f in record["float_layers"]] == [NON_LAYER_OPS]
    attempts = record["attempts"]
    assert not attempts[0]["passed"] and [a["float_layers"] for a in attempts if a["passed"]][-1] == 1
    everything = next(a for a in attempts if a["float_layers"] == 14)  # all 13 layers and the group: passed
    assert everything["passed"] and not any(a["passed"] for a in attempts[: attempts.index(everything)])
    assert quantization["float_non_layer_ops"]["Gather"] >= 1
    graph = onnx.load(str(result.artifact)).graph
    produced_by = {o: n.op_type for n in graph.node for o in n.output}
    gathers = [n for n in graph.node if n.op_type == "Gather" and n.input[0].endswith("word_embeddings.weight")]
    assert gathers and all(produced_by.get(n.input[0]) != "DequantizeLinear" for n in gathers)
    plain = _export(tiny_bert, target, tmp_path / "plain").sidecar["quantization"]["quantized_ops"]
    assert quantization["quantized_ops"] == {op: n for op, n in plain.items() if op != "Gather"}  # layers int8


def test_int16x8_takes_the_token_ids_through_litert_torch_with_16_bit_activations(tiny_bert, tmp_path):
    """TFLite's 16x8 calibrator refuses integer inputs; the litert-torch route quantizes with ai-edge-quantizer,
    whose calibrator passes them through: int32 token ids in, int16 activations, int8 weights."""
    from edgekit.backends.litert.tflite_file import read_tflite

    result = _export(tiny_bert, "tflite-int16x8", tmp_path)
    assert result.parity.passed and result.sidecar["quantization"]["applied"] == "int16x8"
    step = result.sidecar["route"][-1]
    assert step["tool"] == "litert-torch" and "ai-edge-quantizer" in step["quantizer"]
    (onnx_route,) = result.sidecar["route_choice"]["tried"]  # refused before onnx2tf ran, naming the inputs
    assert "takes float inputs only" in onnx_route["result"] and "(input_ids, attention_mask)" in onnx_route["result"]
    info = read_tflite(result.artifact)
    assert [t.dtype for t in info.inputs] == ["INT32", "INT32"]
    fc = [op for op in info.ops if op.op == "FULLY_CONNECTED"]
    assert len(fc) == 13 and all(op.inputs[0].dtype == "INT16" and op.inputs[1].dtype == "INT8" for op in fc)
    # the word-embedding table int8 (weight-only, dequantized once), not 30522 x 64 floats
    tables = [op.inputs[0] for op in info.ops if op.op == "DEQUANTIZE" and op.inputs[0].shape == (30522, 64)]
    assert [t.dtype for t in tables] == ["INT8"] and result.artifact.stat().st_size < 30522 * 64 * 2
    from edgekit.fallback import FallbackOptions

    pinned = _export(tiny_bert, "tflite-int16x8", tmp_path / "pinned", fallback=FallbackOptions(keep_float=("head",)))
    fc = [op for op in read_tflite(pinned.artifact).ops if op.op == "FULLY_CONNECTED"]
    assert [op.outputs[0].shape for op in fc if op.computes_in_float] == [(1, 3)]  # the head: 3 logits
    assert sum(op.inputs[0].dtype == "INT16" for op in fc) == 12


def _gate(passing: set[str]):
    """An attempt that passes when it keeps every op group in `passing` float, recording what it was asked."""
    from edgekit.fallback import Verdict

    asked: list[tuple[str, ...]] = []

    def attempt(keep: tuple[str, ...]) -> Verdict:
        asked.append(keep)
        return Verdict(keep, passing <= set(keep), [] if passing <= set(keep) else [f"needs {sorted(passing)}"])

    return attempt, asked


def test_the_fallback_tries_the_non_layer_group_only_after_every_layer_and_then_the_fewest_layers_on_top():
    from edgekit.errors import GateError
    from edgekit.fallback import search

    attempt, asked = _gate({"OPS", "b"})
    best, _ = search(attempt, (), lambda: ["a", "b", "c"], attempt(()), last_resort=("OPS",))
    assert best.kept == ("OPS", "a", "b")  # in sensitivity order: a before b
    assert asked == [(), ("a",), ("a", "b"), ("a", "b", "c"), ("OPS", "a", "b", "c"), ("OPS",), ("OPS", "a"),
                     ("OPS", "a", "b")]  # fmt: skip
    attempt, asked = _gate({"b"})  # the layers suffice: the group is never tried
    best, _ = search(attempt, (), lambda: ["a", "b", "c"], attempt(()), last_resort=("OPS",))
    assert best.kept == ("a", "b") and not any("OPS" in keep for keep in asked)
    attempt, asked = _gate({"elsewhere"})  # nothing the fallback controls: refused after one more attempt
    with pytest.raises(GateError, match=r"all 3 quantizable layers and the OPS kept float .*needs"):
        search(attempt, (), lambda: ["a", "b", "c"], attempt(()), last_resort=("OPS",))
    assert asked[-1] == ("OPS", "a", "b", "c") and len(asked) == 5


def test_a_layer_whose_float_copy_the_runtime_cannot_load_stays_quantized_and_the_search_goes_on():
    """OpenVINO's CPU plugin refused ModernBERT's int8 IR with its head's first Linear float: that attempt is a
    failure the search steps around (the layer stays quantized), not the end of the export."""
    from edgekit.fallback import Verdict, search

    attempt, _ = _gate({"c"})

    def loading(keep: tuple[str, ...]) -> Verdict:
        return Verdict.unloadable(keep, "Check failed") if "b" in keep else attempt(keep)

    best, tried = search(loading, (), lambda: ["a", "b", "c", "d"], loading(()))
    assert best.kept == ("a", "c")
    assert [v.kept for v in tried if not v.loads] == [("a", "b")]
    assert "cannot load" in tried[2].failures()[0] and tried[2].to_json()["layers"] == ["a", "b"]


def _session_op_types(path, tmp_path: Path) -> dict[str, int]:
    """The op types of the graph ONNX Runtime runs for the file, after its own session-time fusions."""
    from collections import Counter

    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "session-optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return dict(Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node))


def _initializers(path) -> dict:
    import onnx
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i).tobytes() for i in onnx.load(str(path)).graph.initializer}


@pytest.mark.slow  # two ExecuTorch int8 exports: 1.5 minutes on 2 cores
def test_executorch_int8_absorbs_the_planted_outlier_and_keeps_pinned_layers_float(tiny_bert, tmp_path):
    """XNNPACK's linear layers measure their activation range per inference: the planted outlier that
    breaks calibrated ranges passes as is; a layer pinned with keep_float leaves the quantizer."""
    from edgekit.fallback import FallbackOptions

    planted = _export(tiny_bert, "executorch-int8", tmp_path / "planted", weights="planted")
    assert planted.parity.passed and planted.sidecar["quantization"]["fallback"]["float_layers"] == []
    pinned = _export(tiny_bert, "executorch-int8", tmp_path / "pinned", fallback=FallbackOptions(keep_float=("head",)))
    step = pinned.sidecar["route"][-1]
    assert step["quantization"]["float_layers"] == ["head"] and pinned.parity.passed
    assert pinned.sidecar["quantization"]["fallback"]["float_layers"] == [{"layer": "head", "pinned": True}]


def test_an_attempt_that_fails_parity_is_not_evaluated_but_the_kept_file_is(tiny_bert, tmp_path):
    """Cheap checks first: the accuracy gate runs only on attempts that passed parity (an attempt failing parity
    fails whatever its accuracy); the file the export keeps has its figures in the sidecar."""
    from edgekit.fallback import FallbackOptions

    gate = FallbackOptions(eval_data=Path(tiny_bert["test"]), max_drop=1.5)
    result = _export(tiny_bert, "onnx-int8", tmp_path, weights="planted", fallback=gate)
    first, *_, last = result.sidecar["quantization"]["fallback"]["attempts"]
    assert not first["passed"] and first["evaluated"] is False and "accuracy_drop_pts" not in first
    assert last["passed"] and "evaluated" not in last and last["accuracy_drop_pts"] <= 1.5
    assert result.sidecar["evaluation"]["passed"]


def test_without_the_fallback_the_planted_export_fails(tiny_bert, tmp_path, capsys):
    code, out = run_cli(
        capsys, "export", SOURCE, "-t", "onnx-int8", "-o", tmp_path, "--weights", tiny_bert["planted"],
        *(arg for spec in TINY_BERT_INPUTS for arg in ("--input", spec)),
        "--tokenizer", minilm_dir(), "--calib", tiny_bert["calib"], "--no-fallback",
    )  # fmt: skip
    assert code == 1 and "failed its gate (--no-fallback)" in out and "top-1 agreement" in out, out
    assert not list(tmp_path.glob("*-onnx-int8.onnx")) and list(tmp_path.glob("*.rejected.onnx"))


def test_keep_float_pins_layers_and_the_table_is_printed(tiny_bert, tmp_path, capsys):
    code, out = run_cli(
        capsys, "export", SOURCE, "-t", "onnx-int8", "-o", tmp_path, "--weights", tiny_bert["weights"],
        *(arg for spec in TINY_BERT_INPUTS for arg in ("--input", spec)),
        "--tokenizer", minilm_dir(), "--calib", tiny_bert["calib"],
        "--keep-float", "encoder.encoder.layer.?.output.dense", "--report-sensitivity",
        "--eval", tiny_bert["test"], "--max-drop", "1.5",
    )  # fmt: skip
    assert code == 0, out
    assert "per-layer quantization sensitivity" in out and "encoder.encoder.layer.0.attention.self.query" in out
    sidecar = json.loads(next(tmp_path.glob("*.edgekit.json")).read_text())
    fallback = sidecar["quantization"]["fallback"]
    assert fallback["pinned"] == ["encoder.encoder.layer.0.output.dense", "encoder.encoder.layer.1.output.dense"]
    assert sidecar["quantization"]["float_nodes_kept"] >= 2  # their MatMul (and bias Add) nodes stayed float
    assert len(fallback["sensitivity"]) == 13 and sidecar["evaluation"]["passed"]
    assert sidecar["evaluation"]["drop"]["accuracy"] <= 1.5


def test_keep_float_naming_no_layer_lists_close_names(tiny_bert, tmp_path, capsys):
    code, out = run_cli(
        capsys, "export", SOURCE, "-t", "pytorch-mobile-int8", "-o", tmp_path, "--weights", tiny_bert["weights"],
        *(arg for spec in TINY_BERT_INPUTS for arg in ("--input", spec)),
        "--tokenizer", minilm_dir(), "--calib", tiny_bert["calib"], "--keep-float", "encoder.layer.0.output.dens",
    )  # fmt: skip
    assert code == 2 and "names no quantizable layer" in out and "encoder.encoder.layer.0.output.dense" in out, out
    assert not list(tmp_path.iterdir())


def test_an_accuracy_gate_no_fallback_can_meet_fails_with_the_float_figure(tiny_bert, tmp_path, capsys):
    """A negative --max-drop asks the file to beat its source: even all-float cannot, and it says so."""
    code, out = run_cli(
        capsys, "export", SOURCE, "-t", "onnx-int8", "-o", tmp_path, "--weights", tiny_bert["weights"],
        *(arg for spec in TINY_BERT_INPUTS for arg in ("--input", spec)),
        "--tokenizer", minilm_dir(), "--calib", tiny_bert["calib"], "--eval", tiny_bert["test"], "--max-drop", "-5",
    )  # fmt: skip
    assert code == 1 and "No float fallback meets the gate" in out and "all 13 quantizable layers" in out, out
    assert "accuracy" in out and "exceeds --max-drop -5" in out
    assert not list(tmp_path.glob("*.onnx"))


def test_the_sensitivity_of_an_onnx_source_is_measured_in_onnx_runtime(tiny_bert, tmp_path):
    """An ONNX file as SOURCE: layers are its MatMul/Gemm nodes, measured with ONNX Runtime."""
    from edgekit.data import read_data
    from edgekit.sensitivity import measure
    from edgekit.sources import load

    # an ONNX file as other exporters write it: unfused
    onnx_file = _export(tiny_bert, "onnx-fp32", tmp_path, weights="planted", options={"fuse": False}).artifact
    model = load(onnx_file)
    data = read_data(tiny_bert["calib"], model.signature, minilm_dir(), limit=32)
    table = measure(model, data)
    assert len(table) == 13 and table[0].kind == "Gemm"  # the head, where the outlier was planted
    assert table[0].error > 10 * table[1].error
    assert np.isfinite([s.error for s in table]).all()


@pytest.fixture(scope="session")
def minilm(workdir) -> dict:
    """The demo's MiniLM sentiment classifier (MiniLM + a head fitted on 3,000 tweets), and tweet files."""
    from safetensors.torch import save_file

    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_text import train_sentiment

    weights = workdir / "minilm-sentiment.safetensors"
    save_file(train_sentiment(3000).state_dict(), str(weights))
    return {
        "weights": weights,
        "calib": write_tweets_csv(workdir / "minilm-calib.csv", "validation", 256),
        "gate": write_tweets_csv(workdir / "minilm-gate.csv", "validation", 500),
        "test": write_tweets_csv(workdir / "minilm-test.csv", "test", 1000),
    }


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_minilm_goes_through_every_target(target, minilm, tmp_path):
    """all-MiniLM-L6-v2 + head on every target: parity, and the int8 files the fallback applies to within
    0.5 pt on validation tweets (the gate it works to); every file within 1.5 pt on the test tweets."""
    from edgekit.backends.registry import backend_for_runtime
    from edgekit.catalog import get_target
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit.fallback import FallbackOptions
    from edgekit.spec import parse_input_specs
    from edgekit_demo.zoo_text import SENTIMENT_INPUTS

    spec = get_target(target)
    # the accuracy gate where the per-layer fallback can work to it (as the demo does)
    gated = backend_for_runtime(spec.runtime).keeps_float(spec.quantization)
    result = export(
        "edgekit_demo.zoo_text:minilm_sentiment",
        target,
        tmp_path,
        calib=minilm["calib"],
        inputs=parse_input_specs(SENTIMENT_INPUTS),
        weights=minilm["weights"],
        tokenizer=minilm_dir(),
        fallback=FallbackOptions(eval_data=minilm["gate"], max_drop=0.5) if gated else FallbackOptions(),
    )
    assert result.parity.passed
    report = evaluate(
        result.artifact,
        minilm["test"],
        reference="edgekit_demo.zoo_text:minilm_sentiment",
        reference_inputs=parse_input_specs(SENTIMENT_INPUTS),
        reference_weights=minilm["weights"],
    )
    assert report.drop["accuracy"] <= 1.5, report.to_json()


def test_the_public_api_takes_the_fallback_options(tiny_bert, tmp_path):
    import edgekit
    from edgekit.errors import ParityError
    from edgekit.spec import parse_input_specs

    common = dict(
        calib=tiny_bert["calib"],
        inputs=parse_input_specs(TINY_BERT_INPUTS),
        weights=tiny_bert["planted"],
        tokenizer=minilm_dir(),
    )
    with pytest.raises(ParityError, match=r"\(fallback=False\)"):  # the API names its argument, not --no-fallback
        edgekit.export(SOURCE, "onnx-int8", tmp_path / "strict", fallback=False, **common)
    result = edgekit.export(
        SOURCE, "onnx-int8", tmp_path / "gated", keep_float=("head",), eval_data=tiny_bert["test"], max_drop=1.5,
        **common,
    )  # fmt: skip
    assert result.sidecar["quantization"]["fallback"]["pinned"] == ["head"]
    assert result.sidecar["evaluation"]["passed"] and result.sidecar["quantization"]["kept_nodes_int8_weights"] == 1
    assert result.sidecar["evaluation"]["artifact"] == result.artifact.name  # not the staged file's path


@pytest.mark.slow  # 25 s: two MiniLM-sized graphs through the fusion
def test_onnx_runtime_fuses_the_encoder_and_the_fused_graph_matches_the_unfused_one(tiny_bert, tmp_path):
    import onnx

    from edgekit.data import read_data
    from edgekit.dispatch import open_runner
    from edgekit.fallback import FallbackOptions
    from edgekit.spec import Signature, parse_input_specs

    fused = _export(tiny_bert, "onnx-fp32", tmp_path / "fused")
    plain = _export(tiny_bert, "onnx-fp32", tmp_path / "plain", options={"fuse": False})
    step = next(s for s in fused.sidecar["route"] if s["step"] == "optimize")
    assert step["fused"] == {"Attention": 2, "SkipLayerNormalization": 4, "BiasGelu": 2}
    ops = lambda result: [n.op_type for n in onnx.load(str(result.artifact)).graph.node]
    assert ops(fused).count("Attention") == 2 and "Attention" not in ops(plain)
    # the fused SkipLayerNormalization is written back as Add + a 2-D LayerNormalization, which ONNX Runtime's
    # session does not fuse again when it loads the file
    assert step["layernorm"].startswith("4 SkipLayerNormalization") and "SkipLayerNormalization" not in ops(fused)
    assert _session_op_types(fused.artifact, tmp_path)["LayerNormalization"] == 4 + 1  # and the embeddings'
    as_fused = _export(tiny_bert, "onnx-fp32", tmp_path / "as-fused", options={"unfuse_layernorm": False})
    assert _session_op_types(as_fused.artifact, tmp_path)["SkipLayerNormalization"] == 4
    assert not any(s["step"] == "optimize" for s in plain.sidecar["route"])
    signature = Signature(parse_input_specs(TINY_BERT_INPUTS))
    data = read_data(tiny_bert["calib"], signature, minilm_dir(), 64)
    feed = next(data.batches(64))
    with open_runner(fused.artifact) as a, open_runner(plain.artifact) as b:
        out_a, out_b = next(iter(a.infer(feed).values())), next(iter(b.infer(feed).values()))
    assert np.abs(out_a - out_b).max() < 1e-4, "fusion changes the graph, not what it computes"
    dynamic = _export(tiny_bert, "onnx-int8-dynamic", tmp_path / "dynamic")
    assert dynamic.parity.passed and ops(dynamic).count("QAttention") == 2 and "MatMulInteger" in ops(dynamic)
    # a layer inside a fused Attention: the fused node carries its scope, so keeping it float keeps that node
    kept = _export(
        tiny_bert,
        "onnx-int8-dynamic",
        tmp_path / "kept",
        fallback=FallbackOptions(keep_float=("encoder.encoder.layer.0.attention.self.query",)),
    )
    assert ops(kept).count("QAttention") == 1 and ops(kept).count("Attention") == 1


def test_static_int8_fuses_attention_with_its_projections_outside_and_quantizes_them(tiny_bert, tmp_path):
    """For static QDQ int8 attention fuses into MultiHeadAttention, which takes the projected query, key and
    value: all twelve projections and feed-forward MatMuls are quantized with int8 weights (a fused Attention
    would hold its projections inside, float). Then each attention and its three projections become one
    QAttention, and each projection with a bias Add one MatMulIntegerToFloat: ONNX Runtime's integer ops."""
    import onnx

    result = _export(tiny_bert, "onnx-int8", tmp_path)
    step = next(s for s in result.sidecar["route"] if s["step"] == "optimize")
    assert step["fused"]["MultiHeadAttention"] == 2 and "projections stay MatMuls" in step["attention"]
    quantization = result.sidecar["quantization"]
    assert quantization["integer_ops"] == {"QAttention": 2, "MatMulIntegerToFloat": 4}
    graph = onnx.load(str(result.artifact)).graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n.op_type for n in graph.node for o in n.output}
    ops = [n.op_type for n in graph.node]
    int8 = lambda name: inits[name].data_type == onnx.TensorProto.INT8
    quantized = [n for n in graph.node if n.op_type == "MatMul" and producer.get(n.input[1]) == "DequantizeLinear"]
    assert ops.count("QAttention") == 2 and "MultiHeadAttention" not in ops and "Attention" not in ops
    assert all(int8(n.input[1]) for n in graph.node if n.op_type in ("QAttention", "MatMulIntegerToFloat"))
    # 3 projections in each QAttention, the output and second feed-forward MatMuls with their biases, the first
    # feed-forward MatMuls (their bias goes into the GELU) in QDQ form
    assert 2 * 3 + ops.count("MatMulIntegerToFloat") + len(quantized) == 12
    assert quantization["fallback"]["float_layers"] == []
    assert result.parity.passed and result.parity.outputs[0].top1 >= 0.95


def test_tflite_int8_keeps_the_embedding_lookup_int8_beside_float_non_linear_ops_unless_asked(tiny_bert, tmp_path):
    """With the non-linear ops float, the word-embedding GATHER still reads an int8 table (a quarter of the bytes);
    the fallback's last group, the embedding lookups, makes it float too."""
    from edgekit.backends.litert.plan import LOOKUPS, OTHER_OPS
    from edgekit.backends.litert.tflite_file import read_tflite
    from edgekit.fallback import FallbackOptions

    def lookup(result) -> str:  # the dtype of the table the largest GATHER reads
        gathers = [o for o in read_tflite(result.artifact).ops if o.op == "GATHER"]
        table = max((o.inputs[0] for o in gathers), key=lambda t: int(np.prod(t.shape)))
        return table.dtype

    others = _export(tiny_bert, "tflite-int8", tmp_path / "others", fallback=FallbackOptions(keep_float=(OTHER_OPS,)))
    both = _export(
        tiny_bert, "tflite-int8", tmp_path / "both", fallback=FallbackOptions(keep_float=(OTHER_OPS, LOOKUPS))
    )
    assert lookup(others) == "INT8" and lookup(both) == "FLOAT32"
    assert others.sidecar["route"][-1]["float_layers"] == [OTHER_OPS]
    assert both.sidecar["route"][-1]["float_layers"] == [OTHER_OPS, LOOKUPS]
    assert others.artifact.stat().st_size < both.artifact.stat().st_size and others.parity.passed


def test_tflite_int8_splits_outlier_layers_into_channel_groups_and_keeps_a_split_layer_float_whole(tiny_bert, tmp_path):
    """TFLite's ONNX route gives layers whose channels span unlike ranges one FULLY_CONNECTED per channel group;
    a layer the fallback keeps float is found by its parts' weights, every part float."""
    from edgekit.backends.litert.tflite_file import read_tflite
    from edgekit.fallback import FallbackOptions

    result = _export(tiny_bert, "tflite-int8", tmp_path / "groups")
    step = result.sidecar["route"][-1]
    split = step["channel_groups"]["layers"]
    assert split and all(name.startswith("encoder.") for name in split), step["channel_groups"]
    layer, counts = next(iter(split.items()))
    parts = counts["input"] * counts["output"]
    assert parts >= 2 and result.parity.passed
    plain = _export(tiny_bert, "tflite-int8", tmp_path / "plain", options={"channel_groups": False})
    assert plain.sidecar["route"][-1]["channel_groups"] == "off (--no-channel-groups)"
    connected = lambda r: sum(o.op == "FULLY_CONNECTED" for o in read_tflite(r.artifact).ops)
    assert connected(result) == connected(plain) + sum(c["input"] * c["output"] - 1 for c in split.values())
    kept = _export(tiny_bert, "tflite-int8", tmp_path / "kept", fallback=FallbackOptions(keep_float=(layer,)))
    step = kept.sidecar["route"][-1]
    assert layer in step["float_layers"] and step["float_op_types"]["FULLY_CONNECTED"] == parts, step

"""edgekit search on the digits CNN: three targets (two of them with ONNX Runtime's fusion on and off) exported,
evaluated and benchmarked as trials on the sweep executor; the front, the choice within the budgets, resuming
from the step cache, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli

from edgekit.sidecar import sidecar_path
from edgekit_demo import zoo

TARGETS = ("onnx-fp32", "onnx-int8", "tflite-int8")
LABELS = Path(__file__).resolve().parent.parent / "examples" / "digits-labels.txt"
DEVICE = "x86-avx2"


def _settings(cnn, calib_npz) -> dict:
    return {
        "calib": str(calib_npz),
        "inputs": (zoo.DIGITS_INPUT,),
        "weights": str(cnn[1]),
        "targets": TARGETS,
        "executor": "serial",
    }


@pytest.fixture(scope="module")
def searched(tmp_path_factory, cnn, calib_npz, test_npz):
    import edgekit

    out = tmp_path_factory.mktemp("search")
    result = edgekit.search(
        "edgekit_demo.zoo:digits_cnn", str(test_npz), out, devices=[DEVICE], max_drop=1.0, max_size_mb=0.1,
        bundle=out / "bundles", labels=str(LABELS), **_settings(cnn, calib_npz),
    )  # fmt: skip
    from edgekit.release.search_schema import SCHEMA_FILE, SearchDocument, json_schema

    assert json.loads((out / "search.json").read_text()) == json.loads(json.dumps(result))  # what it returned
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), "stale: run python -m edgekit.release.search_schema"
    SearchDocument.model_validate(result)
    return out, result


def _dominated(row: dict, rows: list[dict]) -> bool:
    mine = (row["accuracy_drop_pts"], row["p50_ms"], row["size_bytes"])
    for other in rows:
        theirs = (other["accuracy_drop_pts"], other["p50_ms"], other["size_bytes"])
        if theirs != mine and all(t <= m for t, m in zip(theirs, mine)):
            return True
    return False


def test_every_trial_runs_once_and_the_front_is_the_grids(searched):
    _, result = searched
    names = [t["name"] for t in result["trials"]]
    # onnx-fp32 with fuse on and off, onnx-int8 with smoothing on and off, tflite-int8 once: the whole grid, once each
    assert len(names) == len(set(names)) == result["space_size"] == 5
    assert {t["target"] for t in result["trials"]} == set(TARGETS)
    assert all(t["status"] != "failed" for t in result["trials"]), result["trials"]
    # fusion changes nothing in a CNN: the second file is the first one's bytes, not a trial of its own
    repeated = [t for t in result["trials"] if "same_file_as" in t]
    assert {t["target"] for t in repeated} == {"onnx-fp32", "onnx-int8"}
    # the cheap check first: onnx-fp32's file (0.165 MB) is over the size budget, so it is not measured
    for t in (t for t in result["trials"] if t["target"] == "onnx-fp32"):
        assert t["status"] == "over budget" and t["p50_ms"] is None and t.get("accuracy") is None
        assert t["over_budget"] == ["onnx-fp32: size 0.16 MB > max_size_mb 0.1 (not evaluated or benchmarked)"]
    measured = [t for t in result["trials"] if "same_file_as" not in t and t["p50_ms"] is not None]
    expected = sorted(t["name"] for t in measured if not _dominated(t, measured))
    assert len(measured) == 2 and sorted(result["front"][DEVICE]) == expected and expected


def test_the_choice_is_the_fastest_file_within_the_budgets_and_is_copied_with_its_sidecar(searched):
    out, result = searched
    choice = result["choices"][DEVICE]
    row = next(t for t in result["trials"] if t["name"] == choice["trial"])
    within = [t for t in result["trials"] if t["status"] == "passed" and "same_file_as" not in t]
    assert len(within) == 2 and row["p50_ms"] == min(t["p50_ms"] for t in within)
    assert row["size_bytes"] <= 0.1e6 and row["accuracy_drop_pts"] <= 1.0 and not row["over_budget"]
    assert all(t["peak_rss_mb"] > 10 for t in within)  # the benchmark's process: Python and the runtime at least
    over = [t for t in result["trials"] if t["status"] == "over budget"]
    assert all(any("max_size_mb" in f for f in t["over_budget"]) for t in over)  # onnx-fp32: 0.165 MB
    page = (out / "report.html").read_text()  # the HTML report: every measured trial, the front marked
    assert choice["trial"] in page and "class=pareto" in page
    copied = Path(choice["file"])
    assert copied.parent == out / DEVICE and copied.read_bytes() == Path(row["file"]).read_bytes()
    sidecar = json.loads(copied.with_suffix(".edgekit.json").read_text())
    assert sidecar["target"] == row["target"] and sidecar["search"]["trial"] == choice["trial"]
    assert sidecar["search"]["scores"]["p50_ms"] == row["p50_ms"] and "fastest p50" in sidecar["search"]["why"]
    from edgekit.sidecar import read_sidecar

    assert read_sidecar(copied).search["front"] == result["front"][DEVICE]  # the sidecar contract holds it
    # --bundle: the choice as a generic (x86 Linux) app bundle with its labels, evaluation and benchmark
    from edgekit.release.verify import verify

    bundle = Path(choice["bundle"])
    assert bundle.parent == out / "bundles" / DEVICE
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert verify(bundle)[1] == [] and (bundle / manifest["labels"]).read_text() == LABELS.read_text()
    model = manifest["models"][0]
    assert model["evaluation"][0]["metrics"]["accuracy"] == row["accuracy"] and model["benchmark"]


def test_a_second_search_resumes_from_the_cache(searched, cnn, calib_npz, test_npz):
    import edgekit

    out, first = searched
    again = edgekit.search(
        "edgekit_demo.zoo:digits_cnn", str(test_npz), out, devices=[DEVICE], max_drop=1.0, max_size_mb=0.1,
        **_settings(cnn, calib_npz),
    )  # fmt: skip
    assert first["steps"]["ran"] > 0 and again["steps"]["ran"] == 0
    assert {d: c["file"] for d, c in again["choices"].items()} == {d: c["file"] for d, c in first["choices"].items()}


def test_random_strategy_samples_the_grid(searched, cnn, calib_npz, test_npz):
    import edgekit

    out, first = searched
    sampled = edgekit.search(
        "edgekit_demo.zoo:digits_cnn", str(test_npz), out, devices=[DEVICE], max_drop=1.0,
        strategy="random", trials=2, seed=1, **_settings(cnn, calib_npz),
    )  # fmt: skip
    names = [t["name"] for t in sampled["trials"]]
    assert len(names) == 2 and set(names) <= {t["name"] for t in first["trials"]}


def test_no_file_within_the_budgets_is_exit_1_naming_what_each_missed(searched, cnn, calib_npz, test_npz, capsys):
    out, _ = searched
    code, text = run_cli(
        capsys, "search", "edgekit_demo.zoo:digits_cnn", "--weights", cnn[1], "--input", zoo.DIGITS_INPUT,
        "--calib", calib_npz, "--data", test_npz, "--device", DEVICE, "--target", "tflite-int8",
        "--max-size-mb", "0.001", "--executor", "serial", "-o", out,
    )  # fmt: skip
    assert code == 1 and "No trial met the budgets for x86-avx2" in text, text
    assert "Closest: x86-avx2: tflite-int8: tflite-int8: size 0.05 MB > max_size_mb 0.001" in text
    assert json.loads((out / "search.json").read_text())["choices"] == {}  # written, with no choice


def test_an_unknown_target_or_an_empty_space_is_a_usage_error(tmp_path, capsys, test_npz):
    code, text = run_cli(capsys, "search", "m.onnx", "--data", test_npz, "--target", "tflite-int9", "-o", tmp_path)
    assert code == 2 and "tflite-int9" in text
    code, text = run_cli(
        capsys, "search", "m.onnx", "--data", test_npz, "--device", "android-npu", "--target", "onnx-fp32",
        "-o", tmp_path,
    )  # fmt: skip
    assert code == 2 and "Nothing to search" in text


def test_a_repeated_file_counts_once_per_device_not_across_devices():
    """Two profiles can get the same bytes (a float file): each profile keeps its own trial of it."""
    from edgekit.release.search import _same_files

    rows = [
        {"name": "a: onnx-fp32 (fuse=True)", "device": "a", "sha256": "f"},
        {"name": "a: onnx-fp32 (fuse=False)", "device": "a", "sha256": "f"},
        {"name": "b: onnx-fp32 (fuse=True)", "device": "b", "sha256": "f"},
    ]
    marked = _same_files(rows)
    assert [r.get("same_file_as") for r in marked] == [None, "a: onnx-fp32 (fuse=True)", None]


@pytest.mark.parametrize("strategy", ["tpe", "nsga2"])
def test_a_sampler_proposes_distinct_trials_within_its_budget(strategy, searched, cnn, calib_npz, test_npz):
    """Optuna's TPE (p50) and NSGA-II (drop, p50, size) over the same space: each trial measured at most once,
    within the budget, its figures the grid's (the steps come from the shared cache), and a choice within the
    budgets."""
    import edgekit

    out, grid = searched
    tpe = edgekit.search(
        "edgekit_demo.zoo:digits_cnn", str(test_npz), out, devices=[DEVICE], max_drop=1.0, max_size_mb=0.1,
        strategy=strategy, trials=3, seed=0, **_settings(cnn, calib_npz),
    )  # fmt: skip
    assert tpe["strategy"] == strategy
    names = [t["name"] for t in tpe["trials"]]
    assert 1 <= len(names) <= 3 and len(set(names)) == len(names)
    by_name = {t["name"]: t for t in grid["trials"]}
    for row in tpe["trials"]:
        assert (
            row["size_bytes"] == by_name[row["name"]]["size_bytes"] and row["status"] == by_name[row["name"]]["status"]
        )
    assert tpe["steps"]["ran"] == 0
    chosen = tpe["choices"].get(DEVICE)
    assert chosen is None or by_name[chosen["trial"]]["status"] == "passed"


def test_the_pareto_front_keeps_what_nothing_dominates():
    from edgekit.release.pareto import pareto_front

    points = {"a": (1.0, 5.0), "b": (2.0, 2.0), "c": (2.0, 3.0), "d": (1.0, 5.0), "e": (3.0, 1.0)}
    front = pareto_front(list(points), lambda k: points[k])
    assert front == ["a", "b", "d", "e"]  # c is beaten by b; equal points (a, d) do not beat each other


def test_a_time_budget_stops_the_search_after_the_round_it_is_in(cnn, calib_npz, test_npz, tmp_path, capsys):
    """--time 0.1: the first round (two trials: --jobs 2) still runs and finishes; no second round starts."""
    settings = ["--calib", calib_npz, "--input", zoo.DIGITS_INPUT, "--weights", cnn[1], "--device", DEVICE]
    targets = [a for t in TARGETS for a in ("--target", t)]
    code, out = run_cli(capsys, "search", "edgekit_demo.zoo:digits_cnn", "--data", test_npz, *settings, *targets,
                        "--time", "0.1", "--jobs", "2", "--executor", "serial", "-o", tmp_path / "s")  # fmt: skip
    result = json.loads((tmp_path / "s" / "search.json").read_text())
    assert len(result["trials"]) == 2 < result["space_size"] == 5, out
    assert result["time_budget_s"] == 0.1 and "the time budget (0.1 s) ended the search after 2 trial(s)" in out
    assert result["stopped"].startswith("the time budget") and code in (0, 1)


def test_a_space_file_narrows_the_targets_and_sets_the_values_tried(tmp_path):
    from edgekit.release.search import search_space
    from edgekit.release.search_space import read_space

    space = tmp_path / "space.yaml"
    space.write_text("targets: [onnx-int8, onnx-fp32]\noptions:\n  onnxruntime:\n    fuse: [false]\n")
    read = read_space(space)
    trials = search_space([DEVICE], tuple(read.targets), read.options)
    # fuse does nothing to static int8 (its graph is unfused), so onnx-int8 varies only what acts on it
    assert sorted(t.name for t in trials) == [
        f"{DEVICE}: onnx-fp32 (fuse=False)",
        f"{DEVICE}: onnx-int8 (smooth=False)",
        f"{DEVICE}: onnx-int8 (smooth=True)",
    ]
    assert len(search_space([DEVICE], ("onnx-int8-dynamic",))) == 2  # without the file: fuse on and off
    # an option outside the default grid joins it, for the quantization it acts on
    space.write_text("targets: [onnx-int8, onnx-fp32]\noptions:\n  onnxruntime:\n    calibration: [minmax, percentile]")
    read = read_space(space)
    names = sorted(t.name for t in search_space([DEVICE], tuple(read.targets), read.options))
    assert len(names) == 6 and f"{DEVICE}: onnx-int8 (calibration=percentile, smooth=False)" in names, names
    # calibration sizes multiply the targets that calibrate only
    space.write_text("targets: [onnx-int8, onnx-fp32]\ncalibration_samples: [16, 64]\n")
    read = read_space(space)
    names = sorted(t.name for t in search_space([DEVICE], tuple(read.targets), read.options, (16, 64)))
    assert read.calibration_samples == [16, 64] and len(names) == 6, names
    assert f"{DEVICE}: onnx-int8 (smooth=True, calib_samples=16)" in names
    assert f"{DEVICE}: onnx-fp32 (fuse=True)" in names  # not multiplied
    # keep-float sets multiply the targets whose fallback keeps layers float only
    space.write_text("targets: [onnx-int8, onnx-fp32]\nkeep_sensitive: [0, 2]\n")
    read = read_space(space)
    names = sorted(t.name for t in search_space([DEVICE], tuple(read.targets), read.options, (), (0, 2)))
    assert read.keep_sensitive == [0, 2] and len(names) == 6, names
    assert (
        f"{DEVICE}: onnx-int8 (smooth=False, keep_sensitive=2)" in names
        and f"{DEVICE}: onnx-fp32 (fuse=False)" in names
    )


@pytest.mark.parametrize("key, values", [("calibration_samples", [8, 64]), ("keep_sensitive", [0, 1])])
def test_a_search_over_a_space_dimension_exports_each_value_its_own_way(
    key, values, tmp_path, cnn, calib_npz, test_npz
):
    """Each calibration size, or each number of sensitive layers kept float, makes its own file; its sidecar
    says it read that many samples, or pinned that many layers."""
    import edgekit

    space = tmp_path / "space.yaml"
    space.write_text(f"targets: [onnx-int8]\noptions: {{onnxruntime: {{smooth: [false]}}}}\n{key}: {values}\n")
    settings = {**_settings(cnn, calib_npz), "targets": ()}
    result = edgekit.search("edgekit_demo.zoo:digits_cnn", str(test_npz), tmp_path / "out", devices=[DEVICE],
                            max_drop=5.0, space_file=space, **settings)  # fmt: skip
    trials = {t[key]: t for t in result["trials"]}
    assert sorted(trials) == values and all(t["status"] != "failed" for t in trials.values()), result["trials"]
    for value, trial in trials.items():  # read from each file's own sidecar
        quantization = json.loads(sidecar_path(trial["file"]).read_text())["quantization"]
        pinned = (quantization.get("fallback") or {}).get("pinned", [])
        assert (quantization["calibration_samples"] if key == "calibration_samples" else len(pinned)) == value
    assert trials[values[0]]["sha256"] != trials[values[1]]["sha256"]


def test_a_search_over_compression_scores_the_compressed_files_against_the_source(tmp_path, cnn, calib_npz, test_npz):
    """A pruned source is a trial of its own beside the source: its file exported from the pruned model, and its
    accuracy drop measured against the source as given (the same reference as the unpruned trial's)."""
    import edgekit

    space = tmp_path / "space.yaml"
    space.write_text(
        "targets: [onnx-fp32]\n"
        f"compression:\n  - {{method: prune, data: '{calib_npz}', sparsity: [0.5], epochs: 1, patience: 0}}\n"
    )
    settings = {**_settings(cnn, calib_npz), "targets": ()}
    result = edgekit.search("edgekit_demo.zoo:digits_cnn", str(test_npz), tmp_path / "out", devices=[DEVICE],
                            max_drop=50.0, space_file=space, **settings)  # fmt: skip
    plains = [t for t in result["trials"] if "compress" not in t]
    pruneds = [t for t in result["trials"] if "compress" in t]
    assert len(plains) == len(pruneds) >= 1, result["trials"]  # each setting with and without the compression
    plain, pruned = plains[0], next(t for t in pruneds if t["options"] == plains[0]["options"])
    assert pruned["compress"]["sparsity"] == 0.5, pruned
    assert "prune sparsity=0.5" in pruned["name"] and pruned["status"] != "failed", pruned
    assert pruned["sha256"] != plain["sha256"]  # its own file, from the pruned model
    references = [json.loads(Path(t["results"][0]).read_text())["reference"] for t in (plain, pruned)]
    assert references[0] == references[1]  # both scored against the source the user gave


def test_a_sampler_reaches_each_compression():
    from edgekit.release.search import Trial
    from edgekit.release.search_optuna import sampled_trials

    prune = {"method": "prune", "data": "x.npz", "sparsity": 0.5}
    space = [Trial(DEVICE, "onnx-fp32", {}, None, None, compress) for compress in (None, prune)]
    rows = sampled_trials("tpe", space, 2, 0, lambda batch: [{"name": t.name, "status": "passed", "p50_ms": 1.0,
                          "accuracy_drop_pts": 0.1, "size_bytes": 1000} for t in batch])  # fmt: skip
    assert sorted(r["name"] for r in rows) == sorted(t.name for t in space)


@pytest.mark.parametrize("strategy", ["tpe", "nsga2"])
def test_the_samplers_reach_every_calibration_size_and_keep_float_set(strategy):
    """Trials that differ only in calibration size or keep-float set are proposals of their own (they used to
    collapse onto the first of them, so the sampler could never measure the others)."""
    from edgekit.release.search import Trial
    from edgekit.release.search_optuna import sampled_trials

    space = [
        Trial(DEVICE, "onnx-int8", {"onnxruntime": {"smooth": smooth}}, size, kept)
        for smooth in (True, False)
        for size in (16, 64)
        for kept in (0, 2)
    ]

    def measure(batch):  # p50 falls as the trial keeps fewer layers and reads more samples: a landscape to learn
        return [{"name": t.name, "status": "passed", "p50_ms": 10.0 - t.calib_samples / 16 + t.keep_sensitive,
                 "accuracy_drop_pts": 0.1, "size_bytes": 1000} for t in batch]  # fmt: skip

    rows = sampled_trials(strategy, space, len(space), 0, measure)
    names = [r["name"] for r in rows]
    assert all(f"calib_samples={n}" in " ".join(names) for n in (16, 64)), names
    assert all(f"keep_sensitive={k}" in " ".join(names) for k in (0, 2)), names
    if strategy == "tpe":  # NSGA-II's generations of 2 keep proposing what it measured; TPE reaches all 8
        assert sorted(names) == sorted(t.name for t in space)


@pytest.mark.parametrize(
    "text, words",
    [
        ("targets: [onnx-int9]\n", "line 1: Unknown target 'onnx-int9'"),
        ("targets: [onnx-int8]\nstrategy: tpe\n", "line 2: strategy: Extra inputs are not permitted"),
        ("options:\n  onnxruntime:\n    fusion: [true]\n", "line 3: onnxruntime has no option 'fusion'"),
        ("options:\n  snpe:\n    fuse: [true]\n", "line 2: no runtime named 'snpe'"),
        ("options:\n  onnxruntime:\n    fuse: ['maybe']\n", "line 3: onnxruntime.fuse = 'maybe'"),
        ("options:\n  onnxruntime:\n    fuse: []\n", "line 3: onnxruntime.fuse lists no value to try"),
        ("options:\n  onnxruntime:\n    calibration: [median]\n", "line 3: onnxruntime.calibration = 'median'"),
        ("calibration_samples: [64, 0]\n", "line 1: calibration_samples.1: Input should be greater than 0"),
        ("targets: [onnx-int8]\nkeep_sensitive: [-1]\n", "line 2: keep_sensitive.0: Input should be greater than or"),
        ("compression:\n  - {method: prune, data: x.npz}\n", "line 2: compression prune: method prune needs sparsity"),
        ("compression:\n  - {method: squeeze, data: x.npz}\n", "line 2: compression squeeze: Input should be 'prune'"),
        (
            "compression:\n  - {method: distill, data: x.npz, student_width: [0.5, 1.5]}\n",
            "line 2: compression distill student_width=1.5: Input should be less than or equal to 1",
        ),
    ],
)
def test_a_bad_space_file_is_refused_with_its_line(text, words, tmp_path, capsys, test_npz):
    space = tmp_path / "space.yaml"
    space.write_text(text)
    code, out = run_cli(capsys, "search", "edgekit_demo.zoo:digits_cnn", "--data", test_npz, "--space", space,
                        "-o", tmp_path / "out")  # fmt: skip
    assert code == 2 and words in " ".join(out.split()), out
    assert not (tmp_path / "out").exists()


def _search_pipeline(folder: Path, cnn, calib_npz, test_npz, extra: str = "") -> Path:
    path = folder / "search-pipeline.yaml"
    path.write_text(
        f"source: edgekit_demo.zoo:digits_cnn\nweights: {cnn[1]}\ninputs: ['{zoo.DIGITS_INPUT}']\n"
        f"calib: {calib_npz}\ntargets: [onnx-fp32, onnx-int8]\nevaluate: {{data: {test_npz}}}\n"
        f"search: {{devices: [{DEVICE}], output: found}}\n{extra}"
    )
    return path


def test_a_pipelines_search_section_chooses_per_device_and_gates(tmp_path, cnn, calib_npz, test_npz, capsys):
    """`search:` in a pipeline runs edgekit search with the pipeline's data, gates as budgets and targets as its
    space: exit 0 with each device's choice, exit 1 naming the device when no file meets the gates."""
    path = _search_pipeline(tmp_path, cnn, calib_npz, test_npz, "gates: {max_accuracy_drop: 1.0}\n")
    code, out = run_cli(capsys, "run", str(path), "--executor", "serial")
    assert code == 0, out
    found = json.loads((tmp_path / "found" / "search.json").read_text())
    choice = found["choices"][DEVICE]
    assert f"{DEVICE}: {choice['file']}" in out and Path(choice["file"]).exists()
    assert {t["target"] for t in found["trials"]} == {"onnx-fp32", "onnx-int8"}

    path.write_text(path.read_text().replace("max_accuracy_drop: 1.0", "max_accuracy_drop: 1.0, max_size_mb: 0.001"))
    code, out = run_cli(capsys, "run", str(path), "--executor", "serial")
    assert code == 1 and "gate failed" in out and DEVICE in out, out
    assert json.loads((tmp_path / "found" / "search.json").read_text())["steps"]["ran"] == 0  # all from its cache

    # data without labels: every evaluation fails, and the table says why (there is no file to report on)
    import numpy as np

    np.savez(tmp_path / "unlabelled.npz", **{k: v for k, v in np.load(test_npz).items() if k != "labels"})
    text = path.read_text().replace(str(test_npz), str(tmp_path / "unlabelled.npz"))
    path.write_text(text.replace(", max_size_mb: 0.001", ""))
    code, out = run_cli(capsys, "run", str(path), "--executor", "serial")
    assert code == 1 and "No trial met the budgets" in out and "has no labels" in out, out


@pytest.mark.parametrize(
    "extra, words",
    [
        ("", "a search: needs evaluate: {data: ...} and gates: {max_accuracy_drop: ...}"),
        ("gates: {max_accuracy_drop: 1}\nmatrix: {calib: [a.npz, b.npz]}\n", "a matrix cannot sweep a search:"),
        ("gates: {max_accuracy_drop: 1}\ncompress: {method: prune, data: x.npz, sparsity: 0.5}\n", "compress"),
    ],
)
def test_a_search_section_that_cannot_run_is_refused(extra, words, tmp_path, cnn, calib_npz, test_npz, capsys):
    code, out = run_cli(capsys, "run", str(_search_pipeline(tmp_path, cnn, calib_npz, test_npz, extra)))
    assert code == 2 and words in " ".join(out.split()), out
    assert not (tmp_path / "found").exists()


def test_a_search_section_refuses_the_flags_it_cannot_honour(tmp_path, cnn, calib_npz, test_npz, capsys):
    path = _search_pipeline(tmp_path, cnn, calib_npz, test_npz, "gates: {max_accuracy_drop: 1}\n")
    code, out = run_cli(capsys, "run", str(path), "--cache", str(tmp_path / "elsewhere"))
    assert code == 2 and "--address and --cache apply to pipelines that list their targets" in out, out
    assert not (tmp_path / "found").exists() and not (tmp_path / "elsewhere").exists()


def test_a_memory_budget_is_checked_on_the_measured_peak(searched, cnn, calib_npz, test_npz):
    """--max-memory-mb below any process's peak: every measured trial is over budget, naming its peak, so no file
    is chosen (all from the first search's cache)."""
    import edgekit
    from edgekit.release.search import NoChoice

    out, _ = searched
    with pytest.raises(NoChoice) as caught:
        edgekit.search(
            "edgekit_demo.zoo:digits_cnn", str(test_npz), out, devices=[DEVICE], max_drop=1.0, max_memory_mb=1.0,
            **_settings(cnn, calib_npz),
        )  # fmt: skip
    measured = [t for t in caught.value.result["trials"] if t.get("peak_rss_mb") is not None]
    assert measured and all(any("peak memory" in f and "max_memory_mb 1.0" in f for f in t["over_budget"])
                            for t in measured)  # fmt: skip
    assert caught.value.result["steps"]["ran"] == 0


@pytest.mark.ssh
def test_an_unreachable_bench_device_is_named_before_any_trial(tmp_path, capsys, test_npz):
    from sshd import free_port

    bench = f"ssh://nobody@127.0.0.1:{free_port()}"
    code, out = run_cli(capsys, "search", "edgekit_demo.zoo:digits_cnn", "--data", test_npz, "--bench", bench,
                        "--target", "onnx-fp32", "-o", tmp_path / "out")  # fmt: skip
    assert code == 1 and "Cannot reach" in out and bench.removeprefix("ssh://") in out and "Traceback" not in out
    assert not (tmp_path / "out" / "cache").exists()  # no trial started

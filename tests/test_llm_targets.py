"""Generative targets (ONNX Runtime GenAI, ExecuTorch LLM, OpenVINO LLM): causal-LM folders built with their
key/value cache, proved by greedy generation against the source, scored for perplexity, and benchmarked
generating (time to first token, decode tokens/s)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from helpers import FIXTURES, fixture_text, run_cli, stand_in_adb

from edgekit_demo.zoo_families import GENAI_FAMILIES, build_family

# runtime -> (its fp32 target, its 4-bit target, the folder suffix, a file every folder of it has)
RUNTIMES = {
    "ort-genai": ("ort-genai-fp32", "ort-genai-int4", ".genai", "genai_config.json"),
    "executorch-llm": ("executorch-llm-fp32", "executorch-llm-8da4w", ".etllm", "model.pte"),
    "openvino-llm": ("openvino-llm-fp32", "openvino-llm-int4", ".ovllm", "openvino_model.xml"),
}
# bytes per cached key or value of each runtime's 4-bit folder: OpenVINO's CPU keeps its cache in u8
CACHE_BYTES = {".genai": 4, ".etllm": 4, ".ovllm": 1}
pytest.importorskip("onnxruntime_genai", reason="edgekit[genai] is not installed")


@pytest.fixture(scope="module")
def lms(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lms")


@pytest.fixture(scope="module")
def trained(lms) -> Path:
    """A tiny Llama trained on tweets (about 10 s): random weights leave next-token logits nearly tied, so only
    a trained model says what int4 costs."""
    return build_family("llama", lms / "llama-tweets", tweets=1000, epochs=1)


@pytest.fixture(scope="module")
def text(lms) -> Path:
    from edgekit_demo.datasets import write_tweets_csv

    return write_tweets_csv(lms / "held-out.csv", "test", 60)


@pytest.fixture(scope="module")
def exported(trained, lms) -> dict[str, dict[str, Path]]:
    """Per runtime, its fp32 and 4-bit folders of the trained Llama, exported on first use."""
    return {}


# ExecuTorch's folders take the longest to make (about 50 s for both): the tests that read them run in the slow
# suite
FOLDER_RUNTIMES = ["ort-genai", pytest.param("executorch-llm", marks=pytest.mark.slow), "openvino-llm"]


@pytest.fixture(params=FOLDER_RUNTIMES)
def folders(request, exported, trained, lms) -> dict[str, Path]:
    """The runtime's fp32 and 4-bit folders (keys fp32, int4) of the trained Llama."""
    from edgekit.exporter import export

    if request.param not in exported:
        fp32, four_bit, _, _ = RUNTIMES[request.param]
        exported[request.param] = {
            k: export(trained, t, lms / "out").artifact for k, t in (("fp32", fp32), ("int4", four_bit))
        }
    return exported[request.param]


def _family(lms: Path, family: str) -> Path:
    folder = lms / family
    return folder if (folder / "config.json").exists() else build_family(family, folder)


# ExecuTorch's greedy-token check runs in the slow suite; its runner's check on the BPE Llama's program, fast
@pytest.mark.parametrize(
    "runtime", [r if r != "executorch-llm" else pytest.param(r, marks=pytest.mark.slow) for r in RUNTIMES]
)
@pytest.mark.parametrize(
    "family", [f if f == "llama" else pytest.param(f, marks=pytest.mark.slow) for f in GENAI_FAMILIES]
)
def test_fp32_folder_generates_the_sources_greedy_tokens(family, runtime, lms, tmp_path):
    """Every family ONNX Runtime GenAI's builder takes: 20 prompts x 32 greedy tokens from the folder (in its
    runtime, with its cache) equal the source's (transformers, recomputing every position without a cache), and
    the prefill's logits match."""
    from edgekit.checksum import sha256_path, size_of
    from edgekit.exporter import export

    target, _, suffix, marker = RUNTIMES[runtime]
    result = export(_family(lms, family), target, tmp_path)
    generation = result.sidecar["route"][0]["generation"]
    assert generation == {"prompts": 20, "new_tokens": 32, "identical_prompts": 20, "token_agreement": 1.0}
    assert result.parity.passed and result.parity.to_json()["outputs"][0]["cosine"] > 0.9999
    folder = result.artifact
    assert folder.is_dir() and folder.suffix == suffix and (folder / marker).is_file()
    assert result.sidecar["size_bytes"] == size_of(folder) and result.sidecar["sha256"] == sha256_path(folder)


def test_four_bit_folder_is_smaller_and_keeps_perplexity(folders, trained, text):
    """Grouped int4 weights (ONNX Runtime GenAI's MatMulNBits; ExecuTorch's 8da4w, int8 dynamic activations too;
    NNCF's int4 groups with the embedding table and head in int8, for OpenVINO) on a trained LM: a smaller
    folder, perplexity in its runtime within the 10 % gate of the source's, and the generation check's agreement
    recorded (not required: int4 may change a near-tied greedy choice, after which the rest of the sequence
    differs)."""
    from edgekit.evaluation import evaluate
    from edgekit.sidecar import read_sidecar

    fp32, int4 = (read_sidecar(folders[t]) for t in ("fp32", "int4"))
    assert int4.size_bytes < 0.7 * fp32.size_bytes  # the embedding table stays float: the tiny model's largest
    (step,) = int4.route
    group = step.model_extra.get("block_size") or step.model_extra.get("group_size")
    assert int4.precision == "int4" and group == (64 if int4.runtime == "openvino-llm" else 32)
    assert 0 < step.model_extra["generation"]["token_agreement"] <= 1
    if int4.runtime == "executorch-llm":  # the 30522-token table, most of the tiny model, in int8 rows
        assert step.model_extra["embeddings"] == "int8 per row" and int4.size_bytes < 0.3 * fp32.size_bytes
    for target, folder in folders.items():
        report = evaluate(folder, text, metrics=("perplexity",), reference=trained, max_drop=10.0)
        assert report.passed and report.metrics["tokens"] > 1000, (target, report.drop)
        assert report.metrics["perplexity"] < 2000  # trained: well below the 30522-token vocabulary
        # the file's most likely next token against the source's, over every scored position
        agreement = report.metrics["next_token_agreement"]
        assert 0 < report.metrics["next_token_accuracy"] < 1 and "next_token_agreement" not in report.reference
        if target == "fp32":
            assert abs(report.drop["perplexity"]) < 0.01 and agreement > 0.999
        else:
            assert 0.8 < agreement < 1


def test_export_again_replaces_the_folder_whole(trained, tmp_path):
    """A second export over the same folder leaves no file of the first behind (a rename cannot replace a folder
    with files: the old one is moved aside and removed)."""
    from edgekit.exporter import export

    first = export(trained, "ort-genai-fp32", tmp_path, options={"prompts": 2, "new_tokens": 4}).artifact
    (first / "stale.bin").write_bytes(b"left from before")
    again = export(trained, "ort-genai-fp32", tmp_path, options={"prompts": 2, "new_tokens": 4}).artifact
    assert again == first and not (again / "stale.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [first.name, "llama-tweets-ort-genai-fp32.edgekit.json"]
    )


@pytest.mark.slow  # the 4-bit folder of every runtime is checked fast (test_four_bit_folder_is_smaller_...)
def test_int4_embeddings_put_the_token_table_in_4_bit_blocks(trained, tmp_path):
    """int4 embeddings (the default; --no-int4-embeddings keeps the table float): the embedding lookup becomes
    GatherBlockQuantized; on the tiny Llama, whose 30522-token table is most of it, the folder shrinks to a third
    and still generates."""
    import onnx

    from edgekit.checksum import size_of
    from edgekit.exporter import export

    check = {"prompts": 2, "new_tokens": 4}
    plain = export(trained, "ort-genai-int4", tmp_path / "plain", options={**check, "int4_embeddings": False})
    small = export(trained, "ort-genai-int4", tmp_path / "small", options=check)
    assert plain.sidecar["route"][0]["embeddings"] == "float" and small.sidecar["route"][0]["embeddings"] == "int4"
    ops = {n.op_type for n in onnx.load(str(small.artifact / "model.onnx"), load_external_data=False).graph.node}
    assert "GatherBlockQuantized" in ops and size_of(small.artifact) < 0.5 * size_of(plain.artifact)
    assert small.sidecar["route"][0]["generation"]["token_agreement"] > 0


def test_generation_benchmark_follows_its_contract(folders, tmp_path, capsys):
    from pydantic import TypeAdapter

    from edgekit.bench.generation_schema import SCHEMA_FILE, GenerationRun, json_schema
    from edgekit.sidecar import read_sidecar

    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), "stale: run python -m edgekit.bench.generation_schema"
    out = tmp_path / "generation.json"
    # two prompt lengths where a process starts fast; one where each imports torch (ExecuTorch's runtime)
    lengths = (8, 32) if folders["fp32"].suffix == ".genai" else (16,)
    args = ["benchmark", folders["fp32"], folders["int4"], "--generate", "--new-tokens", "16", "--prompt-tokens"]
    prompts = ",".join(map(str, lengths))
    code, text = run_cli(capsys, *args, prompts, "--processes", "3", "--generations", "2", "--json", out)
    assert code == 0, text
    runs = TypeAdapter(list[GenerationRun]).validate_json(out.read_text())
    assert [(Path(r.artifact).name, r.prompt_tokens) for r in runs] == [
        (folders[t].name, p) for p in lengths for t in ("fp32", "int4")
    ]
    for run in runs:
        assert run.generations == 6 and run.target in {read_sidecar(f).target for f in folders.values()}
        assert run.decode_tokens_per_s.median > 0 and len(run.decode_tokens_per_s.processes) == 3
        assert run.decode_tokens_per_s.median_ci95 is not None
        assert run.token_latency_ms.n == 6 * 15  # every token after the first, every timed generation
        assert run.time_to_first_token_ms.median > 0 and run.peak_rss_mb and run.peak_rss_mb > 10
    assert "edgekit benchmark --generate" in text and "TTFT" in text  # the table (headers fold when narrow)


def test_generation_benchmark_refuses_what_it_cannot_run(folders, tmp_path, capsys):
    """A prompt past the model's context, and a file of a runtime that does not generate: exit 2, said why."""
    code, text = run_cli(
        capsys, "benchmark", folders["fp32"], "--generate", "--prompt-tokens", "120", "--new-tokens", "16"
    )
    assert code == 2 and "exceed the model's context of 128 tokens" in text and "Traceback" not in text
    onnx = tmp_path / "classifier.onnx"
    onnx.write_bytes(b"refused by its suffix before it is read")
    code, text = run_cli(capsys, "benchmark", onnx, "--generate")
    assert (
        code == 2
        and "does not benchmark generating text" in text
        and all(runtime in text for runtime in ("ort-genai", "executorch-llm", "openvino-llm"))
    )


@pytest.mark.parametrize(
    ("target", "source", "said"),
    [
        ("ort-genai-int4", "gpt2", "does not build GPT2LMHeadModel models"),
        *[
            (target, source, said)
            for target in ("ort-genai-int4", "executorch-llm-8da4w", "openvino-llm-int4")
            for source, said in (
                ("bert", "is not a causal language model (its config's architectures: BertForSequenceClassification)"),
                ("edgekit_demo.zoo_text:tiny_causal_lm", "build from a Hugging Face model folder"),
                ("llama-without-tokenizer", "has no tokenizer (tokenizer.json or vocab.txt)"),
            )
        ],
    ],
)
def test_what_the_builder_cannot_take_is_refused(target, source, said, lms, tmp_path, capsys):
    """A causal LM the builder does not build (GPT-2), an encoder, a source that is not a folder, a folder without
    its tokenizer: exit 2 with the reason, nothing written."""
    if source == "llama-without-tokenizer":
        import shutil

        model = shutil.copytree(
            _family(lms, "llama"), tmp_path / source, ignore=shutil.ignore_patterns("*tok*", "vocab*")
        )
    else:
        model = source if ":" in source else _family(lms, source)
    extra = ["--input", "input_ids:int64:1x32"] if ":" in source else []
    code, text = run_cli(capsys, "export", model, "-t", target, "-o", tmp_path / "out", *extra)
    assert code == 2 and said in text and "Traceback" not in text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.ssh
def test_generation_benchmark_over_ssh_on_loopback(sshd, folders, tmp_path, capsys):
    """The folder is copied whole to the device and the worker generates there."""
    out = tmp_path / "ssh.json"
    ssh = ["--device", sshd.url, "--identity", sshd.key, "--python", sys.executable]
    ssh += [arg for o in sshd.ssh_options for arg in ("--ssh-option", o)]
    args = ["benchmark", folders["int4"], "--generate", "--new-tokens", "8", "--prompt-tokens", "16", "--processes"]
    code, text = run_cli(capsys, *args, "1", "--generations", "1", *ssh, "--json", out)
    assert code == 0, text
    (run,) = json.loads(out.read_text())
    assert run["device"] == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}" and run["decode_tokens_per_s"]["median"] > 0


def test_a_bundle_carries_the_folder_and_verifies(folders, tmp_path, capsys):
    """A folder artifact is bundled whole: each of its files in the manifest, checksums verified."""
    code, text = run_cli(capsys, "bundle", folders["int4"], "-o", tmp_path / "bundle")
    assert code == 0, text
    (bundle,) = (tmp_path / "bundle").iterdir()
    manifest = json.loads((bundle / "manifest.json").read_text())
    listed = {f["path"] for f in manifest["files"]}
    marker = next(m for _, _, suffix, m in RUNTIMES.values() if suffix == folders["int4"].suffix)
    assert (
        f"models/{folders['int4'].name}/{marker}" in listed
        and f"models/{folders['int4'].name}/tokenizer.json" in listed
    )
    model = manifest["models"][0]
    assert model["file"] == f"models/{folders['int4'].name}"
    # 2 layers x keys and values x 2 key/value heads x 16 per head x bytes per value, for each of 128 positions
    assert model["generation"] == {
        "context_length": 128,
        "eos_token_ids": [2],
        "kv_cache_bytes": 2 * 2 * 2 * 16 * CACHE_BYTES[folders["int4"].suffix] * 128,
        "chat_template": False,
    }
    code, text = run_cli(capsys, "verify", bundle)
    assert code == 0, text


def test_generate_refuses_the_flags_of_the_forward_pass_benchmark(folders, capsys):
    code, text = run_cli(capsys, "benchmark", folders["int4"], "--generate", "--aa", "--max-time", "5")
    assert code == 2 and "--generate does not take --aa, --max-time:" in text


@pytest.mark.slow
def test_openvino_takes_gpt2_which_the_genai_builder_refuses(lms, tmp_path):
    """The stateful OpenVINO route traces the model itself, so GPT-2 (learned positions, fused QKV) generates the
    source's greedy tokens there too."""
    from edgekit.exporter import export

    result = export(_family(lms, "gpt2"), "openvino-llm-fp32", tmp_path, options={"prompts": 5})
    assert result.sidecar["route"][0]["generation"]["identical_prompts"] == 5 and result.parity.passed


@pytest.mark.slow
@pytest.mark.parametrize("folders", ["executorch-llm"], indirect=True)
def test_executorch_prefills_a_whole_prompt_in_one_call(folders):
    """The program is exported with a free sequence length: a prompt fed in one call leaves the same cache and
    gives the same logits at every position as feeding it one token a call (what a decode step does)."""
    import numpy as np
    import torch

    from edgekit.backends.executorch_llm.worker_loader import open_folder, positions, step

    method, described = open_folder(str(folders["fp32"]))
    prompt = [101, 2023, 2003, 1037, 7099, 102, 2009]
    whole = positions(torch, method, prompt, 0)
    one_by_one = np.stack([step(torch, method, t, p) for p, t in enumerate(prompt)])
    assert described["prefill"] == "whole" and whole.shape == (len(prompt), described["vocab_size"])
    np.testing.assert_allclose(whole, one_by_one, rtol=1e-4, atol=1e-4)
    after_whole = step(torch, method, 2000, len(prompt))  # a decode step after a one-call prefill
    positions(torch, method, prompt, 0)
    np.testing.assert_allclose(step(torch, method, 2000, len(prompt)), after_whole, rtol=1e-5, atol=1e-5)


def _llama_with_byte_level_bpe(folder: Path) -> Path:
    """A tiny random Llama whose tokenizer is a byte-level BPE learned from ASCII tweets (ExecuTorch's tokenizer
    library reads no WordPiece, the other tiny models' tokenizer): every token decodes to whole ASCII characters."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from edgekit_demo.datasets import tweets

    texts = [t for t in tweets("train", 2000)[0] if t.isascii()]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>"]))
    folder.mkdir(parents=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=128, bos_token_id=None, eos_token_id=0)  # fmt: skip
    transformers.LlamaForCausalLM(config).eval().save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def bpe_program(lms) -> Path:
    """The byte-level BPE Llama as an executorch-llm-fp32 folder (about 18 s)."""
    from edgekit.exporter import export

    return export(_llama_with_byte_level_bpe(lms / "llama-bpe"), "executorch-llm-fp32", lms / "bpe-out").artifact


def test_executorch_s_own_llm_runner_runs_the_program(bpe_program):
    """The program carries the metadata ExecuTorch's LLM runners read (its C++ TextLLMRunner, as in its Android
    and iOS LLM modules and llama_main): that runner, from the ExecuTorch wheel, generates greedily what edgekit's
    check generated from the same program."""
    import torch
    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner
    from tokenizers import Tokenizer

    from edgekit.backends.executorch_llm.build import generate_greedy
    from edgekit.backends.executorch_llm.worker_loader import open_folder

    folder = bpe_program
    runner = TextLLMRunner(str(folder / "model.pte"), str(folder / "tokenizer.json"))
    prompt, pieces, stats = "the weather today is", [], []
    config = GenerationConfig(echo=False, max_new_tokens=24, temperature=0.0)
    runner.generate(prompt, config, token_callback=pieces.append, stats_callback=stats.append)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    ids = tokenizer.encode(prompt).ids
    ours = generate_greedy(torch, open_folder(str(folder))[0], ids, 24)
    (stat,) = stats
    assert stat.num_prompt_tokens == len(ids) and stat.num_generated_tokens >= 1
    if 0 in ours:  # the runner stops at the end-of-text token (edgekit's check does not)
        ours = ours[: ours.index(0)]
    assert "".join(pieces) == tokenizer.decode(ours) and len(ours) >= 1


def _llama_main(tmp_path: Path) -> Path:
    """tests/fixtures/llama_main_stand_in.py as a program: llama_main's flags, ExecuTorch's C++ runner inside."""
    tool = tmp_path / "llama_main"
    tool.write_text(f"#!{sys.executable}\n" + (FIXTURES / "llama_main_stand_in.py").read_text())
    tool.chmod(0o755)
    return tool


@pytest.mark.slow  # about 25 s; a generation tool over adb is checked fast in test_gguf
def test_llama_main_over_adb_times_the_folder_with_executorch_s_runner(bpe_program, tmp_path, monkeypatch, capsys):
    """`--generate --tool llama_main` over the stand-in adb: the runner and the folder pushed, each repetition a
    fresh process of the runner, given a prompt the folder's tokenizer reads as the asked tokens (which the runner
    counted too); the figures are its Stats'."""
    from pydantic import TypeAdapter

    from edgekit.bench.generation_schema import GenerationRun

    adb, tool, out = stand_in_adb(tmp_path, monkeypatch), _llama_main(tmp_path), tmp_path / "adb.json"
    args = ["--device", "adb://emulator-5554", "--adb", adb, "--tool", tool, "--processes", "2", "--generations", "2"]
    code, text = run_cli(capsys, "benchmark", bpe_program, "--generate", "--prompt-tokens", "16", "--new-tokens", "96",
                         *args, "--json", out)  # fmt: skip
    assert code == 0, text
    calls = [json.loads(line)["args"] for line in (tmp_path / "adb.log").read_text().splitlines()]
    assert [Path(c[1]).name for c in calls if c[0] == "push"] == ["peak_rss.sh", "llama_main", bpe_program.name]
    runs = [c[1] for c in calls if c[0] == "shell" and "llama_main --model_path=" in c[1]]
    assert len(runs) == 4 and all("--seq_len=112 --cpu_threads=1 --temperature=0 --warmup=true" in r for r in runs)
    (run,) = TypeAdapter(list[GenerationRun]).validate_json(out.read_text())
    assert run.device == "adb://emulator-5554" and run.generations == 4 and run.environment["tool"] == "llama_main"
    ttft = run.time_to_first_token_ms.processes  # whole ms: the tiny model's prompt may take under 1 ms
    assert run.decode_tokens_per_s.median > 0 and min(ttft) >= 0 and (run.prefill_tokens_per_s is None) == (0 in ttft)
    assert run.load_ms is not None and run.peak_rss_mb and run.token_latency_ms.p50 is None


def test_llama_main_outputs_and_prompts(bpe_program, lms, tmp_path, capsys):
    """The Stats line of a real run (ExecuTorch's C++ runner) is read; a prompt the runner counts otherwise than
    asked, and a folder without tokenizer.json, are said."""
    from tokenizers import Tokenizer

    from edgekit.backends.executorch_llm.llama_main import parse, prompt_text

    output = fixture_text("executorch_llama_main.txt")
    stats = json.loads(output.split("PyTorchObserver ", 1)[1])
    out = parse([output, output])
    first = stats["first_token_ms"]
    assert out["ttft_ms"] == [first - stats["inference_start_ms"]] * 2 and out["prompt_tokens_counted"] == [16, 16]
    assert out["decode_tokens_per_s"][0] == stats["generated_tokens"] * 1e3 / (stats["inference_end_ms"] - first)
    tokenizer = Tokenizer.from_file(str(bpe_program / "tokenizer.json"))
    assert len(tokenizer.encode(prompt_text(bpe_program, 37), add_special_tokens=False).ids) == 37
    tool = tmp_path / "llama_main"  # prints that real output, whatever the prompt
    tool.write_text("#!/bin/sh\ncat <<'OUT'\n" + output + "\nOUT\n")
    tool.chmod(0o755)
    args = ["--generate", "--tool", tool, "--prompt-tokens", "8", "--new-tokens", "8", "--processes", "1"]
    code, text = run_cli(capsys, "benchmark", bpe_program, *args)
    assert code == 1 and "read the prompt for" in text and "as [16] tokens, not 8" in text
    bare = shutil.copytree(bpe_program, tmp_path / "bare.etllm", ignore=shutil.ignore_patterns("tokenizer.json"))
    code, text = run_cli(capsys, "benchmark", bare, *args)
    assert code == 2 and "has no tokenizer.json" in text and "Traceback" not in text


@pytest.mark.slow  # about 40 s: three ExecuTorch programs
def test_attention_is_executorch_s_kernel_where_the_model_allows(lms, tmp_path):
    """Plain causal attention exports as ExecuTorch's custom_sdpa (said in the sidecar and generation.json, whose
    loaders then register the kernel); --no-custom-sdpa keeps transformers' attention over the whole cache, and both
    programs pass the greedy-token check against the source. A sliding window or soft-capped logits keep it too."""
    import transformers

    from edgekit.backends.executorch_llm.attention import fits
    from edgekit.exporter import export

    source = _family(lms, "llama")
    kernel = export(source, "executorch-llm-fp32", tmp_path / "kernel", options={"prompts": 4})
    whole = export(source, "executorch-llm-fp32", tmp_path / "whole", options={"prompts": 4, "custom_sdpa": False})
    said = [r.sidecar["route"][0]["attention"] for r in (kernel, whole)]
    assert said == ["llama::custom_sdpa over the positions in use", "transformers' attention over the whole cache: "
                    "--no-custom-sdpa"]  # fmt: skip
    described = [json.loads((r.artifact / "generation.json").read_text()) for r in (kernel, whole)]
    assert described[0]["attention"] == "custom_sdpa" and "attention" not in described[1]
    assert all(r.sidecar["route"][0]["generation"]["identical_prompts"] == 4 for r in (kernel, whole))
    windowed = transformers.MistralConfig(sliding_window=64)
    assert fits(windowed, 128) == "a sliding window of 64 positions, shorter than the context of 128"
    assert fits(windowed, 64) is None and "soft-capped" in fits(transformers.Gemma2Config(), 128)

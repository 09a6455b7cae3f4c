"""llama.cpp targets (gguf-*): a Hugging Face causal LM written as a GGUF file by edgekit, quantized by llama.cpp,
proved by greedy generation in llama.cpp against the source, scored for perplexity and benchmarked generating.

The writer's tests need only the gguf package; the ones that run llama.cpp need llama-cpp-python (the
`llamacpp` extra), a source distribution that builds llama.cpp (about 3 minutes on 2 cores), which `make test`
does not install: they skip without it."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import fixture_text, run_cli, stand_in_adb

from edgekit._lazy import available
from edgekit_demo.zoo_families import GENAI_FAMILIES, build_family

gguf = pytest.importorskip("gguf", reason="edgekit[gguf] is not installed")
needs_llama_cpp = pytest.mark.skipif(
    not available("llama_cpp"),
    reason="llama-cpp-python is not installed (pip install -c constraints.txt -e '.[llamacpp]' builds llama.cpp)",
)


@pytest.fixture(scope="module")
def lms(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gguf-lms")


def _family(lms: Path, family: str) -> Path:
    # llama.cpp fixes the token attributes of a model whose name says Phi-3 by looking its chat tokens up, which
    # MiniLM's vocabulary (the tiny models') lacks: the folder, whose name the file carries, is not called so
    folder = lms / f"tiny-{family.replace('phi3', 'phi-three')}"
    if (folder / "config.json").exists():
        return folder
    if family not in ("qwen2", "mistral"):
        return build_family(family, folder)
    return _like_llama(family, folder)


def _like_llama(family: str, folder: Path) -> Path:
    """Qwen 2 and Mistral, which the zoo does not build: the tiny Llama's sizes in their own classes."""
    import shutil

    import torch
    import transformers

    from edgekit_demo.zoo_text import minilm_dir

    config, model = {"qwen2": ("Qwen2Config", "Qwen2ForCausalLM"), "mistral": ("MistralConfig", "MistralForCausalLM")}[
        family
    ]
    sizes = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    settings = getattr(transformers, config)(vocab_size=30522, intermediate_size=128, max_position_embeddings=128,
                                             bos_token_id=101, eos_token_id=102, **sizes)  # fmt: skip
    getattr(transformers, model)(settings).eval().save_pretrained(str(folder))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (minilm_dir() / name).exists():
            shutil.copy(minilm_dir() / name, folder)
    return folder


@pytest.fixture(scope="module")
def trained(lms) -> Path:
    """A tiny Llama trained on tweets (about 10 s): random weights leave next-token logits nearly tied."""
    return build_family("llama", lms / "llama-tweets", tweets=1000, epochs=1)


def _tensors(path: Path) -> dict[str, np.ndarray]:
    """The file's tensors as stored (llama.cpp's names; GGUF lists dimensions fastest first, numpy slowest)."""
    return {t.name: np.asarray(t.data).reshape(list(reversed(t.shape.tolist()))) for t in gguf.GGUFReader(path).tensors}


def test_the_written_file_holds_every_weight_under_llama_cpps_names(lms, tmp_path):
    """f32: each weight as the source holds it, except Llama's query and key rows reordered for llama.cpp's
    rotary pairing; the hyperparameters and the tokenizer (WordPiece as llama.cpp's `bert` model) as GGUF keys."""
    import transformers

    from edgekit.backends.gguf.runner import metadata
    from edgekit.backends.gguf.write import _neighbour_pairs, write_gguf

    folder = _family(lms, "llama")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    notes = write_gguf(model, folder, tmp_path / "tiny.gguf", context=96, half=False)
    keys, tensors = metadata(tmp_path / "tiny.gguf"), _tensors(tmp_path / "tiny.gguf")
    config = model.config
    assert notes == {"architecture": "llama", "tensors": len(tensors), "vocabulary": "bert (WordPiece)"}
    assert keys["general.architecture"] == "llama" and keys["llama.context_length"] == 96
    assert keys["llama.block_count"] == 2 and keys["llama.attention.head_count_kv"] == config.num_key_value_heads
    assert keys["tokenizer.ggml.model"] == "bert" and keys["tokenizer.ggml.tokens"] == config.vocab_size
    source = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    np.testing.assert_array_equal(tensors["token_embd.weight"], source["model.embed_tokens.weight"])
    np.testing.assert_array_equal(tensors["blk.1.attn_v.weight"], source["model.layers.1.self_attn.v_proj.weight"])
    np.testing.assert_array_equal(tensors["output.weight"], source["lm_head.weight"])
    query, key = source["model.layers.0.self_attn.q_proj.weight"], source["model.layers.0.self_attn.k_proj.weight"]
    np.testing.assert_array_equal(tensors["blk.0.attn_q.weight"], _neighbour_pairs(query, config.num_attention_heads))
    np.testing.assert_array_equal(tensors["blk.0.attn_k.weight"], _neighbour_pairs(key, config.num_key_value_heads))
    assert not np.array_equal(tensors["blk.0.attn_q.weight"], query)


def test_reordered_rows_give_the_same_attention_scores_under_llama_cpps_rotary_pairing():
    """What the reordering is for: transformers rotates dimension i with i + d/2 of each head, llama.cpp's Llama
    rotates 2i with 2i + 1; with the rows reordered, every query-key score at every pair of positions is equal."""
    from edgekit.backends.gguf.write import _neighbour_pairs

    rng = np.random.default_rng(0)
    heads, d, width, positions = 2, 8, 12, 5
    wq, wk = rng.normal(size=(heads * d, width)), rng.normal(size=(heads * d, width))
    x = rng.normal(size=(positions, width))
    angles = np.arange(positions)[:, None] / 10000 ** (np.arange(d // 2) * 2 / d)  # [position, pair]
    cos, sin = np.cos(angles), np.sin(angles)

    def halves(v):  # transformers: (x1, x2) halves, x1 * cos - x2 * sin and x2 * cos + x1 * sin
        a, b = v[..., : d // 2], v[..., d // 2 :]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)

    def neighbours(v):  # llama.cpp (GPT-J style): pairs (2i, 2i + 1)
        a, b = v[..., 0::2], v[..., 1::2]
        return np.stack([a * cos - b * sin, b * cos + a * sin], axis=-1).reshape(v.shape)

    def scores(wq, wk, rotate):
        q = rotate((x @ wq.T).reshape(positions, heads, d).transpose(1, 0, 2))
        k = rotate((x @ wk.T).reshape(positions, heads, d).transpose(1, 0, 2))
        return q @ k.transpose(0, 2, 1)

    expected = scores(wq, wk, halves)
    np.testing.assert_allclose(scores(_neighbour_pairs(wq, heads), _neighbour_pairs(wk, heads), neighbours), expected)
    assert not np.allclose(scores(wq, wk, neighbours), expected)  # without the reordering they differ


def test_what_the_writer_does_not_carry_over_is_refused_by_name(lms, tmp_path, capsys):
    """An architecture it does not map, a scaled rotary embedding (Llama 3's), a file that is not GGUF."""
    import transformers

    from edgekit.backends.gguf.write import FAMILIES, family_of, write_gguf
    from edgekit.errors import UnsupportedOpError

    with pytest.raises(UnsupportedOpError) as refused:
        family_of({"architectures": ["GPT2LMHeadModel"]}, lms / "gpt2")
    assert "GPT2LMHeadModel" in str(refused.value) and all(name in str(refused.value) for name in FAMILIES)
    scaled = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 64}  # fmt: skip
    config = transformers.LlamaConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
                                      intermediate_size=128, rope_scaling=scaled)  # fmt: skip
    model = transformers.LlamaForCausalLM(config)
    with pytest.raises(UnsupportedOpError, match=r"scales its rotary embedding \(llama3\)"):
        write_gguf(model, _family(lms, "llama"), tmp_path / "scaled.gguf", context=64, half=False)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(60))  # the magic, then nothing a reader can use
    code, text = run_cli(capsys, "evaluate", broken, "--data", "builtin:tweets:test", "--metric", "perplexity")
    assert code == 2 and "broken.gguf" in text and "Traceback" not in text


# --- llama.cpp itself ---------------------------------------------------------------------------------------


@needs_llama_cpp
@pytest.mark.parametrize("family", [*GENAI_FAMILIES, "qwen2", "mistral"])
def test_f32_file_generates_the_sources_greedy_tokens_in_llama_cpp(family, lms, tmp_path):
    """Llama, Qwen 3, Phi-3, Gemma, Qwen 2, Mistral: 20 prompts x 32 greedy tokens from the file, in llama.cpp with
    its cache (f32, as the export proves it), equal the source's (transformers, every position recomputed), and the
    prefill's logits match."""
    from edgekit.exporter import export

    result = export(_family(lms, family), "gguf-f32", tmp_path)
    step = result.sidecar["route"][0]
    assert step["generation"] == {"prompts": 20, "new_tokens": 32, "identical_prompts": 20, "token_agreement": 1.0}
    assert result.parity.passed and result.parity.to_json()["outputs"][0]["cosine"] > 0.9999
    assert result.artifact.suffix == ".gguf" and result.artifact.is_file()


@needs_llama_cpp
def test_quantized_files_are_smaller_and_keep_perplexity(trained, lms, tmp_path):
    """f16, q8_0 and q4_k_m (llama.cpp's quantizer) of a trained LM: each smaller, perplexity in llama.cpp within
    the 10 % gate of the source's; the f32 file's the source's."""
    from edgekit.evaluation import evaluate
    from edgekit.exporter import export
    from edgekit_demo.datasets import write_tweets_csv

    text = write_tweets_csv(lms / "held-out.csv", "test", 60)
    files = {t: export(trained, t, tmp_path) for t in ("gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m")}
    sizes = {t: r.size_bytes for t, r in files.items()}
    assert sizes["gguf-f32"] > 1.9 * sizes["gguf-f16"] and sizes["gguf-f32"] > 3.5 * sizes["gguf-q4_k_m"], sizes
    assert sizes["gguf-f16"] > sizes["gguf-q8_0"] > sizes["gguf-q4_k_m"]
    q4 = files["gguf-q4_k_m"].sidecar
    assert q4["precision"] == "int4" and "Q4_K_M" in q4["route"][0]["quantizer"]
    for target, result in files.items():
        report = evaluate(result.artifact, text, metrics=("perplexity",), reference=trained, max_drop=10.0)
        assert report.passed and report.metrics["tokens"] > 1000, (target, report.drop)
        if target == "gguf-f32":
            assert abs(report.drop["perplexity"]) < 0.01 and report.metrics["next_token_agreement"] > 0.999


@pytest.fixture(scope="module")
def q4(trained, lms) -> Path:
    """The trained Llama's q4_k_m file (a short generation check)."""
    from edgekit.exporter import export

    return export(trained, "gguf-q4_k_m", lms / "q4", options={"prompts": 2, "new_tokens": 4}).artifact


@needs_llama_cpp
def test_generation_benchmark_of_a_gguf_file_follows_its_contract(q4, tmp_path, capsys):
    from pydantic import TypeAdapter

    from edgekit.bench.generation_schema import GenerationRun

    file = q4
    out = tmp_path / "generation.json"
    code, text = run_cli(capsys, "benchmark", file, "--generate", "--prompt-tokens", "16", "--new-tokens", "8",
                         "--processes", "2", "--json", out)  # fmt: skip
    assert code == 0, text
    (run,) = TypeAdapter(list[GenerationRun]).validate_json(out.read_text())
    assert run.target == "gguf-q4_k_m" and run.prompt_tokens == 16 and run.decode_tokens_per_s.median > 0
    assert run.token_latency_ms.n == run.generations * 7 and run.time_to_first_token_ms.median > 0
    described = json.loads(file.with_name(file.stem + ".edgekit.json").read_text())
    assert described["runtime"] == "gguf"


@needs_llama_cpp
@pytest.mark.ssh
def test_generation_benchmark_of_a_gguf_file_over_ssh_on_loopback(sshd, q4, tmp_path, capsys):
    """The file is copied to the device and llama.cpp generates there."""
    out = tmp_path / "ssh.json"
    ssh = ["--device", sshd.url, "--identity", sshd.key, "--python", sys.executable]
    ssh += [arg for o in sshd.ssh_options for arg in ("--ssh-option", o)]
    args = ["benchmark", q4, "--generate", "--new-tokens", "8", "--prompt-tokens", "16", "--processes", "1"]
    code, text = run_cli(capsys, *args, "--generations", "1", *ssh, "--json", out)
    assert code == 0, text
    (run,) = json.loads(out.read_text())
    assert run["device"] == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}" and run["decode_tokens_per_s"]["median"] > 0


@needs_llama_cpp
def test_a_bundle_carries_the_gguf_file_with_its_generation_facts(q4, tmp_path, capsys):
    code, text = run_cli(capsys, "bundle", q4, "-o", tmp_path / "bundle")
    assert code == 0, text
    (bundle,) = (tmp_path / "bundle").iterdir()
    (model,) = json.loads((bundle / "manifest.json").read_text())["models"]
    assert model["file"] == f"models/{q4.name}"
    # 2 layers x keys and values x 2 key/value heads x 16 per head x 2 bytes (llama.cpp's f16 cache), 128 positions
    assert model["generation"] == {
        "context_length": 128,
        "eos_token_ids": [2],
        "kv_cache_bytes": 2 * 2 * 2 * 16 * 2 * 128,
        "chat_template": False,
    }
    assert run_cli(capsys, "verify", bundle)[0] == 0


@needs_llama_cpp
@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("gpt2", "edgekit writes GGUF files of GemmaForCausalLM, LlamaForCausalLM"),
        ("bert", "is not a causal language model (its config's architectures: BertForSequenceClassification)"),
        ("llama-without-tokenizer", "has no tokenizer (tokenizer.json or vocab.txt)"),
    ],
)
def test_what_the_writer_cannot_take_is_refused(source, said, lms, tmp_path, capsys):
    """Exit 2 with the reason, nothing written."""
    import shutil

    if source == "llama-without-tokenizer":
        ignore = shutil.ignore_patterns("*tok*", "vocab*")
        model = shutil.copytree(_family(lms, "llama"), tmp_path / source, ignore=ignore)
    else:
        model = _family(lms, source)
    code, text = run_cli(capsys, "export", model, "-t", "gguf-q8_0", "-o", tmp_path / "out")
    assert code == 2 and said in text and "Traceback" not in text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# llama.cpp's own generation benchmark: llama-bench is not in any wheel (build it from llama.cpp); the tests that
# run it skip without one, the rest run a stand-in that prints a real llama-bench output (tests/fixtures/)
LLAMA_BENCH = os.environ.get("EDGEKIT_LLAMA_BENCH") or shutil.which("llama-bench")
needs_llama_bench = pytest.mark.skipif(
    not LLAMA_BENCH,
    reason="llama.cpp's llama-bench is not built here (cmake -B build && cmake --build build --target llama-bench "
    "in llama.cpp; then EDGEKIT_LLAMA_BENCH=build/bin/llama-bench)",
)


@pytest.fixture(scope="module")
def written(lms) -> Path:
    """The tiny Llama written as an f32 GGUF file by edgekit's writer alone (no llama.cpp needed)."""
    import transformers

    from edgekit.backends.gguf.write import write_gguf

    folder = _family(lms, "llama")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    write_gguf(model, folder, lms / "written.gguf", context=96, half=False)
    return lms / "written.gguf"


def _stand_in_llama_bench(tmp_path: Path) -> Path:
    """Prints the real llama-bench output of its prefill test or of its decode test, as its arguments ask."""
    tool = tmp_path / "llama-bench"
    prefill, decode = fixture_text("llama_bench_prefill.jsonl"), fixture_text("llama_bench_decode.jsonl")
    tool.write_text(
        f"#!/bin/sh\necho 'load_backend: loaded CPU backend' >&2\ncase \"$*\" in\n  *'-n 0'*) cat <<'OUT'\n{prefill}\n"
        f"OUT\n  ;;\n  *) cat <<'OUT'\n{decode}\nOUT\n  ;;\nesac\n"
    )
    tool.chmod(0o755)
    return tool


def test_llama_bench_outputs_are_read_per_repetition():
    from edgekit.backends.gguf.llama_bench import parse
    from edgekit.errors import EdgekitError

    logs = "llama_model_loader: loaded meta data\n"
    out = parse([logs + fixture_text("llama_bench_prefill.jsonl"), fixture_text("llama_bench_decode.jsonl") + "\n"])
    assert out["ttft_ms"] == pytest.approx([0.389481, 0.303602, 0.293177])
    assert out["decode_tokens_per_s"] == pytest.approx([6088.67, 6192.59, 6261.37])
    assert out["tool_settings"]["type_k"] == "f16"
    with pytest.raises(EdgekitError, match="no test line with n_gen"):  # the decode test's output is missing
        parse([fixture_text("llama_bench_prefill.jsonl"), fixture_text("llama_bench_prefill.jsonl")])


def test_generation_tool_over_adb_pushes_the_tool_and_the_file(written, tmp_path, monkeypatch, capsys):
    """The real adb transport and generation harness against the stand-in adb: llama-bench and the file pushed,
    two commands a process (prefill, then decode after the prompt), figures as llama-bench gave them."""
    from pydantic import TypeAdapter

    from edgekit.bench.generation_schema import GenerationRun

    adb, tool, out = stand_in_adb(tmp_path, monkeypatch), _stand_in_llama_bench(tmp_path), tmp_path / "adb.json"
    args = ["--device", "adb://emulator-5554", "--adb", adb, "--tool", tool, "--processes", "2", "--generations", "3"]
    code, text = run_cli(capsys, "benchmark", written, "--generate", "--prompt-tokens", "16", "--new-tokens", "32",
                         *args, "--json", out)  # fmt: skip
    assert code == 0, text
    calls = [json.loads(line)["args"] for line in (tmp_path / "adb.log").read_text().splitlines()]
    pushed = [Path(c[1]).name for c in calls if c[0] == "push"]
    assert pushed == ["peak_rss.sh", "llama-bench", "written.gguf"]
    runs = [c[1] for c in calls if c[0] == "shell" and "llama-bench -m" in c[1]]
    assert len(runs) == 4 and "-t 1 -r 3 -o jsonl -p 16 -n 0" in runs[0] and "-p 0 -n 32 -d 16" in runs[1]
    (run,) = TypeAdapter(list[GenerationRun]).validate_json(out.read_text())
    assert run.device == "adb://emulator-5554" and run.generations == 6 and run.load_ms is None
    assert run.decode_tokens_per_s.median == pytest.approx(6192.59)
    assert run.time_to_first_token_ms.median == pytest.approx(0.303602)
    assert run.token_latency_ms.p50 is None and run.environment["tool"] == "llama-bench"
    assert not list((tmp_path / "device" / "data" / "local" / "tmp").iterdir())  # the device was cleaned up


@pytest.mark.parametrize(
    ("case", "said", "exit_code"),
    [
        ("adb without a tool", "pass --tool PATH", 2),
        ("past the context", "exceed written.gguf's context of 96 tokens", 2),
        ("a file without one", "edgekit knows no generation benchmark program of onnxruntime", 2),
        ("libraries left behind", "build it statically", 1),
    ],
)
def test_what_the_generation_tool_cannot_do_is_said(case, said, exit_code, written, tmp_path, monkeypatch, capsys):
    tool, file = _stand_in_llama_bench(tmp_path), written
    args = ["--tool", tool, "--prompt-tokens", "16", "--new-tokens", "8", "--processes", "1"]
    if case == "adb without a tool":
        args = ["--device", "adb://emulator-5554", "--adb", stand_in_adb(tmp_path, monkeypatch)]
    elif case == "past the context":
        args[3] = "90"
    elif case == "a file without one":
        file = tmp_path / "model.onnx"
        file.write_bytes(b"\x08\x07")
    else:
        missing = "llama-bench: error while loading shared libraries: libllama.so.0"
        tool.write_text(f"#!/bin/sh\necho '{missing}' >&2\nexit 127\n")
    code, text = run_cli(capsys, "benchmark", file, "--generate", *args)
    assert code == exit_code and said in text and "Traceback" not in text


@needs_llama_bench
def test_llama_bench_times_a_file_edgekit_wrote(written, tmp_path, capsys):
    """The real llama-bench, here: figures for every repetition, its peak memory, and the contract."""
    from pydantic import TypeAdapter

    from edgekit.bench.generation_schema import GenerationRun

    out = tmp_path / "bench.json"
    args = ["--tool", LLAMA_BENCH, "--prompt-tokens", "16", "--new-tokens", "16", "--threads", "1,2"]
    code, text = run_cli(capsys, "benchmark", written, "--generate", *args, "--json", out)
    assert code == 0, text
    runs = TypeAdapter(list[GenerationRun]).validate_json(out.read_text())
    assert [r.threads for r in runs] == [1, 2] and all(r.generations == 9 for r in runs)
    for run in runs:
        assert len(run.decode_tokens_per_s.processes) == 3 and run.decode_tokens_per_s.median_ci95 is not None
        assert run.time_to_first_token_ms.median > 0 and run.peak_rss_mb and run.peak_rss_mb > 0
        assert run.environment["runtime_versions"]["llama-bench"].startswith("build ")


@needs_llama_bench
@pytest.mark.ssh
def test_llama_bench_over_ssh_on_loopback(sshd, written, tmp_path, capsys):
    """llama-bench and the file copied to the device (the loopback sshd), run there."""
    out = tmp_path / "ssh.json"
    ssh = ["--device", sshd.url, "--identity", sshd.key] + [a for o in sshd.ssh_options for a in ("--ssh-option", o)]
    args = ["--tool", LLAMA_BENCH, "--prompt-tokens", "16", "--new-tokens", "8", "--processes", "1"]
    code, text = run_cli(capsys, "benchmark", written, "--generate", *args, *ssh, "--json", out)
    assert code == 0, text
    (run,) = json.loads(out.read_text())
    assert run["device"] == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}" and run["decode_tokens_per_s"]["median"] > 0

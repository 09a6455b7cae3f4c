"""What edgekit's generation harness costs: decode tokens/s of the same files measured by `edgekit benchmark
--generate` and by the runtime's own benchmark program, in one run, alternating.

The ~120M-parameter random-initialised Llama of benchmarks/lm_generation.py; 64-token prompt, 64 new tokens, 1
thread, 3 rounds each way (edgekit: a fresh process per round with 1 warm-up and 2 timed generations). Give the
runtime and its own program (llama.cpp's and ONNX Runtime GenAI's are not in their wheels: their path):
- llama.cpp's llama-bench (build it from llama.cpp: `cmake -B build && cmake --build build --target
  llama-bench`), on gguf-f32 and gguf-q4_k_m: its `tg` test, 64 tokens after a 64-token context, 3 repetitions;
- ONNX Runtime GenAI's benchmark/python/benchmark_e2e.py (from its repository, with metrics.py beside it), on
  ort-genai-fp32 and ort-genai-int4: 64 random prompt tokens, greedy, 1 warm-up, 3 repetitions, its token
  generation throughput (1 / the mean time of a generate_next_token call).
- ExecuTorch's own LLM runner (TextLLMRunner, in the executorch wheel; TOOL is its name), on executorch-llm-fp32
  and executorch-llm-8da4w: 64 prompt tokens, 64 new tokens greedy, 1 warm-up, 3 repetitions, its own Stats.
- OpenVINO GenAI's own metrics (the LLMPipeline's PerfMetrics, what its benchmark_genai sample prints; TOOL is its
  name), on openvino-llm-fp32 and openvino-llm-int4: 64 random prompt ids, 64 new tokens, 1 warm-up, 3 repetitions,
  1 / its mean time per output token.
Run:
    .venv/bin/python benchmarks/lm_harness.py llama.cpp PATH/llama-bench   # -> results/gguf-harness.json
    .venv/bin/python benchmarks/lm_harness.py ort-genai PATH/benchmark_e2e.py   # -> results/genai-harness.json
    .venv/bin/python benchmarks/lm_harness.py executorch TextLLMRunner   # -> results/executorch-harness.json
    .venv/bin/python benchmarks/lm_harness.py openvino LLMPipeline   # -> results/openvino-llm-harness.json
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from platform import python_version

from lm_generation import export, speed_model
from machine import machine
from minilm_efficiency import EDGEKIT, ROOT

PROMPT, NEW, ROUNDS = 64, 64, 3


def llama_bench(tool: str, file: str) -> float:
    argv = [tool, "-m", file, "-p", "0", "-n", str(NEW), "-d", str(PROMPT), "-t", "1", "-r", "3", "-o", "json"]
    (record,) = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    return record["avg_ts"]


def genai_e2e(tool: str, folder: str) -> float:
    """benchmark_e2e.py sets no thread count: the folder's genai_config.json says 1 (edgekit's worker sets its own);
    and it makes an og.Tokenizer, which does not take MiniLM's WordPiece (BertTokenizer): the folder gets a small
    byte-level BPE one (its prompts are random token ids either way; edgekit's worker reads no tokenizer)."""
    config = Path(folder) / "genai_config.json"
    described = json.loads(config.read_text())
    described["model"]["decoder"].setdefault("session_options", {})["intra_op_num_threads"] = 1
    config.write_text(json.dumps(described, indent=2))
    _byte_level_tokenizer(Path(folder))
    argv = [sys.executable, tool, "-i", folder, "-l", str(PROMPT), "-g", str(NEW), "-r", "3", "-w", "1", "-k", "1"]
    argv += ["--use_random_tokens", "-o", str(Path(tempfile.mkdtemp()) / "e2e.csv")]
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=Path(tool).parent, env=env)
    return float(re.search(r"Token Generation Throughput \(per token\): ([\d.]+) tps", done.stdout)[1])


def _byte_level_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(["the weather today", "a tweet about the weather"], trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    for name in ("vocab.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)


# ExecuTorch's own LLM runner (TextLLMRunner: the C++ runner of its Android and iOS LLM modules, in the wheel's
# Python bindings) in one fresh process: the thread pool set as edgekit's loader sets it, one warm-up generation,
# three timed, each from an empty cache; a prompt of PROMPT tokens of the byte-level tokenizer (one letter it has no
# merge for, repeated); its Stats: the new tokens after the first over the time from the first token to the end
EXECUTORCH_RUNNER = """
import json, sys
from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
_unsafe_reset_threadpool(1)
import executorch.kernels.quantized  # the int8 embedding table's kernel (embedding_byte), as edgekit's loader
from executorch.extension.llm.custom_ops import custom_ops  # its LLM attention (custom_sdpa), as edgekit's loader
from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner
folder, prompt, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runner = TextLLMRunner(folder + "/model.pte", folder + "/tokenizer.json")
stats = []
for timed in (False, True, True, True):
    runner.reset()
    config = GenerationConfig(echo=False, max_new_tokens=new, temperature=0.0, warming=not timed)
    runner.generate("z" * prompt, config, stats_callback=stats.append if timed else None)
print(json.dumps([[s.num_prompt_tokens, s.num_generated_tokens, s.inference_end_ms - s.first_token_ms] for s in stats]))
"""


def executorch_runner(tool: str, folder: str) -> float:
    """ExecuTorch's TextLLMRunner reads the tokenizer it is given (its library takes no WordPiece): the folder
    gets the byte-level BPE one, as for ONNX Runtime GenAI (edgekit's worker reads none)."""
    if not (Path(folder) / "tokenizer_config.json").read_text().count("GPT2Tokenizer"):
        _byte_level_tokenizer(Path(folder))
    argv = [sys.executable, "-c", EXECUTORCH_RUNNER, folder, str(PROMPT), str(NEW)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    if any(prompt != PROMPT for prompt, _, _ in runs):
        raise SystemExit(f"the runner's prompt was not {PROMPT} tokens: {runs}")
    return statistics.median(generated * 1e3 / ms for _, generated, ms in runs)  # the first token is not counted


# OpenVINO GenAI's own metrics in one fresh process: the pipeline as an app loads it (1 thread), one warm-up and
# three timed generations of NEW tokens after PROMPT random ids; its PerfMetrics' time per output token (what its
# benchmark_genai sample prints)
OPENVINO_PIPELINE = """
import json, sys, numpy as np, openvino, openvino_genai as og
folder, prompt, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
precision = json.load(open(folder + "/generation.json")).get("inference_precision")
config = {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": "1"}
if precision:
    config["INFERENCE_PRECISION_HINT"] = precision
pipe = og.LLMPipeline(folder, "CPU", **config)
ids = np.random.default_rng(0).integers(3, 30000, size=(1, prompt))
inputs = og.TokenizedInputs(openvino.Tensor(ids), openvino.Tensor(np.ones_like(ids)))
settings = og.GenerationConfig()
settings.max_new_tokens = settings.min_new_tokens = new
settings.do_sample = False
runs = [pipe.generate(inputs, settings).perf_metrics for _ in range(4)][1:]
print(json.dumps([m.get_tpot().mean for m in runs]))
"""


def openvino_genai(tool: str, folder: str) -> float:
    argv = [sys.executable, "-c", OPENVINO_PIPELINE, folder, str(PROMPT), str(NEW)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return 1e3 / statistics.mean(json.loads(done.stdout.strip().splitlines()[-1]))


# runtime -> (its targets, its own measure of one file's decode tokens/s, the results file)
TOOLS: dict[str, tuple[tuple[str, ...], Callable[[str, str], float], str]] = {
    "llama.cpp": (("gguf-f32", "gguf-q4_k_m"), llama_bench, "gguf-harness.json"),
    "ort-genai": (("ort-genai-fp32", "ort-genai-int4"), genai_e2e, "genai-harness.json"),
    "executorch": (("executorch-llm-fp32", "executorch-llm-8da4w"), executorch_runner, "executorch-harness.json"),
    "openvino": (("openvino-llm-fp32", "openvino-llm-int4"), openvino_genai, "openvino-llm-harness.json"),
}


def main(runtime: str, tool: str) -> None:
    targets, own_measure, result_file = TOOLS[runtime]
    with tempfile.TemporaryDirectory(prefix="edgekit-lmh-") as tmp:
        work = Path(tmp)
        files = export(speed_model(work / "llama-120m"), work / "out", prompts=2, targets=targets)
        paths = [files[t]["folder"] for t in targets]
        own: dict[str, list[float]] = {t: [] for t in targets}
        ours: list[dict] = []
        for _ in range(ROUNDS):  # alternating: one edgekit process per file, then the runtime's own program
            result = work / "edgekit.json"
            argv = [*EDGEKIT, "benchmark", *paths, "--generate", "--threads", "1", "--prompt-tokens", str(PROMPT)]
            argv += ["--new-tokens", str(NEW), "--processes", "1", "--generations", "2", "--json", str(result), "-q"]
            subprocess.run(argv, check=True)
            ours += json.loads(result.read_text())
            for target, path in zip(targets, paths):
                own[target].append(own_measure(tool, path))
    rows = {}
    for target in targets:
        edgekit_tps = statistics.median(r["decode_tokens_per_s"]["median"] for r in ours if r["target"] == target)
        own_tps = statistics.median(own[target])
        rows[target] = {
            "edgekit_decode_tokens_per_s": round(edgekit_tps, 1),
            "own_tool_decode_tokens_per_s": round(own_tps, 1),
            "edgekit_vs_own": round(edgekit_tps / own_tps, 3),
        }
        print(target, rows[target], flush=True)
    document = {
        "what": __doc__.splitlines()[0] + " " + __doc__.splitlines()[1],
        "machine": {**machine(), "python": python_version()},
        "own_tool": f"{runtime}: {Path(tool).name}",
        "settings": {"prompt_tokens": PROMPT, "new_tokens": NEW, "threads": 1, "rounds": ROUNDS},
        "results": rows,
    }
    (ROOT / "benchmarks" / "results" / result_file).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in TOOLS:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])

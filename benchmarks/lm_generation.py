"""Causal LMs through ONNX Runtime GenAI (fp32, block-wise int4) and ExecuTorch (fp32, 8da4w): size, time to first
token, decode tokens/s (1 and 2 threads) and perplexity.

Speed is measured on a ~120M-parameter Llama configuration with random weights (speed does not depend on what
the weights are); perplexity on a tiny Llama trained here on tweets (random weights make it meaningless), over
held-out tweets, in the folder's own runtime. Every run is `edgekit benchmark --generate` (fresh processes,
interleaved). Run:
    .venv/bin/python benchmarks/lm_generation.py   # -> benchmarks/results/lm-generation.json
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from platform import python_version

from machine import machine
from minilm_efficiency import EDGEKIT, ROOT

from edgekit.catalog import get_target
from edgekit.sidecar import sidecar_path

SPEED_CONFIG = dict(
    vocab_size=32000,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    num_key_value_heads=4,
    intermediate_size=2048,
    max_position_embeddings=1024,
    bos_token_id=101,
    eos_token_id=102,
    pad_token_id=0,
)
TARGETS = ("ort-genai-fp32", "ort-genai-int4", "executorch-llm-fp32", "executorch-llm-8da4w")


def speed_model(folder: Path) -> Path:
    import shutil

    import torch
    import transformers

    from edgekit_demo.zoo_text import minilm_dir

    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**SPEED_CONFIG)).eval()
    model.save_pretrained(str(folder))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (minilm_dir() / name).exists():
            shutil.copy(minilm_dir() / name, folder)
    return folder


def export(
    source: Path, out: Path, prompts: int, targets: tuple[str, ...] = TARGETS, options: tuple[str, ...] = ()
) -> dict[str, dict]:
    """Each target's folder and its export facts (seconds, size, the generation check); `options`: more export
    flags."""
    done = {}
    for target in targets:
        began = time.monotonic()
        flags = ["--prompts", str(prompts), *options]
        argv = [*EDGEKIT, "export", str(source), "-t", target, "-o", str(out), "-q", *flags]
        gate = subprocess.run(argv).returncode
        suffix = get_target(target).suffix
        folder = out / f"{source.name}-{target}{'.rejected' if gate else ''}{suffix}"
        if not folder.exists():  # a folder, or one file (GGUF)
            raise SystemExit(f"{target} was not exported (exit {gate})")
        sidecar = json.loads(sidecar_path(folder).read_text())
        done[target] = {
            # random weights leave next-token logits nearly tied: int4 may miss the parity gate on them; the
            # rejected folder is the same build, and speed does not depend on what the weights are
            "parity_gate": "passed" if gate == 0 else "failed (kept as .rejected; speed measured on it)",
            "folder": str(folder),
            "export_seconds": round(time.monotonic() - began, 1),
            "size_mb": round(sidecar["size_bytes"] / 1e6, 1),
            "generation_check": sidecar["route"][0]["generation"],
        }
    return done


def generation(folders: list[str], result: Path, prompt_tokens: str = "64,256", threads: str = "1,2") -> list[dict]:
    argv = [*EDGEKIT, "benchmark", *folders, "--generate", "--threads", threads, "--prompt-tokens", prompt_tokens]
    argv += ["--new-tokens", "64", "--processes", "3", "--generations", "2", "--json", str(result), "-q"]
    subprocess.run(argv, check=True)
    runs = json.loads(result.read_text())
    return [
        {
            "target": run["target"],
            "threads": run["threads"],
            "prompt_tokens": run["prompt_tokens"],
            "new_tokens": run["new_tokens"],
            "ttft_ms": round(run["time_to_first_token_ms"]["median"], 1),
            "prefill_tokens_per_s": round(run["prefill_tokens_per_s"]["median"], 1),
            "decode_tokens_per_s": round(run["decode_tokens_per_s"]["median"], 1),
            "decode_ci95": [round(x, 1) for x in run["decode_tokens_per_s"]["median_ci95"] or []],
            "token_p50_ms": round(run["token_latency_ms"]["p50"], 2),
            "token_p99_ms": round(run["token_latency_ms"]["p99"], 2),
            "peak_rss_mb": round(run["peak_rss_mb"], 1),
            "folder": run["artifact"],
        }
        for run in runs
    ]


def perplexity(folder: str, source: Path, text: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [*EDGEKIT, "evaluate", folder, "--data", str(text), "--metric", "perplexity", "--reference"]
        subprocess.run([*argv, str(source), "--json", out.name, "-q"], check=True)
        report = json.loads(Path(out.name).read_text())
    return {
        "perplexity": round(report["metrics"]["perplexity"], 2),
        "source_perplexity": round(report["reference"]["perplexity"], 2),
        "increase_pct": round(report["drop"]["perplexity"], 2),
        "next_token_agreement": report["metrics"]["next_token_agreement"],
        "tokens": report["metrics"]["tokens"],
    }


def run(targets: tuple[str, ...], result: str, what: str, prompt_tokens: str) -> None:
    """Both models exported to `targets`, generation timed (1 and 2 threads), perplexity scored: results/`result`."""
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_families import build_family

    with tempfile.TemporaryDirectory(prefix="edgekit-lm-") as tmp:
        work = Path(tmp)
        big = export(speed_model(work / "llama-120m"), work / "out", prompts=4, targets=targets)
        print(json.dumps(big, indent=1), flush=True)
        speed = generation([big[t]["folder"] for t in targets], work / "generation.json", prompt_tokens)
        for row in speed:
            row.pop("folder")
            print(row, flush=True)
        trained = build_family("llama", work / "llama-tweets", tweets=3000, epochs=2)
        small = export(trained, work / "out", prompts=20, targets=targets)
        text = write_tweets_csv(work / "held-out.csv", "test", 300)
        quality = {t: {**small[t], **perplexity(small[t]["folder"], trained, text)} for t in targets}
        print(json.dumps(quality, indent=1), flush=True)
    for facts in (*big.values(), *quality.values()):
        facts.pop("folder")
    document = {
        "what": what,
        "machine": {**machine(), "python": python_version()},
        "speed_model": {"config": SPEED_CONFIG, "files": big},
        "generation": speed,
        "quality_model": "tiny Llama (hidden 64, 2 layers, MiniLM's 30522-token vocabulary) trained on 3000 tweets",
        "quality": quality,
    }
    (ROOT / "benchmarks" / "results" / result).write_text(json.dumps(document, indent=2) + "\n")


def main() -> None:
    run(TARGETS, "lm-generation.json", __doc__.splitlines()[0], "64,256")


if __name__ == "__main__":
    main()

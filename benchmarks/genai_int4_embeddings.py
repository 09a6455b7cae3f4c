"""ONNX Runtime GenAI int4 with the token embedding table float (`--no-int4-embeddings`) and in 4-bit blocks too
(the default): size against fp32 and decode speed on the ~120M-parameter Llama of lm_generation.py
(random weights; one interleaved `edgekit benchmark --generate` run: 1 thread, 64-token prompt, 64 new, 3 fresh
processes), and perplexity and next-token agreement on its tiny Llama trained on tweets (300 held-out tweets).

    .venv/bin/python benchmarks/genai_int4_embeddings.py   # -> benchmarks/results/genai-int4-embeddings.json
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from lm_generation import perplexity, speed_model
from machine import machine
from minilm_efficiency import EDGEKIT, ROOT

from edgekit.sidecar import sidecar_path

VARIANTS = (  # label, target, export flags
    ("fp32", "ort-genai-fp32", []),
    ("int4 --no-int4-embeddings", "ort-genai-int4", ["--no-int4-embeddings"]),
    ("int4", "ort-genai-int4", []),
)


def export(source: Path, out: Path, prompts: int) -> dict[str, dict]:
    """Each variant's folder (exported into its own folder), its size and the generation check."""
    done = {}
    for label, target, flags in VARIANTS:
        folder = out / label.replace(" ", "")
        argv = [*EDGEKIT, "export", str(source), "-t", target, "-o", str(folder), "-q", "--prompts", str(prompts)]
        gate = subprocess.run([*argv, *flags]).returncode
        made = next(folder.glob("*.genai"))  # random weights may miss the parity gate: *.rejected.genai, same build
        sidecar = json.loads(sidecar_path(made).read_text())
        done[label] = {
            "folder": str(made),
            "parity_gate": "passed" if gate == 0 else "failed (kept as .rejected)",
            "size_mb": round(sidecar["size_bytes"] / 1e6, 1),
            "generation_check": sidecar["route"][0]["generation"],
        }
    return done


def decode(folders: dict[str, str], result: Path) -> dict[str, dict]:
    argv = [*EDGEKIT, "benchmark", *folders.values(), "--generate", "--threads", "1", "--prompt-tokens", "64"]
    subprocess.run([*argv, "--new-tokens", "64", "--processes", "3", "--json", str(result), "-q"], check=True)
    label = {v: k for k, v in folders.items()}
    return {
        label[run["artifact"]]: {
            "decode_tokens_per_s": round(run["decode_tokens_per_s"]["median"], 1),
            "ttft_ms": round(run["time_to_first_token_ms"]["median"], 1),
            "peak_rss_mb": round(run["peak_rss_mb"], 1),
        }
        for run in json.loads(result.read_text())
    }


def main() -> None:
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_families import build_family

    with tempfile.TemporaryDirectory(prefix="edgekit-genai-emb-") as tmp:
        work = Path(tmp)
        big = export(speed_model(work / "llama-120m"), work / "big", prompts=4)
        speed = decode({k: v["folder"] for k, v in big.items()}, work / "generation.json")
        trained = build_family("llama", work / "llama-tweets", tweets=3000, epochs=2)
        small = export(trained, work / "small", prompts=20)
        text = write_tweets_csv(work / "held-out.csv", "test", 300)
        quality = {k: {"size_mb": v["size_mb"], **perplexity(v["folder"], trained, text)} for k, v in small.items()}
    fp32, rows = big["fp32"]["size_mb"], {}
    for label, facts in big.items():
        facts.pop("folder")
        rows[label] = {**facts, "smaller_than_fp32": round(fp32 / facts["size_mb"], 2), **speed[label]}
        rows[label]["tiny_trained_llama"] = quality[label]
    document = {"what": __doc__.split("\n\n")[0].replace("\n", " "), "machine": machine(), "rows": rows}
    (ROOT / "benchmarks" / "results" / "genai-int4-embeddings.json").write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()

"""ExecuTorch 8da4w with the token embedding table in int8 rows (the default) against the table in fp32
(`--no-int8-embeddings`), in one run: size, decode speed and time to first token of the ~120M Llama of
lm_generation.py (64-token prompt, 64 new tokens, 1 thread, 3 fresh processes), perplexity and next-token agreement
on the tiny Llama trained on tweets. Run:
    .venv/bin/python benchmarks/executorch_llm_embeddings.py   # -> benchmarks/results/executorch-llm-embeddings.json
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from platform import python_version

from lm_generation import generation, perplexity, speed_model
from machine import machine
from minilm_efficiency import EDGEKIT, ROOT

from edgekit.sidecar import sidecar_path

VARIANTS = {"int8 table": [], "fp32 table": ["--no-int8-embeddings"]}


def export(source: Path, out: Path, prompts: int) -> dict[str, dict]:
    done = {}
    for name, flags in VARIANTS.items():
        folder_out = out / name.split()[0]
        argv = [*EDGEKIT, "export", str(source), "-t", "executorch-llm-8da4w", "-o", str(folder_out), "-q"]
        subprocess.run([*argv, "--prompts", str(prompts), *flags])  # random weights may miss the gate: kept
        (folder,) = [p for p in folder_out.iterdir() if p.suffix == ".etllm"]
        sidecar = json.loads(sidecar_path(folder).read_text())
        step = sidecar["route"][0]
        done[name] = {"folder": str(folder), "size_mb": round(sidecar["size_bytes"] / 1e6, 1),
                      "embeddings": step["embeddings"], "generation_check": step["generation"]}  # fmt: skip
    return done


def main() -> None:
    from edgekit_demo.datasets import write_tweets_csv
    from edgekit_demo.zoo_families import build_family

    with tempfile.TemporaryDirectory(prefix="edgekit-etemb-") as tmp:
        work = Path(tmp)
        big = export(speed_model(work / "llama-120m"), work / "big", prompts=2)
        speed = generation([f["folder"] for f in big.values()], work / "gen.json", prompt_tokens="64", threads="1")
        for name, row in zip(big, speed):
            big[name].update(row)
        trained = build_family("llama", work / "llama-tweets", tweets=3000, epochs=2)
        small = export(trained, work / "small", prompts=20)
        text = write_tweets_csv(work / "held-out.csv", "test", 300)
        for facts in small.values():
            facts.update(perplexity(facts["folder"], trained, text))
    for facts in (*big.values(), *small.values()):
        facts.pop("folder")
        print(facts, flush=True)
    document = {
        "what": __doc__.splitlines()[0],
        "machine": {**machine(), "python": python_version()},
        "speed_model": big,
        "quality_model": small,
    }
    result = ROOT / "benchmarks" / "results" / "executorch-llm-embeddings.json"
    result.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()

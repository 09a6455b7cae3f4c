"""ExecuTorch's llama runner, llama_main (built from ExecuTorch's examples/models/llama, on its TextLLMRunner), as
`benchmark --generate --tool`: each repetition is one fresh process that loads the folder's program, generates once
to warm up, then generates greedily and prints its Stats as one `PyTorchObserver {...}` line.

llama_main takes a text prompt: the prompt is a string the folder's tokenizer reads as exactly the asked number of
tokens, and the tokens the runner counted are checked against it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError, UsageError

TOKENIZER = "tokenizer.json"  # what ExecuTorch's tokenizer library reads of the folder's tokenizer files
# pieces that are one token each in most vocabularies and do not merge with themselves
CANDIDATES = (" the", " a", "the ", "a ", " x", "x ", ",", "z")
_OBSERVER = re.compile(r"PyTorchObserver (\{.*\})")
STATS = ("prompt_tokens", "generated_tokens", "model_load_start_ms", "model_load_end_ms", "inference_start_ms",
         "first_token_ms", "inference_end_ms")  # fmt: skip


def commands(tool: str, folder: str, local: Path, threads: int, prompt: int, new: int, runs: int) -> list[list[str]]:
    text = prompt_text(local, prompt)
    argv = [tool, f"--model_path={folder}/model.pte", f"--tokenizer_path={folder}/{TOKENIZER}", f"--prompt={text}"]
    argv += [f"--seq_len={prompt + new}", f"--cpu_threads={threads}", "--temperature=0", "--warmup=true"]
    return [argv] * runs


def prompt_text(folder: Path, tokens: int) -> str:
    """A text the folder's tokenizer reads as exactly `tokens` tokens (no special tokens added)."""
    from tokenizers import Tokenizer

    path = folder / TOKENIZER
    if not path.is_file():
        raise UsageError(
            f"{folder} has no {TOKENIZER}: llama_main takes a text prompt, which edgekit sizes with it.",
            hint="Export from a folder whose tokenizer is a Hugging Face tokenizer.json.",
        )
    tokenizer = Tokenizer.from_file(str(path))
    for piece in CANDIDATES:
        text = piece * tokens
        if len(tokenizer.encode(text, add_special_tokens=False).ids) == tokens:
            return text
    raise UsageError(f"edgekit found no text of exactly {tokens} tokens for {path}'s tokenizer.")


def parse(outputs: list[str]) -> dict[str, Any]:
    """Per repetition (one process each): time to first token from the start of inference (tokenizing, prefill,
    the first token), decode tokens/s of the tokens after the first, the program's load time (all in whole ms)."""
    stats = [_observer(out) for out in outputs]
    return {
        "ttft_ms": [s["first_token_ms"] - s["inference_start_ms"] for s in stats],
        # its generated_tokens leave out the first (the prefill's): they are the ones timed after it
        "decode_tokens_per_s": [
            s["generated_tokens"] * 1e3 / (s["inference_end_ms"] - s["first_token_ms"]) for s in stats
        ],
        "load_ms": float(stats[0]["model_load_end_ms"] - stats[0]["model_load_start_ms"]),
        "prompt_tokens_counted": [s["prompt_tokens"] for s in stats],
    }


def _observer(output: str) -> dict[str, Any]:
    """The last Stats line of one llama_main output, with the figures the parse reads."""
    for match in reversed(_OBSERVER.findall(output)):
        try:
            stats = json.loads(match)
        except json.JSONDecodeError:
            continue
        if (
            isinstance(stats, dict)
            and all(_number(stats.get(k)) for k in STATS)
            and stats["generated_tokens"] > 0
            and stats["inference_end_ms"] > stats["first_token_ms"]
        ):
            return stats
    raise EdgekitError("llama_main printed no PyTorchObserver line with tokens generated after the first.")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

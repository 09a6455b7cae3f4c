"""llama.cpp's own benchmark program, llama-bench, as `benchmark --generate --tool`: one fresh process times the
prompt's prefill (its `pp` test), a second the decoding of the new tokens after that prompt (its `tg` test at a
depth of the prompt's length), each with its own warm-up run; their JSON lines give one figure per repetition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError


def commands(tool: str, model: str, local: Path, threads: int, prompt: int, new: int, runs: int) -> list[list[str]]:
    """Its prefill test of the prompt, then its generation test of the new tokens after a context of the prompt."""
    common = [tool, "-m", model, "-t", str(threads), "-r", str(runs), "-o", "jsonl"]
    return [[*common, "-p", str(prompt), "-n", "0"], [*common, "-p", "0", "-n", str(new), "-d", str(prompt)]]


def parse(outputs: list[str]) -> dict[str, Any]:
    """Time to first token from the prefill test's samples (the prompt's forward pass; llama-bench samples no
    token), decode tokens/s from the generation test's."""
    prefill, decode = (_test(out, kind) for out, kind in zip(outputs, ("n_prompt", "n_gen")))
    return {
        "ttft_ms": [ns / 1e6 for ns in prefill["samples_ns"]],
        "decode_tokens_per_s": [float(ts) for ts in decode["samples_ts"]],
        "versions": {"llama-bench": f"build {decode.get('build_number')} ({decode.get('build_commit')})"},
        "tool_settings": {k: decode.get(k) for k in ("type_k", "type_v", "flash_attn", "n_batch", "cpu_info")},
    }


def _test(output: str, counted: str) -> dict[str, Any]:
    """The one test line of a llama-bench -o jsonl output that timed `counted` tokens (its logs may surround it)."""
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get(counted) and _numbers(record, "samples_ns", "samples_ts"):
                return record
    raise EdgekitError(f"llama-bench printed no test line with {counted} > 0 (is it llama-bench, with -o jsonl?)")


def _numbers(record: dict[str, Any], *keys: str) -> bool:
    """Whether each of `keys` is a non-empty list of positive numbers (what the figures are read from)."""
    return all(
        isinstance(record.get(k), list)
        and record[k]
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in record[k])
        for k in keys
    )

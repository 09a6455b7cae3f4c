"""The machine a benchmark's results name (machines of one kind differ: AVX2-only and AVX-512 VNNI EPYCs)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

KEYS = ("cpu_model", "cpu_count", "cpu_flags")


def machine(env: Mapping[str, Any] | None = None, *extra: str) -> dict[str, Any]:
    """CPU model, cores and flags (and the `extra` keys) from `env`, a benchmark run's `environment` record, or
    else from this process's."""
    if env is None:
        from edgekit.bench.worker import environment

        env = environment()
    return {k: env.get(k) for k in (*KEYS, *extra)}


def result_file(stem: str) -> Path:
    """benchmarks/results/STEM.PROFILE.json, PROFILE this machine's device profile: int8 kernels differ by CPU
    (AVX-512 VNNI, AMX), so results that compare them are kept per kind of machine."""
    from edgekit.catalog.detect import local_device

    return Path(__file__).resolve().parent / "results" / f"{stem}.{local_device().name}.json"

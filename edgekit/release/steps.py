"""The step graph's parts: a Step plans a Job once the steps it depends on have finished; an executor runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RETRIES = 3  # a step whose worker process or node died runs again, up to this many times


@dataclass(frozen=True)
class Job:
    """What a step runs, built by the driver and sent to wherever it runs (so it must pickle)."""

    key: str
    work: Callable[[Path], dict]  # fills the entry's folder, returns its record
    device: str | None = None  # the benchmark device it occupies
    exclusive: bool = False  # nothing else runs meanwhile (a benchmark on this machine)


@dataclass(frozen=True)
class Step:
    id: str  # unique within the run; what progress and results call it
    deps: tuple[str, ...]
    plan: Callable[[dict[str, dict]], Job]  # the job, from the records of `deps`

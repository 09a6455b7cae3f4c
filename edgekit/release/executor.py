"""Run a graph of cached steps: one after another, side by side in worker processes, or as Ray tasks.

The graph and the cache are the same whatever runs it; an executor only decides where a job runs. Each step
plans its job once the steps it depends on have finished (its key hashes what they produced), a job whose
entry is in the cache is not run, two steps with one key run once, a benchmark device runs one job at a time,
and a benchmark on this machine runs alone (anything beside it would be in its numbers).
"""

from __future__ import annotations

import functools
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.markup import escape

from edgekit.errors import EdgekitError, UsageError
from edgekit.progress import Progress
from edgekit.release import stepcache
from edgekit.release.steps import RETRIES, Job, Step

EXECUTORS = ("serial", "local", "ray")


class StepSkipped(EdgekitError):
    """A step did not run because one it depends on failed."""


@dataclass
class Outcome:
    """What executing the graph gave: each step's record, each failed step's error, how each step went."""

    records: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)


class Executor(Protocol):
    slots: int  # jobs that may run at once

    def submit(self, cache: str, job: Job, step: str) -> Future: ...

    def close(self, cancel: bool = False) -> None: ...


class SerialExecutor:
    """Each job in this process, one after another (the order is the graph's order)."""

    slots = 1

    def submit(self, cache: str, job: Job, step: str) -> Future:
        future: Future = Future()
        try:
            future.set_result(stepcache.build(cache, job.key, step, job.work))
        except Exception as e:  # the scheduler reports it against the step
            future.set_exception(e)
        return future

    def close(self, cancel: bool = False) -> None:
        pass


def _limit_threads(threads: int) -> None:
    """In a worker process, before any framework is imported: its share of the cores."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[name] = str(threads)


class LocalExecutor:
    """Jobs side by side in `jobs` worker processes on this machine, each with its share of the cores."""

    def __init__(self, jobs: int | None = None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        cores = os.cpu_count() or 1
        self.slots = jobs or cores
        # spawn, not fork: the driver may have loaded torch or TensorFlow, whose threads do not survive a fork
        self._new_pool = functools.partial(
            ProcessPoolExecutor,
            self.slots,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_limit_threads,
            initargs=(max(1, cores // self.slots),),
        )
        self._pool = self._new_pool()

    def submit(self, cache: str, job: Job, step: str) -> Future:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._pool.submit(stepcache.build, cache, job.key, step, job.work)
        except BrokenProcessPool:  # a worker died (killed, out of memory): its steps failed, the rest go on
            self._pool = self._new_pool()
            return self._pool.submit(stepcache.build, cache, job.key, step, job.work)

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


def make_executor(
    name: str,
    jobs: int | None = None,
    address: str | None = None,
    timeout: float = 30,
    devices: list[str] | tuple[str, ...] = (),
) -> Executor:
    """The executor called `name` (serial, local, ray); `devices` are the benchmark devices the run uses."""
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}.")
    if name == "serial" or (name == "local" and jobs == 1):
        return SerialExecutor()
    if name == "local":
        return LocalExecutor(jobs)
    if name == "ray":
        from edgekit.release.ray_executor import RayExecutor

        return RayExecutor(address, jobs, timeout, list(devices))
    raise UsageError(f"Unknown executor '{name}'.", hint=f"Known: {', '.join(EXECUTORS)}.")


def execute(steps: list[Step], cache: Path, executor: Executor, progress: Progress, close: bool = True) -> Outcome:
    """Run the graph: every step whose dependencies succeeded, cached ones from the cache. A failed step
    fails the steps that depend on it; the others still run. Ctrl-C cancels what has not started. `close`:
    shut the executor down after (False: the caller runs more graphs on it, and closes it)."""
    return _Run(steps, cache, executor, progress).go(close)


class _Run:
    def __init__(self, steps: list[Step], cache: Path, executor: Executor, progress: Progress) -> None:
        self.waiting = list(steps)
        self.cache, self.executor, self.progress = cache, executor, progress
        self.total = len(steps)
        self.out = Outcome()
        self.running: dict[Future, tuple[Job, list[str], float]] = {}
        self.by_key: dict[str, Future] = {}
        self.jobs: dict[str, Job] = {}
        self.by_id = {step.id: step for step in steps}
        self.retries: dict[str, int] = {}
        self.durations: list[float] = []

    def go(self, close: bool = True) -> Outcome:
        try:
            with self.progress.live() as show:
                self._start_ready()
                while self.running:
                    show(self._status())
                    done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
                    for future in done:
                        self._finished(future)
                    self._start_ready()
        except KeyboardInterrupt:
            self.progress.warn("interrupted: cancelling the steps not yet finished (finished ones stay cached)")
            self.executor.close(cancel=True)
            raise
        if close:
            self.executor.close()
        return self.out

    def _start_ready(self) -> None:
        """Start (or take from the cache) every step that can go now, until none can."""
        changed = True
        while changed:
            changed = False
            for step in list(self.waiting):
                if any(d in self.out.errors for d in step.deps):
                    failed = next(d for d in step.deps if d in self.out.errors)
                    self.out.errors[step.id] = StepSkipped(f"not run: {failed} failed")
                    self.waiting.remove(step)
                    changed = True
                elif all(d in self.out.records for d in step.deps) and self._try(step):
                    self.waiting.remove(step)
                    changed = True

    def _try(self, step: Step) -> bool:
        """Whether the step was settled or started now (False: it waits for a slot, a device, or the machine)."""
        job = self._job(step)
        if job.key in self.by_key:  # the same work, started by another step of the run
            future = self.by_key[job.key]
            if future in self.running:
                self.running[future][1].append(step.id)
            else:
                self._settle([step.id], future, cached=True)
            return True
        record, altered = stepcache.lookup(self.cache, job.key)
        if altered:
            said = f"its cache entry {job.key[:12]} was altered after it was written; redoing"
            self.progress.warn(f"{escape(step.id)}: {said}")
        if record is not None:
            self.progress.info(f"{escape(step.id)}: cached ({job.key[:12]})")
            self.out.records[step.id] = record
            self.out.steps.append({"step": step.id, "key": job.key, "cached": True})
            return True
        if not self._may_start(job):
            return False
        future = self.executor.submit(str(self.cache), job, step.id)
        self.by_key[job.key] = future
        self.running[future] = (job, [step.id], time.time())
        return True

    def _may_start(self, job: Job) -> bool:
        jobs = [j for j, _, _ in self.running.values()]
        if len(jobs) >= self.executor.slots or any(j.exclusive for j in jobs):
            return False
        if job.device is not None and any(j.device == job.device for j in jobs):
            return False
        if job.exclusive:
            return not jobs
        # a waiting exclusive job goes next: new work would keep it waiting
        return not any(self._blocked_exclusive(s) for s in self.waiting)

    def _blocked_exclusive(self, step: Step) -> bool:
        return all(d in self.out.records for d in step.deps) and self._job(step).exclusive

    def _job(self, step: Step) -> Job:
        """The step's job, planned once (planning hashes the files its dependencies made)."""
        if step.id not in self.jobs:
            self.jobs[step.id] = step.plan({d: self.out.records[d] for d in step.deps})
        return self.jobs[step.id]

    def _finished(self, future: Future) -> None:
        from concurrent.futures.process import BrokenProcessPool

        job, ids, started = self.running.pop(future)
        if isinstance(future.exception(), BrokenProcessPool) and self.retries.get(job.key, 0) < RETRIES:
            self.retries[job.key] = self.retries.get(job.key, 0) + 1  # its worker died: run it again
            self.progress.warn(f"{escape(ids[0])}: its worker process died; running it again")
            del self.by_key[job.key]
            self.waiting[:0] = [self.by_id[i] for i in ids]
            return
        self.durations.append(time.time() - started)
        self._settle(ids, future, cached=False)

    def _settle(self, ids: list[str], future: Future, cached: bool) -> None:
        from concurrent.futures.process import BrokenProcessPool

        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            error = EdgekitError("its worker process died (killed, or out of memory?); run again to retry it")
        for i, step_id in enumerate(ids):
            if error is not None:
                self.out.errors[step_id] = error
                self.progress.warn(f"{escape(step_id)}: failed: {escape(str(getattr(error, 'message', error)))}")
                continue
            record = future.result()
            self.out.records[step_id] = record
            again = cached or i > 0  # one run served several steps with the same key
            self.out.steps.append(
                {
                    "step": step_id,
                    "key": record.get("_key"),
                    "cached": again,
                    **({} if again else {"started": record.get("_started"), "ended": record.get("_ended")}),
                }
            )
            if not again:
                took = record["_ended"] - record["_started"]
                self.progress.info(f"  {escape(step_id)} [dim]({took:.1f}s){self._left()}[/]")

    def _status(self) -> str:
        """The live line: what runs now, and the sweep's counts."""
        names = [i for _, ids, _ in self.running.values() for i in ids[:1]]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        cached = sum(s["cached"] for s in self.out.steps)
        done, failed = len(self.out.records), len(self.out.errors)
        return f"running {escape(shown)} · {done} done ({cached} cached), {failed} failed"

    def _left(self) -> str:
        """Steps done of all, and the time left at the pace so far (sweeps only)."""
        settled = len(self.out.records) + len(self.out.errors)
        if self.total < 4:
            return ""
        left = self.total - settled
        pace = sum(self.durations) / len(self.durations) / self.executor.slots if self.durations else 0
        return f" · {settled}/{self.total} done, {len(self.running)} running, ~{left * pace:.0f}s left"

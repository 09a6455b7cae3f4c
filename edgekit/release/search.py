"""`edgekit search`: the best file for each device profile, found by trying it. Each trial is a target and one
setting of its runtime's searchable options, run as a one-target pipeline on the sweep executor (export with
its parity gate, evaluation in the file's runtime against the source, a benchmark), so trials share the step
cache: a re-run or an interrupted search reuses every finished step. Then, per device profile, the Pareto front
of accuracy drop, p50 latency and size, and the choice: the fastest file within the budgets."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgekit.checksum import sha256_path
from edgekit.errors import EdgekitError, UsageError, first_line
from edgekit.progress import SILENT, Progress
from edgekit.release.pareto import pareto_front
from edgekit.release.pipeline import (
    BenchmarkSpec,
    Combination,
    EvaluateSpec,
    Gates,
    Pipeline,
    execute_combinations,
    size_over,
)
from edgekit.release.search_optuna import OBJECTIVES, sampled_trials
from edgekit.release.search_space import SearchSpace, compression_label, read_space

STRATEGIES = ("grid", "random", *OBJECTIVES)  # the sampled ones: each with what it minimizes
SEARCH_FILE = "search.json"


@dataclass(frozen=True)
class Budgets:
    """What a chosen file must meet: accuracy drop in points against the source, p90 latency, size, and the
    peak memory (resident set) of the process that ran it on the bench device."""

    max_drop: float
    max_p90_ms: float | None = None
    max_size_mb: float | None = None
    max_memory_mb: float | None = None


@dataclass(frozen=True)
class Trial:
    """One point of the space: a target for a device profile, with its runtime's options and, where the space
    varies them, how many calibration samples the export reads (targets that calibrate) and how many of the
    most sensitive layers it keeps float from the start (targets whose fallback keeps layers)."""

    device: str
    target: str
    options: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)
    calib_samples: int | None = None
    keep_sensitive: int | None = None
    compress: dict[str, Any] | None = field(default=None, hash=False)  # a pipeline's compress: settings

    @property
    def name(self) -> str:
        settings = [f"{k}={v}" for opts in self.options.values() for k, v in sorted(opts.items())]
        settings += [f"calib_samples={self.calib_samples}"] if self.calib_samples else []
        settings += [f"keep_sensitive={self.keep_sensitive}"] if self.keep_sensitive is not None else []
        settings += [compression_label(self.compress)] if self.compress else []
        return f"{self.device}: {self.target}" + (f" ({', '.join(settings)})" if settings else "")


class NoChoice(EdgekitError):
    """No trial for a device met the budgets (the search's results are still written)."""

    def __init__(self, message: str, result: dict[str, Any], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


def search_space(
    devices: list[str],
    targets: tuple[str, ...] = (),
    values: dict[str, dict[str, list[Any]]] | None = None,
    calib_samples: tuple[int, ...] = (),
    keep_sensitive: tuple[int, ...] = (),
    compressions: tuple[dict[str, Any], ...] = (),
) -> list[Trial]:
    """Every target that exports and runs on this machine and that the device profile takes (it has a rule for
    the runtime and allows the quantization), once per combination of its runtime's searchable option values.
    `targets` narrows it to those names; `values` (per runtime, option -> values) replaces or adds options';
    `calib_samples`: the calibration sizes each target that calibrates is tried with; `keep_sensitive`: how many
    of the most sensitive layers each target whose fallback keeps layers float is tried with from the start;
    `compressions`: compressed sources (a pipeline's compress: settings) each target is tried on besides the source."""
    from edgekit.backends.registry import backend_for_runtime
    from edgekit.catalog import get_device, get_target, resolve
    from edgekit.catalog import targets as all_targets
    from edgekit.dispatch import availability

    for name in targets:
        get_target(name)  # an unknown name is an error naming the known ones
    trials = []
    for device_name in devices:
        device = get_device(device_name)
        for target in all_targets().values():
            if (targets and target.name not in targets) or target.runtime not in device.runtimes:
                continue
            here = availability(target)
            if not (here.exports_here and here.runs_here):
                continue
            try:
                resolve(target, device)
            except UsageError:
                continue  # the profile does not take this quantization (an NPU: full integer only)
            backend = backend_for_runtime(target.runtime)
            searched = _option_settings(
                backend.options if backend else None, (values or {}).get(target.runtime), target.quantization
            )
            sizes = calib_samples if calib_samples and target.needs_calibration else (None,)
            keeps = backend is not None and backend.keeps_float(target.quantization)
            kept = keep_sensitive if keep_sensitive and keeps else (None,)
            for options, size, k, c in itertools.product(searched, sizes, kept, (None, *compressions)):
                runtime_options = {target.runtime: options} if options else {}
                trials.append(Trial(device.name, target.name, runtime_options, size, k, c))
    return trials


def _option_settings(
    model: Any, values: dict[str, list[Any]] | None = None, quantization: str | None = None
) -> list[dict[str, Any]]:
    """Every combination of the values the options model marks searchable (for this quantization, where an
    option names the ones it acts on), with `values` replacing or adding options' ([{}] when none)."""
    extras = {
        name: extra
        for name, info in (model.model_fields.items() if model else ())
        if isinstance(extra := info.json_schema_extra, dict)
    }
    fields = {name: extra["search"] for name, extra in extras.items() if "search" in extra}
    fields.update(values or {})
    fields = {k: v for k, v in fields.items() if quantization in extras.get(k, {}).get("quantizations", [quantization])}
    return [dict(zip(fields, values)) for values in itertools.product(*fields.values())]


def pick(trials: list[Trial], strategy: str, limit: int | None, seed: int = 0) -> list[Trial]:
    """The trials of one device profile to run: the grid in order, or a random sample; at most `limit`."""
    chosen = list(trials)
    if strategy == "random":
        random.Random(seed).shuffle(chosen)
    return chosen[:limit] if limit else chosen


def search(
    source: str,
    devices: list[str],
    data: str,
    out: str | Path,
    budgets: Budgets,
    *,
    calib: str | None = None,
    inputs: tuple[str, ...] = (),
    weights: str | None = None,
    tokenizer: str | None = None,
    targets: tuple[str, ...] = (),
    strategy: Literal["grid", "random", "tpe", "nsga2"] = "grid",
    trials: int | None = None,
    time_budget: float | None = None,
    space_file: str | Path | None = None,
    seed: int = 0,
    bench: str = "local",
    executor: str = "local",
    jobs: int | None = None,
    bundle: str | Path | None = None,
    labels: str | None = None,
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """Search the space for each device profile; writes OUT/search.json (edgekit.release.search_schema), its HTML
    report (OUT/report.html) and each device's chosen file (with its sidecar) under OUT/DEVICE/. Returns the
    search.json document; raises NoChoice when a device has none. `bundle`: a folder where each device's choice
    also becomes an app bundle (BUNDLE/DEVICE, for the profile's platform; `labels` goes into it). `time_budget`:
    seconds after which no new round of trials starts (the round running then finishes; each device profile
    gets an equal share of what is left when its turn comes). `space_file`: a SPACE.yaml that narrows the targets
    and sets the values tried per runtime option (edgekit.release.search_space); `targets` wins over its list."""
    from edgekit.catalog import get_device

    if strategy not in STRATEGIES:
        raise UsageError(f"Unknown search strategy '{strategy}'.", hint=f"Use one of: {', '.join(STRATEGIES)}.")
    out, devices = Path(out), [get_device(d).name for d in devices]
    chosen_space = read_space(space_file) if space_file else SearchSpace()
    space = search_space(
        devices,
        targets or tuple(chosen_space.targets),
        chosen_space.options,
        tuple(chosen_space.calibration_samples),
        tuple(chosen_space.keep_sensitive),
        tuple(chosen_space.compressions()),
    )
    if not space:
        raise UsageError(
            f"Nothing to search: no target{' of ' + ', '.join(targets) if targets else ''} exports and runs here "
            f"for {', '.join(devices)}.",
            hint="`edgekit targets` lists what runs here; `edgekit devices` what each profile takes.",
        )
    _reachable(bench)
    progress.info(f"search: {len(space)} trial(s) in the space ({strategy}) for {', '.join(devices)}")
    runner = _TrialRunner(
        {"source": source, "weights": weights, "inputs": list(inputs), "calib": calib, "tokenizer": tokenizer},
        data, bench, budgets, out / "cache", executor, jobs, progress,
    )  # fmt: skip
    clock = _Clock(time_budget)
    try:
        done = _run_trials(space, devices, strategy, trials, seed, runner, jobs or os.cpu_count() or 1, clock)
    finally:
        runner.close()
    trials_run = _same_files(done)
    result: dict[str, Any] = {
        "schema_version": "1",
        "source": source,
        "strategy": strategy,
        "budgets": asdict(budgets),
        "bench_device": bench,
        "space_size": len(space),
        "time_budget_s": time_budget,
        "stopped": clock.stopped(len(done)),
        "steps": {"ran": runner.ran, "cached": runner.listed - runner.ran},
        "trials": trials_run,
        "front": {d: [r["name"] for r in _front([r for r in trials_run if r["device"] == d])] for d in devices},
        "choices": {},
    }
    missing = [d for d in devices if not _choose(result, d, out, bundle, labels)]
    (out / SEARCH_FILE).write_text(json.dumps(result, indent=2, default=str) + "\n")
    from edgekit.release.report import write_report

    try:
        write_report([out / SEARCH_FILE], out / "report.html", f"edgekit search {source}")
    except UsageError:  # no trial made a file to show: the trials' errors are what the user needs (below)
        if not missing:
            raise
    if missing:
        raise NoChoice(
            f"No trial met the budgets for {', '.join(missing)}.",
            result,
            hint="Closest: "
            + "; ".join(_closest(trials_run, d) for d in missing)
            + ". Loosen a budget or widen the space.",
        )
    return result


def _run_trials(
    space: list[Trial],
    devices: list[str],
    strategy: str,
    trials: int | None,
    seed: int,
    runner: _TrialRunner,
    batch: int,
    clock: _Clock,
) -> list[dict[str, Any]]:
    """Each device profile's trials in turn, by the strategy, within its share of the time budget."""
    done: list[dict[str, Any]] = []
    for turn, device in enumerate(devices):
        mine = [t for t in space if t.device == device]
        deadline = clock.share(len(devices) - turn)
        if strategy in OBJECTIVES:
            rows = sampled_trials(strategy, mine, trials or len(mine), seed, runner.measure, batch, deadline)
        else:
            rows = _in_rounds(pick(mine, strategy, trials, seed), runner.measure, batch, deadline)
        clock.check(deadline, len(rows) < min(trials or len(mine), len(mine)))
        done += rows
    return done


REACH_TIMEOUT_S = 30.0


def _reachable(bench: str) -> None:
    """A remote bench device answers before any trial starts: unreachable, it would fail every trial's benchmark,
    and hung, each after its own timeout. Raises DeviceError naming it."""
    if bench in ("local", ""):
        return
    from edgekit.transport import open_transport

    with open_transport(bench, timeout=REACH_TIMEOUT_S):
        pass  # making and removing the work folder is a round trip


class _Clock:
    """The search's time budget: each device profile's deadline, and whether the budget cut the search short."""

    def __init__(self, budget: float | None) -> None:
        self.budget, self.start, self.cut = budget, time.monotonic(), False

    def share(self, devices_left: int) -> float | None:
        """The deadline of the next device profile: an equal share of the time left (None: no budget)."""
        if self.budget is None:
            return None
        now = time.monotonic()
        return now + max(self.start + self.budget - now, 0.0) / devices_left

    def check(self, deadline: float | None, short: bool) -> None:
        """Note a device profile that ran fewer trials than it would have because its deadline passed."""
        self.cut = self.cut or (short and deadline is not None and time.monotonic() >= deadline)

    def stopped(self, trials: int) -> str | None:
        return f"the time budget ({self.budget:g} s) ended the search after {trials} trial(s)" if self.cut else None


def _in_rounds(trials: list[Trial], measure, batch: int, deadline: float | None) -> list[dict[str, Any]]:
    """All the trials at once without a deadline; with one, `batch` at a time until it passes."""
    if deadline is None:
        return measure(trials)
    rows: list[dict[str, Any]] = []
    while trials and time.monotonic() < deadline:
        rows += measure(trials[:batch])
        trials = trials[batch:]
    return rows


@dataclass
class _TrialRunner:
    """Runs trials as one-target pipelines on the sweep executor, sharing one step cache; counts the steps."""

    common: dict[str, Any]  # the pipeline settings every trial shares (source, weights, inputs, calib, tokenizer)
    data: str
    bench: str
    budgets: Budgets
    cache: Path
    executor: str
    jobs: int | None
    progress: Progress
    ran: int = 0
    listed: int = 0
    started: Any = None  # the executor, started on the first run and reused by every later one

    def close(self) -> None:
        if self.started is not None:
            self.started.close()

    def measure(self, batch: list[Trial]) -> list[dict[str, Any]]:
        """The trials' rows, the cheap checks first: every export (with its parity gate), then evaluation and
        benchmark of the files within the size budget (their exports come from the cache)."""
        plans, exported = self._run(batch, measured=False)
        rows = {t.name: _exported(t, plan, exported, self.budgets.max_size_mb) for t, plan in zip(batch, plans)}
        todo = [t for t in batch if "status" not in rows[t.name]]
        plans, measured = self._run(todo, measured=True)
        for trial, plan in zip(todo, plans):
            row = rows[trial.name]
            rows[trial.name] = _measured(row, trial, plan, measured, self.bench, self.budgets, self.progress)
        self.ran += sum(not step["cached"] for step in (*exported.steps, *measured.steps))
        self.listed += len(exported.steps) + len(measured.steps) - len(todo)  # a measured export is listed twice
        return [rows[t.name] for t in batch]

    def _run(self, trials: list[Trial], measured: bool) -> tuple[list[Any], Any]:
        budgets, combinations = self.budgets, []
        for trial in trials:
            settings = {**self.common, "device": trial.device, "targets": [trial.target], "options": trial.options}
            settings["calib_samples"] = trial.calib_samples
            settings["keep_sensitive"] = trial.keep_sensitive
            settings["compress"] = trial.compress
            if measured:  # a compressed source's files are scored against the source the user gave (the default)
                settings["evaluate"] = EvaluateSpec(data=self.data)
                settings["benchmark"] = BenchmarkSpec(devices=[self.bench], processes=1, min_runs=20, min_time=0.2)
                settings["gates"] = Gates(
                    max_accuracy_drop=budgets.max_drop,
                    max_size_mb=budgets.max_size_mb,
                    max_p90_ms={self.bench: budgets.max_p90_ms} if budgets.max_p90_ms is not None else {},
                )
            pipeline = Pipeline.model_validate(settings)
            combinations.append(Combination(trial.name, {"device": trial.device, "target": trial.target}, pipeline))
        if self.started is None:
            from edgekit.release.executor import make_executor

            self.started = make_executor(self.executor, self.jobs, None, 30, [self.bench])
        return execute_combinations(combinations, Path.cwd(), self.cache, self.progress, runner=self.started)


_SCORES = ("accuracy", "accuracy_drop_pts", "p50_ms", "p90_ms", "size_bytes", "peak_rss_mb")


def _choose(result: dict[str, Any], device: str, out: Path, bundle: str | Path | None, labels: str | None) -> bool:
    """Record the device's choice in `result` (the fastest file within the budgets, then the smallest), copy it to
    OUT/DEVICE and bundle it when asked; False when no trial of the device met the budgets."""
    mine = [r for r in result["trials"] if r["device"] == device]
    feasible = [r for r in mine if r["status"] == "passed" and "same_file_as" not in r]
    if not feasible:
        return False
    best = min(feasible, key=lambda r: (r["p50_ms"], r["size_bytes"]))
    why = (
        f"the fastest p50 of the {len(feasible)} file(s) within the budgets (of {len(mine)} trial(s)), the smallest "
        "on a tie"
    )
    record = {
        "device": device,
        "strategy": result["strategy"],
        "budgets": result["budgets"],
        "trials": len(mine),
        "trial": best["name"],
        "scores": {k: best.get(k) for k in _SCORES},
        "front": result["front"][device],
        "why": why,
    }
    choice = result["choices"][device] = {"trial": best["name"], "file": str(_publish(best, out / device, record))}
    if bundle is not None:
        choice["bundle"] = str(_bundle(best, Path(bundle) / device, device, labels))
    return True


def _first_error(plan: Any, outcome: Any) -> str | None:
    """Why a trial's steps stopped: the first failed step's error (None when every step finished)."""
    error = next((outcome.errors[i] for i in sorted(plan.ids) if i in outcome.errors), None)
    return None if error is None else first_line(error, 300)


def _exported(trial: Trial, plan: Any, outcome: Any, max_size_mb: float | None) -> dict[str, Any]:
    """A trial after its export: its file, or why it has none; settled ("status") when it failed or its file
    is over the size budget, so it is neither evaluated nor benchmarked."""
    row: dict[str, Any] = {"name": trial.name, "device": trial.device, "target": trial.target}
    row["options"] = trial.options
    if trial.calib_samples:
        row["calibration_samples"] = trial.calib_samples
    if trial.keep_sensitive is not None:
        row["keep_sensitive"] = trial.keep_sensitive
    if trial.compress:
        row["compress"] = trial.compress
    error = _first_error(plan, outcome)
    if error is not None:
        return {**row, "status": "failed", "error": error}
    export = outcome.records[plan.export_ids[trial.target]]
    file = plan.cache / export["_key"] / export["artifact"]
    row.update(file=str(file), sha256=sha256_path(file), size_bytes=export["size_bytes"], over_budget=[])
    over = size_over(trial.target, export["size_bytes"], max_size_mb)
    if over:
        row.update(status="over budget", over_budget=[f"{over} (not evaluated or benchmarked)"])
        row.update(accuracy=None, accuracy_drop_pts=None)
        row.update(p50_ms=None, p90_ms=None, peak_rss_mb=None)
    return row


def _memory_over(target: str, peak_mb: float | None, max_memory_mb: float | None) -> list[str]:
    """The memory budget's failure for a file, if any (a run that measured no peak cannot meet a budget)."""
    if max_memory_mb is None or (peak_mb is not None and peak_mb <= max_memory_mb):
        return []
    shown = "not measured" if peak_mb is None else f"{peak_mb:.1f} MB"
    return [f"{target}: peak memory {shown} > max_memory_mb {max_memory_mb}"]


def _measured(
    row: dict[str, Any], trial: Trial, plan: Any, outcome: Any, bench: str, budgets: Budgets, progress: Progress
) -> dict:
    """The trial's row with its evaluation and benchmark, and the budgets it missed."""
    error = _first_error(plan, outcome)
    if error is not None:
        return {**row, "status": "failed", "error": error}
    figures = plan.finish(outcome, progress)["targets"][trial.target]
    peak = figures["peak_rss_mb"].get(bench)
    failures = figures["gate_failures"] + _memory_over(trial.target, peak, budgets.max_memory_mb)
    steps = (plan.evaluate_ids[trial.target], plan.benchmark_ids[bench])
    folders = [plan.cache / outcome.records[i]["_key"] for i in steps]
    return {
        **row,
        "results": [str(folders[0] / "evaluate.json"), str(folders[1] / "benchmark.json")],
        "status": "passed" if not failures else "over budget",
        "accuracy": figures["accuracy"],
        "accuracy_drop_pts": figures["accuracy_drop_pts"],
        "p50_ms": figures["p50_ms"].get(bench),
        "p90_ms": figures["p90_ms"].get(bench),
        "peak_rss_mb": peak,
        "over_budget": failures,
    }


def _same_files(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark a trial whose file has the same bytes as an earlier trial's for the same device (an option that
    changed nothing in it): it is that file, so it is neither on the front nor chosen a second time."""
    first: dict[tuple[str, str], str] = {}
    for row in rows:
        if "sha256" in row:
            key = (row["device"], row["sha256"])
            if key in first:
                row["same_file_as"] = first[key]
            first.setdefault(key, row["name"])
    return rows


def _front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trials no other beats on accuracy drop, p50 latency and size at once (failed trials and repeated
    files left out)."""
    scored = [r for r in rows if r["status"] != "failed" and r["p50_ms"] is not None and "same_file_as" not in r]
    return pareto_front(scored, lambda r: (r["accuracy_drop_pts"] or 0.0, r["p50_ms"], r["size_bytes"]))


def _closest(rows: list[dict[str, Any]], device: str) -> str:
    """The device's trials that came nearest: what each missed (its budgets, or why it failed)."""
    mine = [r for r in rows if r["device"] == device]
    over = [r for r in mine if r["status"] == "over budget"]
    shown = sorted(over, key=lambda r: len(r["over_budget"]))[:3] or mine[:3]
    return "; ".join(f"{r['name']}: {', '.join(r.get('over_budget') or [r.get('error', '')])}" for r in shown)


def _bundle(row: dict[str, Any], folder: Path, device: str, labels: str | None) -> Path:
    """The chosen file as the app bundle of the device's platform, with its evaluation and benchmark."""
    from edgekit.catalog import get_device
    from edgekit.release.bundle import PLATFORMS, bundle

    platform = get_device(device).os
    made = bundle(
        [row["file"]], folder, platform=platform if platform in PLATFORMS else "generic", labels=labels,
        results=row["results"],
    )  # fmt: skip
    return made.path


def _publish(row: dict[str, Any], folder: Path, record: dict[str, Any]) -> Path:
    """Copy the chosen file and its companions from the step cache into `folder`, with its sidecar recording
    the search that chose it."""
    from edgekit.artifact import write_json_atomic
    from edgekit.dispatch import artifact_files
    from edgekit.sidecar import sidecar_path

    folder.mkdir(parents=True, exist_ok=True)
    source = Path(row["file"])
    for path in artifact_files(source):
        shutil.copy2(path, folder / path.name)
    sidecar = json.loads(sidecar_path(source).read_text())
    write_json_atomic(sidecar_path(folder / source.name), {**sidecar, "search": record})
    return folder / source.name

"""The sampled strategies of `edgekit search`: Optuna proposes the next trials of a device profile from the ones
measured so far (the target, then its runtime's options), in rounds that run on the sweep executor. `tpe`
minimizes the p50 latency; `nsga2` (NSGA-II) minimizes accuracy drop, p50 latency and size together, so its
trials spread along the Pareto front instead of converging on the fastest file. The budgets are constraints of
both samplers, so they learn where the feasible files are. A proposal already measured is answered from what it
gave, without counting as a trial."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edgekit._lazy import require
from edgekit.release.search_space import compression_label

PROPOSALS_PER_TRIAL = 20  # at most, so a sampler that keeps proposing measured points stops


# what each strategy minimizes, from a measured trial's row
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "tpe": ("p50_ms",),
    "nsga2": ("accuracy_drop_pts", "p50_ms", "size_bytes"),
}


def sampled_trials(
    strategy: str,
    space: list[Any],
    budget: int,
    seed: int,
    measure: Callable[[list[Any]], list[dict[str, Any]]],
    batch: int = 1,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Measure at most `budget` distinct trials of `space` (one device profile's), `batch` at a time, chosen by
    `strategy`'s sampler, starting no round after `deadline` (time.monotonic()); returns their rows (the
    search's trial records) in the order they ran."""
    optuna = require("optuna", f"The {strategy} search strategy")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objectives = OBJECTIVES[strategy]
    sampler = _sampler(optuna, strategy, budget, seed)
    study = optuna.create_study(directions=["minimize"] * len(objectives), sampler=sampler)
    targets = sorted({trial.target for trial in space})
    rows: dict[str, dict[str, Any]] = {}
    proposals = 0
    while len(rows) < min(budget, len(space)) and proposals < PROPOSALS_PER_TRIAL * budget:
        if deadline is not None and time.monotonic() >= deadline:
            break
        asked: list[tuple[Any, Any]] = []
        wanted: list[Any] = []
        while len(wanted) < min(batch, budget - len(rows)) and proposals < PROPOSALS_PER_TRIAL * budget:
            proposals += 1
            proposal = study.ask()
            trial = _suggest(proposal, targets, space)
            if trial.name in rows:
                _tell(study, proposal, rows[trial.name], objectives)
            elif trial.name in {t.name for _, t in asked}:
                study.tell(proposal, state=optuna.trial.TrialState.FAIL)  # proposed twice in one round
            else:
                asked.append((proposal, trial))
                wanted.append(trial)
        for (proposal, trial), row in zip(asked, measure(wanted)):
            rows[trial.name] = row
            _tell(study, proposal, row, objectives)
    return list(rows.values())


def _sampler(optuna: Any, strategy: str, budget: int, seed: int) -> Any:
    """TPE, or NSGA-II with generations as large as a quarter of the budget (at least 2), both constrained by the
    budgets."""
    samplers = optuna.samplers

    def violation(trial: Any) -> list[float]:
        return trial.user_attrs["violation"]

    if strategy == "nsga2":
        return samplers.NSGAIISampler(population_size=max(2, budget // 4), seed=seed, constraints_func=violation)
    return samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(5, budget // 2)), constraints_func=violation)


def _suggest(proposal: Any, targets: list[str], space: list[Any]) -> Any:
    """The trial a proposal names: a target, then a value for each of its runtime's searchable options, and for
    the calibration size and the layers kept float where the space varies them."""
    target = proposal.suggest_categorical("target", targets)
    candidates = [t for t in space if t.target == target]
    settings: dict[str, dict[str, Any]] = {}
    for runtime, options in candidates[0].options.items():
        for name in options:
            values = sorted({t.options[runtime][name] for t in candidates}, key=str)
            settings.setdefault(runtime, {})[name] = proposal.suggest_categorical(f"{runtime}.{name}", values)
    candidates = [t for t in candidates if t.options == settings]
    for name in ("calib_samples", "keep_sensitive"):
        values = sorted({getattr(t, name) for t in candidates}, key=str)
        if len(values) > 1:
            chosen = proposal.suggest_categorical(name, values)
            candidates = [t for t in candidates if getattr(t, name) == chosen]
    labels = sorted({compression_label(t.compress) for t in candidates})
    if len(labels) > 1:
        chosen = proposal.suggest_categorical("compress", labels)
        candidates = [t for t in candidates if compression_label(t.compress) == chosen]
    return candidates[0]


def _tell(study: Any, proposal: Any, row: dict[str, Any], objectives: tuple[str, ...]) -> None:
    """A measured trial's objectives, with its budgets as the constraint; a trial missing one (failed, or over
    the size budget, so neither evaluated nor timed) is a failed proposal."""
    from optuna.trial import TrialState

    values = [row.get(name) for name in objectives]
    if any(v is None for v in values):
        study.tell(proposal, state=TrialState.FAIL)
        return
    proposal.set_user_attr("violation", [0.0 if row["status"] == "passed" else 1.0])
    study.tell(proposal, values)

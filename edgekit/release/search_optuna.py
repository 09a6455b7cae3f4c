"""The tpe strategy of `edgekit search`: Optuna's TPE sampler proposes the next trials of a device profile from
the ones measured so far (the target, then its runtime's options), in rounds that run on the sweep executor.
The objective is the p50 latency; the budgets are TPE constraints, so it learns where the feasible files are.
A proposal already measured is answered from what it gave, without counting as a trial."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edgekit._lazy import require

PROPOSALS_PER_TRIAL = 20  # at most, so a sampler that keeps proposing measured points stops


def tpe_trials(
    space: list[Any],
    budget: int,
    seed: int,
    measure: Callable[[list[Any]], list[dict[str, Any]]],
    batch: int = 1,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Measure at most `budget` distinct trials of `space` (one device profile's), `batch` at a time, chosen by
    TPE, starting no round after `deadline` (time.monotonic()); returns their rows (the search's trial records)
    in the order they ran."""
    optuna = require("optuna", "The tpe search strategy")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=max(1, min(5, budget // 2)), constraints_func=lambda t: t.user_attrs["violation"]
    )
    study = optuna.create_study(direction="minimize", sampler=sampler)
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
                _tell(study, proposal, rows[trial.name])
            elif trial.name in {t.name for _, t in asked}:
                study.tell(proposal, state=optuna.trial.TrialState.FAIL)  # proposed twice in one round
            else:
                asked.append((proposal, trial))
                wanted.append(trial)
        for (proposal, trial), row in zip(asked, measure(wanted)):
            rows[trial.name] = row
            _tell(study, proposal, row)
    return list(rows.values())


def _suggest(proposal: Any, targets: list[str], space: list[Any]) -> Any:
    """The trial a proposal names: a target, then a value for each of its runtime's searchable options."""
    target = proposal.suggest_categorical("target", targets)
    candidates = [t for t in space if t.target == target]
    settings: dict[str, dict[str, Any]] = {}
    for runtime, options in candidates[0].options.items():
        for name in options:
            values = sorted({t.options[runtime][name] for t in candidates}, key=str)
            settings.setdefault(runtime, {})[name] = proposal.suggest_categorical(f"{runtime}.{name}", values)
    return next(t for t in candidates if t.options == settings)


def _tell(study: Any, proposal: Any, row: dict[str, Any]) -> None:
    """A measured trial's p50, with its budgets as the constraint; a trial with no latency (failed, or over the
    size budget) is a failed proposal."""
    from optuna.trial import TrialState

    if row.get("p50_ms") is None:
        study.tell(proposal, state=TrialState.FAIL)
        return
    proposal.set_user_attr("violation", [0.0 if row["status"] == "passed" else 1.0])
    study.tell(proposal, row["p50_ms"])

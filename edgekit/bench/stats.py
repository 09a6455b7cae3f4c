"""Statistics for benchmark samples: percentiles, a CI for the median across processes, noise and drift flags,
and the regression test used by --baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

NOISE_CV = 0.03  # process medians spread more than 3% (coefficient of variation): flagged noisy
DRIFT = 0.10  # last third of a process's samples differs from its first third by more than 10%: flagged drift


def middle(values: list[float | None]) -> float | None:
    """The middle of the values present (upper middle for an even count); None when there are none."""
    present = sorted(v for v in values if v is not None)
    return present[len(present) // 2] if present else None


def latency_summary(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "min": float(a.min()),
        "n": len(a),
    }


def median_ci(process_medians: list[float], confidence: float = 0.95, seed: int = 0) -> list[float] | None:
    """Bootstrap interval for the median of per-process medians (None with fewer than 3 processes)."""
    m = np.asarray(process_medians, dtype=np.float64)
    if len(m) < 3:
        return None
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(m, size=(2000, len(m)), replace=True), axis=1)
    lo, hi = np.percentile(boots, [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100])
    return [float(lo), float(hi)]


def ratio_ci(reference: list[float], other: list[float], confidence: float = 0.95, seed: int = 0) -> dict | None:
    """The speed ratio reference/other from per-process medians paired by round (the two ran interleaved,
    under the same machine state), its median and a bootstrap interval over rounds; None below 3 rounds."""
    pairs = [(r, o) for r, o in zip(reference, other) if r and o]
    if len(pairs) < 3:
        return None
    ratios = np.asarray([r / o for r, o in pairs], dtype=np.float64)
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(ratios, size=(2000, len(ratios)), replace=True), axis=1)
    lo, hi = np.percentile(boots, [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100])
    mid = float(np.median(ratios))
    return {
        "ratio": mid,
        "ci95": [float(lo), float(hi)],
        "half_width": float(max(mid - lo, hi - mid) / mid),  # relative: 0.01 is +-1 %
        "rounds": len(pairs),
    }


def noisy(process_medians: list[float]) -> bool:
    m = np.asarray(process_medians, dtype=np.float64)
    return bool(len(m) > 1 and m.std(ddof=1) / m.mean() > NOISE_CV)


def drift(per_process_samples: list[list[float]]) -> float:
    """Mean relative change from the first to the last third of each process's samples."""
    changes = []
    for samples in per_process_samples:
        third = len(samples) // 3
        if third >= 5:
            first, last = np.median(samples[:third]), np.median(samples[-third:])
            changes.append(last / first - 1)
    return float(np.mean(changes)) if changes else 0.0


PER_PROCESS_ALPHA = 0.05  # init time and peak memory: one value per process, so few values


def regression(old: list[float], new: list[float], threshold: float, alpha: float = 0.01) -> dict[str, Any]:
    """Is `new` slower than `old`? Both significant (one-sided Mann-Whitney U, p <= alpha) and above threshold."""
    from scipy.stats import mannwhitneyu

    old_m, new_m = float(np.median(old)), float(np.median(new))
    change = new_m / old_m - 1 if old_m else 0.0
    p = float(mannwhitneyu(new, old, alternative="greater").pvalue) if len(old) >= 3 and len(new) >= 3 else 1.0
    return {
        "old": old_m,
        "new": new_m,
        "change": change,
        "p_value": p,
        "regressed": bool(change > threshold and p <= alpha),
    }

"""The Pareto front: the items no other item beats on every figure at once (all figures lower-is-better)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def pareto_front(items: Sequence[T], figures: Callable[[T], tuple[float, ...]]) -> list[T]:
    """`items` that no other item dominates (no worse on every figure, better on one), in their order."""
    scored = [(item, figures(item)) for item in items]

    def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and a != b

    return [item for item, mine in scored if not any(dominates(other, mine) for _, other in scored)]

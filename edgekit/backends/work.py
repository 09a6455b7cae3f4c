"""The arithmetic work of an exported file at the shapes it was benchmarked with: multiply-accumulates per op
type, int8 and float counted apart (a roofline needs both: int8 kernels have their own, higher peak). Each
backend counts its own files (Backend.count_work, in its folder) and returns this module's tally.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any


def tally(parts: Iterable[tuple[str, int, bool]], uncounted: Counter) -> dict[str, Any]:
    """The work document from (op type, MACs, runs in int8) parts, and the weighted ops left uncounted."""
    by_op: Counter = Counter()
    int8_macs = float_macs = 0
    for op, macs, int8 in parts:
        by_op[op] += macs
        if int8:
            int8_macs += macs
        else:
            float_macs += macs
    return {
        "macs": int8_macs + float_macs,
        "flops": 2 * (int8_macs + float_macs),
        "int8_flops": 2 * int8_macs,
        "float_flops": 2 * float_macs,
        "macs_by_op": dict(by_op.most_common()),
        "uncounted_ops": dict(uncounted),
    }

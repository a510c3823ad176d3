"""FLOP counting and the machine's matmul ceiling, to judge speed in GFLOP/s."""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call of ``fn`` (matmuls and convolutions, as torch counts them)."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def matmul_ceiling_gflops(n: int = 1024, seconds: float = 2.0) -> float:
    """Best float32 GFLOP/s of an ``n x n`` matmul over ``seconds`` with torch's current threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def time_call(fn: Callable[[], object], min_seconds: float = 1.0, warmup: int = 2) -> float:
    """Seconds per call of ``fn``, averaged over at least ``min_seconds``."""
    for _ in range(warmup):
        fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n

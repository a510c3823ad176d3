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


def matmul_ceiling_gflops(sizes: tuple[int, ...] = (1024, 2048), seconds: float = 2.0,
                          dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> float:
    """Best GFLOP/s of an ``n x n`` matmul in ``dtype`` for each ``n`` in ``sizes`` (``seconds`` shared among
    them), with torch's current threads.

    The best of many short bursts, so that a moment of contention on a shared machine does not count;
    and of several sizes, because bf16 on AMX reaches its peak only on larger matrices than fp32 does
    (here 1024: ~450, 2048: ~1900 GFLOP/s). On a GPU each burst is timed after a synchronize."""
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
        a @ b
        sync()
        t_end = time.perf_counter() + seconds / len(sizes)
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            for _ in range(4):
                a @ b
            sync()
            best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def time_call(fn: Callable[[], object], min_seconds: float = 1.0, warmup: int = 2) -> float:
    """Seconds per call of ``fn``, averaged over at least ``min_seconds``."""
    return 1 / call_rates(fn, min_seconds, windows=1, warmup=warmup)[0]


def call_rates(fn: Callable[[], object], min_seconds: float = 1.0, windows: int = 5, warmup: int = 2) -> tuple[float, float]:
    """Calls per second of ``fn``: the mean over ``min_seconds``, and the best of ``windows`` equal windows.

    The best window is the estimator ``matmul_ceiling_gflops`` uses; comparing like with like keeps a
    shared machine's contention, which comes and goes within seconds, out of a fraction of the ceiling."""
    for _ in range(warmup):
        fn()
    rates, calls, t_all = [], 0, time.perf_counter()
    for _ in range(windows):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_seconds / windows:
            fn()
            n += 1
        rates.append(n / (time.perf_counter() - t0))
        calls += n
    return calls / (time.perf_counter() - t_all), max(rates)

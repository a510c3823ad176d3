"""Counter-based Gaussian noise: every world's noise is a pure function of (its seed, its step, the element), so the
noise of N worlds comes from one call on any device, and a world's noise does not depend on N, on its place in the
batch, or on which other worlds reset (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3": a keyed
hash of a counter instead of a sequential generator). The hash is Wellons' lowbias32 integer finaliser in int32
arithmetic (wrapping multiplies, logical shifts by masking), which every torch device runs."""

from __future__ import annotations

import math
from functools import lru_cache

import torch


def _mix(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int32 tensors: a bijection of 32-bit words that mixes every bit into every other."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * 0x7FEB352D
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * -0x7B935975           # 0x846CA68B as a signed 32-bit word
    return x ^ ((x >> 16) & 0xFFFF)


def _int32(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The low 32 bits of integers ``x`` as signed int32 words."""
    x = x.to(device=device, dtype=torch.int64) & 0xFFFFFFFF
    return torch.where(x >= 2**31, x - 2**32, x).to(torch.int32)


@lru_cache(maxsize=8)
def _mixed_index(n: int, device: torch.device) -> torch.Tensor:
    return _mix(torch.arange(n, dtype=torch.int32, device=device))


def counter_normal(seeds: torch.Tensor, counters: torch.Tensor, shape: tuple[int, ...],
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Standard normal noise ``(N, *shape)`` float32, row i a function of ``seeds[i]`` and ``counters[i]`` alone
    (``(N,)`` integers, e.g. a world's seed and its step; their low 32 bits count). Box-Muller, both outputs used,
    on uniforms of 24 bits, each the hash of the row's key and the element's index."""
    device = seeds.device if device is None else torch.device(device)
    key = _mix(_int32(seeds, device) ^ _mix(_int32(counters, device) ^ -0x61C88647))      # (N,): one key a row
    n = math.prod(shape)
    half = (n + 1) // 2
    bits = _mix(key[:, None] + _mixed_index(2 * half, device)[None])                      # (N, 2 half)
    u = (((bits >> 8) & 0xFFFFFF).to(torch.float32) + 0.5) * (1.0 / (1 << 24))          # in (0, 1): log finite
    r, theta = torch.sqrt(-2.0 * torch.log(u[:, :half])), (2.0 * math.pi) * u[:, half:]
    return torch.cat([r * torch.cos(theta), r * torch.sin(theta)], 1)[:, :n].reshape(len(seeds), *shape)

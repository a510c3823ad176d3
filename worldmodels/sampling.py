"""Samplers and noise schedules as pure functions, after k-diffusion's ``sampling.py``.

Every sampler is ``sample_x(denoise, x, sigmas, **cond) -> x`` where
``denoise(x, sigma, **cond)`` returns the denoised estimate and ``sigmas`` ends at 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Denoise = Callable[..., torch.Tensor]


def get_sigmas_karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0,
                      device: str | torch.device = "cpu") -> torch.Tensor:
    """Karras et al. (2022) Eq. 5 schedule of ``n`` levels from sigma_max to sigma_min, then 0."""
    if n < 1:
        raise ValueError(f"need at least 1 sampler step, got {n}")
    if n == 1:
        return torch.tensor([sigma_max, 0.0], device=device)
    ramp = torch.linspace(0, 1, n, device=device)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


@torch.no_grad()
def sample_euler(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, **cond: Any) -> torch.Tensor:
    """Euler steps of the probability-flow ODE (Karras et al. 2022, Alg. 1 without correction)."""
    for i in range(len(sigmas) - 1):
        d = (x - denoise(x, sigmas[i], **cond)) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_heun(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, **cond: Any) -> torch.Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, Alg. 1); the last step to 0 is Euler."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = (x - denoise(x, s, **cond)) / s
        x_euler = x + d * (s_next - s)
        if s_next == 0:
            x = x_euler
        else:
            d2 = (x_euler - denoise(x_euler, s_next, **cond)) / s_next
            x = x + (d + d2) / 2 * (s_next - s)
    return x


@torch.no_grad()
def sample_dpmpp_2m(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, **cond: Any) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2), multistep in log-sigma time."""
    t_of = lambda s: -s.log()
    old = None
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        den = denoise(x, s, **cond)
        if s_next == 0:
            x = den
        else:
            t, t_next = t_of(s), t_of(s_next)
            h = t_next - t
            if old is None:
                d = den
            else:
                r = (t - t_of(sigmas[i - 1])) / h
                d = (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old
            x = (s_next / s) * x - torch.expm1(-h) * d
        old = den
    return x


SAMPLERS = {"euler": sample_euler, "heun": sample_heun, "dpmpp_2m": sample_dpmpp_2m}


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler called ``name``; a clear error for an unknown one."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name]

"""EDM preconditioning and loss (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models", Table 1 and Eq. 2/8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class EDMPrecond(nn.Module):
    """``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)`` around a backbone ``F``."""

    def __init__(self, backbone: nn.Module, sigma_data: float = 1.0):
        super().__init__()
        self.backbone = backbone
        self.sigma_data = sigma_data

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(c_skip, c_out, c_in, c_noise) for ``sigma (B,)``."""
        sd = self.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1 / (sigma**2 + sd**2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, **cond: Any) -> torch.Tensor:
        """Denoised estimate of ``x (B, C, H, W)`` at noise level ``sigma`` (scalar or ``(B,)``)."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0]).clone()
        c_skip, c_out, c_in, c_noise = (c[:, None, None, None] if i < 3 else c
                                        for i, c in enumerate(self.coefficients(sigma)))
        return c_skip * x + c_out * self.backbone(c_in * x, c_noise, **cond)


def weight_edm(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """EDM: lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2, unit loss on F's target."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def weight_uniform(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """Plain x0 MSE: favours high noise levels (coarse structure)."""
    return torch.ones_like(sigma)


def weight_min_snr(sigma: torch.Tensor, sigma_data: float, gamma: float = 5.0) -> torch.Tensor:
    """Min-SNR-gamma (Hang et al. 2023) on x0: lambda = min(SNR, gamma), SNR = sigma_data^2 / sigma^2."""
    return torch.clamp(sigma_data**2 / sigma**2, max=gamma)


WEIGHTINGS = {"edm": weight_edm, "uniform": weight_uniform, "min_snr": weight_min_snr}


@dataclass
class EDMLossConfig:
    """Log-normal noise levels ``ln sigma ~ N(p_mean, p_std^2)`` and the loss weighting."""

    p_mean: float = -0.4
    p_std: float = 1.2
    weighting: str = "edm"
    context_aug_max: float = 0.3   # context latents get noise sigma_aug ~ U(0, max) (GameNGen)
    context_drop: float = 0.0      # share of samples (with memory) whose context is replaced by noise
    focus_share: float = 0.0       # share of samples trained at the sampler's first noise level (see EDMLoss)

    def __post_init__(self) -> None:
        for k in ("context_drop", "focus_share"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ValueError(f"{k} must be in [0, 1], got {getattr(self, k)}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown loss weighting {self.weighting!r}; choose one of {sorted(WEIGHTINGS)}")


class EDMLoss:
    """``lambda(sigma) || D(x + sigma n; sigma) - x ||^2`` averaged; returns (loss, per-sample loss).

    ``focus_sigma``: a ``cfg.focus_share`` of the samples is trained at exactly this level. A
    1-step sampler only ever evaluates ``D(.; sigma_max)``, a level the log-normal draws for ~5%
    of samples, so one-step quality is bought here."""

    def __init__(self, cfg: EDMLossConfig, sigma_data: float, focus_sigma: float | None = None):
        self.cfg, self.sigma_data, self.focus_sigma = cfg, sigma_data, focus_sigma
        self.weight = WEIGHTINGS[cfg.weighting]

    def __call__(self, denoiser: EDMPrecond, x: torch.Tensor, generator: torch.Generator | None = None,
                 **cond: Any) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        rnd = torch.randn(b, device=x.device, generator=generator)
        sigma = (rnd * self.cfg.p_std + self.cfg.p_mean).exp()
        if self.focus_sigma is not None and self.cfg.focus_share > 0:
            focus = torch.rand(b, device=x.device, generator=generator) < self.cfg.focus_share
            sigma = torch.where(focus, torch.full_like(sigma, self.focus_sigma), sigma)
        noise = torch.randn(x.shape, device=x.device, generator=generator) * sigma[:, None, None, None]
        denoised = denoiser(x + noise, sigma, **cond)
        per = self.weight(sigma, self.sigma_data) * ((denoised - x) ** 2).flatten(1).mean(1)
        return per.mean(), per.detach()


def augment_context(context: torch.Tensor, max_sigma: float,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise ``context (B, K, C, H, W)`` by sigma ~ U(0, max) per sample; returns (context, sigma (B,))."""
    b = context.shape[0]
    sigma = torch.rand(b, device=context.device, generator=generator) * max_sigma
    noise = torch.randn(context.shape, device=context.device, generator=generator)
    return context + noise * sigma[:, None, None, None, None], sigma


#: augmentation level announced for a dropped context: outside U(0, context_aug_max), so the network can tell
DROPPED_CONTEXT_AUG = 2.0


def drop_context(context: torch.Tensor, aug: torch.Tensor, drop: torch.Tensor,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace the context of samples where ``drop (B,)`` is true by unit noise and flag them in ``aug``.

    Trained with memory present, this teaches the denoiser to build the frame from memory
    when the context carries nothing (what a long open-loop revisit looks like)."""
    noise = torch.randn(context.shape, device=context.device, generator=generator)
    d = drop[:, None, None, None, None]
    return torch.where(d, noise, context), torch.where(drop, torch.full_like(aug, DROPPED_CONTEXT_AUG), aug)


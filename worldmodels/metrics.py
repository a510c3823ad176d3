"""Image measures on uint8 frames (DESIGN §9): PSNR, SSIM, sharpness."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _as_float(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if t.dtype != torch.uint8:
        raise TypeError(f"measures take uint8 frames, got {t.dtype}")
    return t.float()


def psnr_per_frame(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> np.ndarray:
    """PSNR (peak 255) of each frame; frames ``(..., H, W, 3)`` uint8. Identical frames give +inf."""
    p, t = _as_float(pred), _as_float(true)
    if p.shape != t.shape:
        raise ValueError(f"shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    mse = ((p - t) ** 2).flatten(-3).mean(-1)
    return (10 * torch.log10(255.0**2 / mse)).numpy()


def psnr(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor, cap: float = 100.0) -> float:
    """Mean of per-frame PSNR (each capped at ``cap`` dB so identical frames stay finite)."""
    return float(np.minimum(psnr_per_frame(pred, true), cap).mean())


def psnr_pooled(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> float:
    """PSNR of the MSE pooled over all frames: the worst frames weigh more."""
    p, t = _as_float(pred), _as_float(true)
    mse = float(((p - t) ** 2).mean())
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> float:
    """Mean SSIM (Wang et al. 2004), 7x7 uniform window, on frames ``(N, H, W, 3)`` uint8."""
    p = _as_float(pred).reshape(-1, *_as_float(pred).shape[-3:]).permute(0, 3, 1, 2)
    t = _as_float(true).reshape(-1, *_as_float(true).shape[-3:]).permute(0, 3, 1, 2)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    pool = lambda x: F.avg_pool2d(x, 7, 1)
    mp, mt = pool(p), pool(t)
    vp, vt, cov = pool(p * p) - mp**2, pool(t * t) - mt**2, pool(p * t) - mp * mt
    s = ((2 * mp * mt + c1) * (2 * cov + c2)) / ((mp**2 + mt**2 + c1) * (vp + vt + c2))
    return float(s.mean())


def gradient_magnitude(frames: np.ndarray | torch.Tensor) -> float:
    """Mean absolute image gradient of ``(..., H, W, 3)`` uint8 frames."""
    f = _as_float(frames)
    gx = (f[..., :, 1:, :] - f[..., :, :-1, :]).abs().mean()
    gy = (f[..., 1:, :, :] - f[..., :-1, :, :]).abs().mean()
    return float((gx + gy) / 2)


def sharpness(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> float:
    """Gradient magnitude of generated frames over that of real ones: 1.0 is right, < 1 is blur."""
    return gradient_magnitude(pred) / max(gradient_magnitude(true), 1e-8)

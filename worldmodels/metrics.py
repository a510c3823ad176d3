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


def frame_detail(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-frame detail: mean absolute horizontal gradient of ``(..., H, W, 3)`` uint8 frames -> ``(...)``."""
    f = _as_float(frames)
    return (f[..., :, 1:, :] - f[..., :, :-1, :]).abs().flatten(-3).mean(-1).numpy()


def frame_contrast(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-frame contrast: the standard deviation of all pixel values of ``(..., H, W, 3)`` uint8 frames."""
    return _as_float(frames).flatten(-3).std(-1, unbiased=False).numpy()


def frechet_distance(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to features ``a (N, D)`` and ``b (M, D)``:
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)`` (Heusel et al. 2017, the FID formula; which
    features it is computed on is the caller's choice and must be named with the figure)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"features must be (N, D) and (M, D) with N, M >= 2, got {tuple(a.shape)} and {tuple(b.shape)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)

    def sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
        w, v = torch.linalg.eigh((m + m.T) / 2)
        return (v * w.clamp(min=0).sqrt()) @ v.T

    r = sqrtm_psd(s_a)
    cross = sqrtm_psd(r @ s_b @ r)
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(s_a + s_b - 2 * cross))

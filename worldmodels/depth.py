"""Depth head: a decoded frame ``(B, 3, 64, 64)`` in [-1, 1] -> its depth ``(B, 64, 64)`` (distance along the
optical axis, scene units).

Why: a stored view can be moved to a new pose only with its depth (a pure turn needs none,
``memory.reprojection``). The dream's frames are decodings, so the head is fitted on the autoencoder's round
trips of real frames against the real env's depth buffer (``memworld train-depth``). Small on purpose: its
work is at 32x32 and 16x16 (about 60 MFLOP a frame) and the 32x32 depth is upsampled, since depth is smooth
but for edges; the dream runs it once per stored view it moves, not on every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DepthConfig:
    """``enabled``: the bundle holds a depth head (checkpoints without the key have none)."""

    enabled: bool = False
    channels: tuple[int, int] = (24, 48)   # at 32x32 and 16x16
    min_depth: float = 0.05
    max_depth: float = 30.0

    def __post_init__(self) -> None:
        if len(self.channels) != 2 or min(self.channels) < 1:
            raise ValueError(f"depth channels are two counts (at 32x32 and 16x16), got {self.channels}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(1, c_out), nn.SiLU())


class DepthNet(nn.Module):
    """``forward(x (B, 3, 64, 64))`` -> log depth ``(B, 64, 64)``; ``depth`` gives it in scene units."""

    def __init__(self, cfg: DepthConfig):
        super().__init__()
        self.cfg = cfg
        c1, c2 = cfg.channels
        self.down1 = nn.Sequential(_block(3, c1, 2), _block(c1, c1))                 # 32x32
        self.down2 = nn.Sequential(_block(c1, c2, 2), _block(c2, c2), _block(c2, c2))  # 16x16
        self.up = nn.Sequential(_block(c1 + c2, c1), nn.Conv2d(c1, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.down1(x)
        h2 = F.interpolate(self.down2(h1), scale_factor=2, mode="nearest")
        out = self.up(torch.cat([h1, h2], 1))
        out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=False)[:, 0]
        lo, hi = torch.tensor([self.cfg.min_depth, self.cfg.max_depth]).log().tolist()
        return out.clamp(lo, hi)

    def depth(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).exp()


def depth_loss(log_pred: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """L1 in log depth (relative error, so near surfaces, which move the most under a step, weigh as much as far
    ones) plus L1 on its image gradients (edges between near and far stay sharp); ``(B, H, W)`` each."""
    d = log_pred - depth.clamp(min=1e-3).log()
    grad = (d[:, 1:] - d[:, :-1]).abs().mean() + (d[:, :, 1:] - d[:, :, :-1]).abs().mean()
    return d.abs().mean() + 0.5 * grad


def depth_errors(pred: torch.Tensor, depth: torch.Tensor) -> dict[str, float]:
    """Standard monocular-depth measures (Eigen et al. 2014) of ``pred`` against ``depth``, ``(B, H, W)``:
    mean absolute relative error, RMSE of log depth, share of pixels within 1.25x."""
    pred, depth = pred.double(), depth.double().clamp(min=1e-3)
    ratio = torch.maximum(pred / depth, depth / pred)
    return {"abs_rel": float(((pred - depth).abs() / depth).mean()),
            "rmse_log": float((pred.log() - depth.log()).pow(2).mean().sqrt()),
            "delta_1.25": float((ratio < 1.25).double().mean())}

"""Fit a world model's depth head on (decoded frame, true depth) pairs; the rest of the model is copied as is."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm import tqdm

from worldmodels.autoencoder import to_unit
from worldmodels.depth import DepthNet, depth_errors, depth_loss
from worldmodels.world_model import WorldModel


@dataclass
class DepthFitConfig:
    steps: int = 3000
    batch: int = 64
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.lr <= 0:
            raise ValueError(f"steps, batch and lr must be positive, got {self.steps}, {self.batch}, {self.lr}")


def fit_depth_head(model: WorldModel, frames: torch.Tensor, depth: torch.Tensor, cfg: DepthFitConfig,
                   progress: bool = True) -> tuple[WorldModel, float]:
    """A copy of ``model`` with a depth head fitted afresh: ``frames (N, 64, 64, 3)`` uint8 (the autoencoder's
    round trips, as the dream shows them) against ``depth (N, 64, 64)``. Each batch is mirrored left-right at
    random (a mirrored view's depth is the mirrored depth). Returns the copy and the seconds it took."""
    if frames.shape[:-3] != depth.shape[:-2] or frames.shape[-3:] != (64, 64, 3) or depth.shape[-2:] != (64, 64):
        raise ValueError(f"frames (N, 64, 64, 3) and depth (N, 64, 64) must match, got {tuple(frames.shape)} "
                         f"and {tuple(depth.shape)}")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    new = copy.deepcopy(model)
    new.cfg.depth = replace(new.cfg.depth, enabled=True)
    net = DepthNet(new.cfg.depth).to(model.device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    bar = tqdm(range(cfg.steps), desc="depth head", disable=not progress)
    for step in bar:
        i = torch.from_numpy(rng.integers(0, len(frames), cfg.batch))
        x, d = to_unit(frames[i]).to(model.device), depth[i].to(model.device)
        flip = torch.from_numpy(rng.random(cfg.batch) < 0.5).to(model.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        d = torch.where(flip[:, None, None], d.flip(-1), d)
        loss = depth_loss(net(x), d)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"depth loss is {loss.item()} at step {step}; lower lr (now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    new.depth_net = net.eval().requires_grad_(False)
    return new, time.perf_counter() - t0


@torch.no_grad()
def evaluate_depth(model: WorldModel, frames: torch.Tensor, depth: torch.Tensor, chunk: int = 256) -> dict[str, float]:
    """``depth_errors`` of the model's depth head on ``frames (N, 64, 64, 3)`` uint8 against ``depth (N, 64, 64)``."""
    pred = torch.cat([model.predict_depth(frames[i:i + chunk]).cpu() for i in range(0, len(frames), chunk)])
    return depth_errors(pred, depth)

"""World-model figures on held-out frames (DESIGN §9): reconstruction, one-step and rollout
PSNR beside the copy-last-frame baseline, sharpness, pose-head error, a sampler table.

Inputs are plain arrays (``frames (N, 64, 64, 3)`` uint8, ``actions (N,)``, ``poses (N, 3)``,
``window starts``) so this module needs nothing from ``envs``.
"""

from __future__ import annotations


import numpy as np
import torch

from worldmodels.metrics import psnr, psnr_pooled, sharpness, ssim
from worldmodels.world_model import SamplerConfig, WorldModel


@torch.no_grad()
def evaluate_autoencoder(model: WorldModel, frames: np.ndarray, batch: int = 256) -> dict[str, float]:
    """Reconstruction PSNR (per-frame mean and pooled) and SSIM."""
    rec = np.concatenate([model.decode(model.encode(torch.from_numpy(frames[i:i + batch]))).numpy()
                          for i in range(0, len(frames), batch)])
    return {"ae_psnr": psnr(rec, frames), "ae_psnr_pooled": psnr_pooled(rec, frames), "ae_ssim": ssim(rec, frames)}


@torch.no_grad()
def onestep(model: WorldModel, frames: np.ndarray, actions: np.ndarray, targets: np.ndarray,
            sampler: SamplerConfig | None = None, memory: tuple[torch.Tensor, ...] | None = None,
            seed: int = 0, batch: int = 64) -> np.ndarray:
    """Teacher-forced next frames ``(B, 64, 64, 3)`` for target indices ``targets (B,)``."""
    k = model.context
    out = []
    g = torch.Generator().manual_seed(seed)
    for i in range(0, len(targets), batch):
        t = targets[i:i + batch]
        win = t[:, None] - k + np.arange(k)
        ctx = model.encode(torch.from_numpy(frames[win]))
        mem = {}
        if memory is not None:
            m, rel, mask = (x[i:i + batch] for x in memory)
            mem = {"memory": m, "memory_pose": rel, "memory_mask": mask}
        z = model.sample_next(ctx, torch.from_numpy(actions[win]), sampler=sampler, generator=g, **mem)
        out.append(model.decode(z).numpy())
    return np.concatenate(out)


def onestep_figures(model: WorldModel, frames: np.ndarray, actions: np.ndarray, targets: np.ndarray,
                    memory: tuple[torch.Tensor, ...] | None = None, sampler: SamplerConfig | None = None) -> dict:
    """``onestep_psnr`` beside ``copy_psnr`` (next frame = current frame), SSIM and sharpness."""
    pred = onestep(model, frames, actions, targets, sampler=sampler, memory=memory)
    true, copy = frames[targets], frames[targets - 1]
    return {"onestep_psnr": psnr(pred, true), "onestep_psnr_pooled": psnr_pooled(pred, true),
            "onestep_ssim": ssim(pred, true), "onestep_sharpness": sharpness(pred, true),
            "copy_psnr": psnr(copy, true), "copy_psnr_pooled": psnr_pooled(copy, true)}


@torch.no_grad()
def rollout(model: WorldModel, frames: np.ndarray, actions: np.ndarray, poses: np.ndarray, starts: np.ndarray,
            horizon: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Open-loop generation from real context at ``starts`` (index of the first context frame) with the
    real actions, no memory. Returns frames ``(B, H, 64, 64, 3)`` and integrated poses ``(B, H, 3)``."""
    from geometry import compose

    k = model.context
    g = torch.Generator().manual_seed(seed)
    win = starts[:, None] + np.arange(k)
    ctx = model.encode(torch.from_numpy(frames[win]))
    pose = torch.from_numpy(poses[starts + k - 1]).float()
    out_f, out_p = [], []
    for h in range(horizon):
        acts = torch.from_numpy(actions[starts[:, None] + h + np.arange(k)])
        delta, blocked = model.heads.move_from_context(ctx, acts)
        pose = torch.where(blocked[:, None], pose, compose(pose, delta))     # as the dream keeps it: exactly
        z = model.sample_next(ctx, acts, generator=g)
        z = torch.where(blocked[:, None, None, None], ctx[:, -1], z)
        ctx = torch.cat([ctx[:, 1:], z[:, None]], 1)
        out_f.append(model.decode(z).numpy())
        out_p.append(pose.numpy())
    return np.stack(out_f, 1), np.stack(out_p, 1)


def rollout_figures(model: WorldModel, frames, actions, poses, starts, horizons=(1, 4, 16)) -> dict:
    """``rollout_psnr_h{h}`` and ``pose_err_h{H}`` (position in world units, yaw in radians)."""
    hmax = max(horizons)
    gen, pose = rollout(model, frames, actions, poses, starts, hmax)
    k = model.context
    idx = starts[:, None] + k + np.arange(hmax)
    out = {f"rollout_psnr_h{h}": psnr(gen[:, h - 1], frames[idx[:, h - 1]]) for h in horizons}
    true = poses[idx[:, -1]]
    out[f"pose_err_h{hmax}"] = float(np.linalg.norm(pose[:, -1, :2] - true[:, :2], axis=1).mean())
    dyaw = np.remainder(pose[:, -1, 2] - true[:, 2] + np.pi, 2 * np.pi) - np.pi
    out[f"yaw_err_h{hmax}"] = float(np.abs(dyaw).mean())
    return out


@torch.no_grad()
def reward_figures(model: WorldModel, frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                   index: np.ndarray, batch: int = 256) -> dict:
    """The reward head on real transitions ``index (B,)`` (frame i -> i+1 under ``actions[i]``, real reward
    ``rewards[i]``): how many were rewarded, the mean predicted reward on those and on the rest, and, thresholded
    at half the largest real reward, the share of rewarded steps found (recall) and of the rest flagged."""
    pred = []
    for i in range(0, len(index), batch):
        t = index[i:i + batch]
        z = model.encode(torch.from_numpy(frames[np.concatenate([t, t + 1])]))
        pred.append(model.heads.reward_done(z[: len(t)], torch.from_numpy(actions[t]), z[len(t):])[0].numpy())
    pred, real = np.concatenate(pred), rewards[index]
    hit = real > 0
    cut = 0.5 * float(real.max()) if hit.any() else 0.5
    mean = lambda a: float(a.mean()) if len(a) else float("nan")
    return {"reward_steps": int(hit.sum()), "reward_pred_on_rewarded": mean(pred[hit]),
            "reward_pred_on_rest": mean(pred[~hit]), "reward_recall": mean(pred[hit] > cut),
            "reward_false_positive_rate": mean(pred[~hit] > cut)}

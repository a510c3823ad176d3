"""Fit the ``pose_after`` head of a trained world model on its frozen latents.

The pose head sees only the last frame, so a forward move into a wall (the agent does not move)
looks like any other forward move to it, and the dream's pose drifts into walls. The
``pose_after`` head also sees the next latent, where a blocked move shows as an unchanged frame.
Everything else in the model is left bit for bit as it was.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from worldmodels.heads import Heads, pose_change, pose_loss
from worldmodels.world_model import WorldModel

#: a forward move that changed the position by less than this is "blocked" (a step is 0.15)
BLOCKED_BELOW = 0.01
FORWARD = 2


@dataclass
class PoseAfterConfig:
    steps: int = 8000
    batch: int = 128
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.lr <= 0:
            raise ValueError(f"steps, batch and lr must be positive, got {self.steps}, {self.batch}, {self.lr}")


@dataclass
class Transitions:
    """Every within-episode step of a dataset: latents ``z (N, C, 16, 16)``, the pair indices
    ``prev, nxt (T,)``, the action taken at ``prev`` ``(T,)`` and the true pose change ``(T, 3)``."""

    z: torch.Tensor
    prev: np.ndarray
    nxt: np.ndarray
    action: np.ndarray
    dpose: np.ndarray

    @property
    def blocked(self) -> np.ndarray:
        """Forward moves that did not move the agent ``(T,)`` bool."""
        return (self.action == FORWARD) & (np.linalg.norm(self.dpose[:, :2], axis=1) < BLOCKED_BELOW)


@torch.no_grad()
def transitions(model: WorldModel, frames: np.ndarray, actions: np.ndarray, poses: np.ndarray,
                episode: np.ndarray, chunk: int = 512) -> Transitions:
    """Encode ``frames (N, 64, 64, 3)`` uint8 and pair each frame with the next of its episode;
    ``actions[t]`` is the action taken at frame t (the trainer's convention), ``episode (N,)`` its episode."""
    z = torch.cat([model.encode(torch.from_numpy(frames[i:i + chunk])) for i in range(0, len(frames), chunk)])
    nxt = np.flatnonzero(episode[1:] == episode[:-1]) + 1
    prev = nxt - 1
    return Transitions(z, prev, nxt, actions[prev].astype(np.int64), pose_change(poses[prev], poses[nxt]))


def fit_pose_after(model: WorldModel, data: Transitions, cfg: PoseAfterConfig,
                   progress: bool = True) -> tuple[WorldModel, float]:
    """A copy of ``model`` with a ``pose_after`` head fitted to ``data`` by the trainer's pose loss; the
    other heads (and the action embedding they share) stay frozen. Returns the copy and the seconds."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    new = copy.deepcopy(model)
    new.cfg.heads.pose_after = True
    heads = Heads(new.cfg.heads).to(model.device)
    missing, unexpected = heads.load_state_dict(model.heads.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("after_") for k in missing)
    params = [p for n, p in heads.named_parameters() if n.startswith("after_")]
    for n, p in heads.named_parameters():
        p.requires_grad_(n.startswith("after_"))
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    dpose = torch.from_numpy(data.dpose).to(model.device)
    act = torch.from_numpy(data.action).to(model.device)
    bar = tqdm(range(cfg.steps), desc="pose_after", disable=not progress)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        i = rng.integers(0, len(data.prev), cfg.batch)
        z, z_next = data.z[data.prev[i]].to(model.device), data.z[data.nxt[i]].to(model.device)
        loss = pose_loss(heads.pose_delta_after(z, act[i], z_next), dpose[i])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pose_after loss is {loss.item()} at step {step}; lower lr (now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0:
            bar.set_postfix(loss=f"{loss.item():.5f}")
    for p in heads.parameters():
        p.requires_grad_(False)
    new.heads = heads.eval()
    return new.eval(), time.perf_counter() - t0


@torch.no_grad()
def pose_errors(model: WorldModel, data: Transitions, chunk: int = 1024) -> dict[str, float]:
    """Mean position error per step (units) of the model's pose change, before sampling (``pose_delta``)
    and after (``pose_delta_after``; the same head where the model has none), on all steps, on
    blocked forward moves and on free forward moves; and the yaw error (rad) on all steps."""
    before, after = [], []
    for s in range(0, len(data.prev), chunk):
        z = data.z[data.prev[s:s + chunk]].to(model.device)
        z_next = data.z[data.nxt[s:s + chunk]].to(model.device)
        a = torch.from_numpy(data.action[s:s + chunk]).to(model.device)
        before.append(model.heads.pose_delta(z, a).cpu().numpy())
        after.append(model.heads.pose_delta_after(z, a, z_next).cpu().numpy())
    blocked, free = data.blocked, (data.action == FORWARD) & ~data.blocked
    out = {"blocked_share_of_forward": float(blocked.sum() / max(1, (data.action == FORWARD).sum()))}
    for name, pred in (("before", np.concatenate(before)), ("after", np.concatenate(after))):
        err = np.linalg.norm(pred[:, :2] - data.dpose[:, :2], axis=1)
        out[f"{name}_pos_err"] = float(err.mean())
        out[f"{name}_pos_err_blocked"] = float(err[blocked].mean()) if blocked.any() else float("nan")
        out[f"{name}_pos_err_free_forward"] = float(err[free].mean()) if free.any() else float("nan")
        out[f"{name}_yaw_err"] = float(np.abs(pred[:, 2] - data.dpose[:, 2]).mean())
    return out

"""Refit the pose head of a trained world model on its frozen latents, here with ``pose_prev``.

The pose head of the default training sees one latent, and a forward move into a wall looks to it
like any other forward move (held-out error on blocked moves ~0.09 per 0.15 step), so the dream's
pose walks through walls and an agent trained there learns to push into them. A ``pose_prev`` head
also sees the change from the previous latent and the previous action. Everything but the pose head
(trunk, MLP, previous-action embedding) stays bit for bit as it was.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from geometry import pose_change, stalled
from worldmodels.heads import Heads, pose_loss
from worldmodels.world_model import WorldModel

FORWARD = 2        # envs.data.collection.FORWARD; worldmodels does not import envs
POSE_PARTS = ("pose_trunk.", "pose_mlp.", "prev_act.")
BLOCKED_PARTS = ("blocked_",)


@dataclass
class PoseFitConfig:
    """What to fit: the pose head afresh (``pose``, with ``pose_prev`` inputs or not) and/or a new
    blocked head (``blocked``); the rest of the model is frozen."""

    steps: int = 8000
    batch: int = 256
    lr: float = 1e-3
    seed: int = 0
    pose_prev: bool = True
    pose: bool = True
    blocked: bool = False
    dreamed: float = 0.0     # share of steps whose current latent is the model's own one-step prediction

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.lr <= 0:
            raise ValueError(f"steps, batch and lr must be positive, got {self.steps}, {self.batch}, {self.lr}")
        if not 0.0 <= self.dreamed <= 1.0:
            raise ValueError(f"dreamed is a share in [0, 1], got {self.dreamed}")
        if not (self.pose or self.blocked):
            raise ValueError("nothing to fit: pose and blocked are both false")

    @property
    def parts(self) -> tuple[str, ...]:
        """Prefixes of the head parameters fitted (the rest is frozen)."""
        return (POSE_PARTS if self.pose else ()) + (BLOCKED_PARTS if self.blocked else ())


@dataclass
class Transitions:
    """Steps t -> t+1 with a step before them in the same episode: latents ``z (N, C, 16, 16)``, frame
    indices ``t (T,)``, the action taken at t and at t-1 ``(T,)``, the true pose change of t -> t+1 and of
    t-1 -> t ``(T, 3)``."""

    z: torch.Tensor
    t: np.ndarray
    action: np.ndarray
    prev_action: np.ndarray
    dpose: np.ndarray
    prev_dpose: np.ndarray

    @property
    def blocked(self) -> np.ndarray:
        """Steps that left the pose as it was ``(T,)`` bool (here: forward moves into a wall)."""
        return stalled(self.dpose)

    @property
    def after_blocked(self) -> np.ndarray:
        """Steps that come right after a step that left the pose as it was ``(T,)`` bool."""
        return stalled(self.prev_dpose)

    def batch(self, i: np.ndarray, device: torch.device, dreamed: torch.Tensor | None = None,
              use_dreamed: np.ndarray | None = None) -> tuple[torch.Tensor, ...]:
        """Head inputs (z_t, a_t, z_{t-1}, a_{t-1}) of steps ``i``; where ``use_dreamed`` ``(len(i),)`` is set,
        z_t is ``dreamed[i]`` (``dreamed (T, C, H, W)``: the model's own one-step prediction of frame t)."""
        t = torch.from_numpy(self.t[i])
        z = self.z[t]
        if dreamed is not None and use_dreamed is not None and use_dreamed.any():
            z = torch.where(torch.from_numpy(use_dreamed)[:, None, None, None], dreamed[torch.from_numpy(i)], z)
        return (z.to(device), torch.from_numpy(self.action[i]).to(device), self.z[t - 1].to(device),
                torch.from_numpy(self.prev_action[i]).to(device))


@torch.no_grad()
def transitions(model: WorldModel, frames: np.ndarray, actions: np.ndarray, poses: np.ndarray,
                episode: np.ndarray, chunk: int = 512) -> Transitions:
    """Encode ``frames (N, 64, 64, 3)`` uint8; ``actions[t]`` is the action taken at frame t (the trainer's
    convention), ``episode (N,)`` the episode of each frame."""
    z = torch.cat([model.encode(torch.from_numpy(frames[i:i + chunk])) for i in range(0, len(frames), chunk)])
    t = np.flatnonzero((episode[1:-1] == episode[:-2]) & (episode[2:] == episode[1:-1])) + 1
    return Transitions(z, t, actions[t].astype(np.int64), actions[t - 1].astype(np.int64),
                       pose_change(poses[t], poses[t + 1]), pose_change(poses[t - 1], poses[t]))


@torch.no_grad()
def dreamed_latents(model: WorldModel, data: Transitions, actions: np.ndarray, episode: np.ndarray,
                    seed: int = 0, chunk: int = 256) -> torch.Tensor:
    """``(T, C, H, W)``: for each step, frame t as the model itself generates it from the K real frames
    before it (``actions[j]`` taken at frame j, ``episode (N,)``), so a head fitted on it reads frames like
    the dream's and not only encoded real ones. A step after a blocked one keeps its real latent (the dream
    repeats the frame exactly there), as does one without K frames before it in its episode."""
    k = model.context
    win = data.t[:, None] - k + np.arange(k)
    ok = (win[:, 0] >= 0) & ~data.after_blocked
    ok[ok] = episode[win[ok, 0]] == episode[data.t[ok]]
    out = data.z[torch.from_numpy(data.t)].clone()
    g = torch.Generator(device=model.device).manual_seed(seed)
    idx = np.flatnonzero(ok)
    for s in range(0, len(idx), chunk):
        j = idx[s:s + chunk]
        ctx = data.z[torch.from_numpy(win[j])].to(model.device)
        acts = torch.from_numpy(actions[win[j]].astype(np.int64)).to(model.device)
        out[torch.from_numpy(j)] = model.sample_next(ctx, acts, generator=g).to(out.device)
    return out


def fit_pose_head(model: WorldModel, data: Transitions, cfg: PoseFitConfig,
                  progress: bool = True, dreamed: torch.Tensor | None = None) -> tuple[WorldModel, float]:
    """A copy of ``model`` whose pose head (``cfg.pose``) and/or blocked head (``cfg.blocked``, a logistic
    loss on ``data.blocked``) are fitted afresh to ``data``; the other heads (and the action embedding they
    share) are copied and frozen. With ``dreamed`` (``dreamed_latents``), a share ``cfg.dreamed`` of each
    batch sees the model's own prediction of frame t in place of the real one. Returns the copy and the
    seconds it took."""
    if ((cfg.pose and cfg.pose_prev) or cfg.blocked) and model.context < 2:
        raise ValueError(f"a pose_prev or blocked head reads the previous latent: it needs a context of at least "
                         f"2 frames, the model has {model.context}")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    new = copy.deepcopy(model)
    if cfg.pose:
        new.cfg.heads.pose_prev = cfg.pose_prev
    new.cfg.heads.blocked = new.cfg.heads.blocked or cfg.blocked
    heads = Heads(new.cfg.heads).to(model.device)
    keep = {k: v for k, v in model.heads.state_dict().items() if not k.startswith(cfg.parts)}
    missing, unexpected = heads.load_state_dict(keep, strict=False)
    assert not unexpected and all(k.startswith(cfg.parts) for k in missing)
    params = [p for n, p in heads.named_parameters() if n.startswith(cfg.parts)]
    for n, p in heads.named_parameters():
        p.requires_grad_(n.startswith(cfg.parts))
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    dpose = torch.from_numpy(data.dpose).to(model.device)
    target = torch.from_numpy(data.blocked.astype(np.float32)).to(model.device)
    bar = tqdm(range(cfg.steps), desc=" + ".join(p for p, on in (("pose head", cfg.pose), ("blocked head", cfg.blocked))
                                                 if on), disable=not progress)
    for step in bar:
        i = rng.integers(0, len(data.t), cfg.batch)
        inputs = data.batch(i, model.device, dreamed, rng.random(len(i)) < cfg.dreamed)
        loss = torch.zeros((), device=model.device)
        if cfg.pose:
            loss = loss + pose_loss(heads.pose_delta(*inputs), dpose[i])
        if cfg.blocked:
            loss = loss + F.binary_cross_entropy_with_logits(heads.blocked_logit(*inputs), target[i])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"head loss is {loss.item()} at step {step}; lower lr (now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0:
            bar.set_postfix(loss=f"{loss.item():.5f}")
    for p in heads.parameters():
        p.requires_grad_(False)
    new.heads = heads.eval()
    return new.eval(), time.perf_counter() - t0


@torch.no_grad()
def pose_errors(model: WorldModel, data: Transitions, chunk: int = 1024) -> dict[str, float | None]:
    """Mean position error per step (units) of the model's move (pose head, and blocked head if it has one)
    on all steps, on blocked forward moves and on free forward moves; the yaw error (rad) on all steps.
    With a blocked head also its recall on blocked moves (all; the first push into a wall; a push after a
    blocked step), the share of free forward moves it stops and its precision."""
    moves = [model.heads.move(*data.batch(np.arange(s, min(s + chunk, len(data.t))), model.device))
             for s in range(0, len(data.t), chunk)]
    pred = torch.cat([m[0] for m in moves]).cpu().numpy()
    stop = torch.cat([m[1] for m in moves]).cpu().numpy()
    err = np.linalg.norm(pred[:, :2] - data.dpose[:, :2], axis=1)
    blocked, free = data.blocked, (data.action == FORWARD) & ~data.blocked

    def mean(x: np.ndarray, where: np.ndarray) -> float | None:
        return float(x[where].mean()) if where.any() else None   # no such step: None (NaN is not JSON)

    out = {"pos_err": float(err.mean()), "pos_err_blocked": mean(err, blocked), "pos_err_free_forward": mean(err, free),
           "yaw_err": float(np.abs(pred[:, 2] - data.dpose[:, 2]).mean()),
           "blocked_share_of_forward": float((blocked & (data.action == FORWARD)).sum() / max(1, (data.action == FORWARD).sum()))}
    if model.cfg.heads.blocked:
        # a first push into a wall is told from the view alone; a repeated one also from the unchanged frame
        repeat = data.after_blocked
        out |= {"blocked_recall": mean(stop, blocked), "free_forward_stopped": mean(stop, free),
                "blocked_precision": mean(blocked, stop), "blocked_recall_first_push": mean(stop, blocked & ~repeat),
                "blocked_recall_repeat_push": mean(stop, blocked & repeat)}
    return out

"""Reward, termination and pose-change heads on latents.

The pose head sees the last context latent and the action, so the pose of the frame
about to be generated is known *before* sampling (memory is retrieved for that pose).
With ``pose_prev`` it also sees the change from the previous latent and the previous action:
a forward move into a wall cannot be told from one frame, but a frame that did not change under
a forward move says the agent is already pushing into one.
The reward/termination head also sees the generated latent.
The optional blocked head says whether the step about to be taken will not move the agent (a forward
move into a wall): the dream then keeps the pose and repeats the frame, as the real env does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


#: Positive-class weight of the termination loss (terminations are rare); a termination is
#: predicted when the logit exceeds log(DONE_POS_WEIGHT), i.e. when its probability exceeds 1/2.
DONE_POS_WEIGHT = 20.0


@dataclass
class HeadsConfig:
    latent_channels: int = 4
    n_actions: int = 3
    channels: int = 48
    hidden: int = 128
    pose_prev: bool = False      # the pose head also sees the previous latent's change and action
    blocked: bool = False        # a head that predicts a move that will not move the agent (needs context >= 2)


def _trunk(c_in: int, c: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.SiLU(),
                         nn.Conv2d(c, c, 3, stride=2, padding=1), nn.SiLU(), nn.Flatten())


class Heads(nn.Module):
    """``pose_delta(z_t, a) -> (B, 3)`` = [forward, left, dyaw]; ``reward_done(z_t, a, z_next) -> (B,), (B,)``;
    with ``blocked``, ``blocked_logit(z_t, a, z_prev, a_prev) -> (B,)``; ``move`` puts pose and blocked together."""

    def __init__(self, cfg: HeadsConfig, latent_hw: int = 16):
        super().__init__()
        self.cfg = cfg
        lc, c, h = cfg.latent_channels, cfg.channels, cfg.hidden
        flat = c * (latent_hw // 4) ** 2
        self.act = nn.Embedding(cfg.n_actions, h)
        self.pose_trunk, self.rew_trunk = _trunk(2 * lc if cfg.pose_prev else lc, c), _trunk(2 * lc, c)
        self.pose_mlp = nn.Sequential(nn.Linear(flat + (2 if cfg.pose_prev else 1) * h, h), nn.SiLU(), nn.Linear(h, 3))
        if cfg.pose_prev:
            self.prev_act = nn.Embedding(cfg.n_actions, h)
        self.rew_mlp = nn.Sequential(nn.Linear(flat + h, h), nn.SiLU(), nn.Linear(h, 2))
        if cfg.blocked:
            # its own action embeddings: fitting it afterwards leaves the other heads bit for bit as they were
            self.blocked_trunk = _trunk(2 * lc, c)
            self.blocked_act, self.blocked_prev_act = nn.Embedding(cfg.n_actions, h), nn.Embedding(cfg.n_actions, h)
            self.blocked_mlp = nn.Sequential(nn.Linear(flat + 2 * h, h), nn.SiLU(), nn.Linear(h, 1))

    def forward(self, z: torch.Tensor, action: torch.Tensor, z_next: torch.Tensor, z_prev: torch.Tensor | None = None,
                prev_action: torch.Tensor | None = None):
        """All heads at once (what training calls, so DDP syncs them): dpose, reward, done logit and the
        blocked logit (None without a blocked head)."""
        dpose = self.pose_delta(z, action, z_prev, prev_action)
        blocked = self.blocked_logit(z, action, z_prev, prev_action) if self.cfg.blocked else None
        return (dpose, *self.reward_done(z, action, z_next), blocked)

    def pose_delta(self, z: torch.Tensor, action: torch.Tensor, z_prev: torch.Tensor | None = None,
                   prev_action: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 3)`` from ``z (B, C, H, W)`` and ``action (B,)``; with ``pose_prev`` also the latent before
        ``z`` and the action that led into ``z`` (ignored otherwise)."""
        if not self.cfg.pose_prev:
            return self.pose_mlp(torch.cat([self.pose_trunk(z), self.act(action)], 1))
        if z_prev is None or prev_action is None:
            raise ValueError("this pose head (pose_prev) also needs the previous latent and action")
        x = self.pose_trunk(torch.cat([z, z - z_prev], 1))
        return self.pose_mlp(torch.cat([x, self.act(action), self.prev_act(prev_action)], 1))

    def blocked_logit(self, z: torch.Tensor, action: torch.Tensor, z_prev: torch.Tensor,
                      prev_action: torch.Tensor) -> torch.Tensor:
        """``(B,)`` logit that ``action`` taken at ``z`` leaves the agent where it is; the inputs are
        ``pose_delta``'s with ``pose_prev``. A frame unchanged by the last forward move says the agent is
        already pushing into a wall."""
        if not self.cfg.blocked:
            raise ValueError("this model has no blocked head (heads.blocked is false); fit one with memworld train-pose")
        x = self.blocked_trunk(torch.cat([z, z - z_prev], 1))
        return self.blocked_mlp(torch.cat([x, self.blocked_act(action), self.blocked_prev_act(prev_action)], 1))[:, 0]

    def move(self, z: torch.Tensor, action: torch.Tensor, z_prev: torch.Tensor | None = None,
             prev_action: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """What ``action`` taken at ``z`` does (inputs as ``pose_delta``'s): the pose change ``(B, 3)`` and
        whether the move is blocked ``(B,)`` bool. A blocked step keeps the pose (its change is zero) and
        should repeat the last frame; without a blocked head no step is blocked."""
        delta = self.pose_delta(z, action, z_prev, prev_action)
        if not self.cfg.blocked:
            return delta, torch.zeros(len(delta), dtype=torch.bool, device=delta.device)
        if z_prev is None or prev_action is None:
            raise ValueError("the blocked head also needs the previous latent and action")
        blocked = self.blocked_logit(z, action, z_prev, prev_action) > 0
        return delta * ~blocked[:, None], blocked

    def move_from_context(self, ctx: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``move`` of the step about to be taken: context latents ``(B, K, C, H, W)`` and actions ``(B, K)``
        whose last is that step's (``actions[:, j]`` led into ``ctx[:, j + 1]``)."""
        if not (self.cfg.pose_prev or self.cfg.blocked):
            return self.move(ctx[:, -1], actions[:, -1])
        return self.move(ctx[:, -1], actions[:, -1], ctx[:, -2], actions[:, -2])

    def reward_done(self, z: torch.Tensor, action: torch.Tensor, z_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reward ``(B,)`` and termination logit ``(B,)``."""
        out = self.rew_mlp(torch.cat([self.rew_trunk(torch.cat([z, z_next], 1)), self.act(action)], 1))
        return out[:, 0], out[:, 1]


def pose_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The pose head's loss on ``(B, 3)`` changes: 10 x (MSE of the position change + MSE of the yaw change)."""
    return F.mse_loss(pred[:, :2], target[:, :2]) * 10 + F.mse_loss(pred[:, 2], target[:, 2]) * 10

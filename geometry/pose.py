"""Pose maths: a pose is ``[x, y, yaw]`` (world units, radians, yaw wrapped to (-pi, pi]); the agent looks
along ``(cos yaw, sin yaw)``. A pose change ``[forward, left, dyaw]`` is expressed in the agent's frame.

One module for every package (memory, world models, environments, agents), torch and numpy alike where both
are needed, so that composing, relating and comparing poses means the same thing everywhere.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: a step whose position changed by less than this (units) and yaw by less than this (rad) left the pose as
#: it was: a move into a wall (a step forward is 0.15, a turn ~0.26 rad)
BLOCKED_BELOW = 0.01


def wrap_angle(a: torch.Tensor) -> torch.Tensor:
    """Wrap radians to (-pi, pi]."""
    return torch.remainder(-a + math.pi, 2 * math.pi).neg() + math.pi


def wrap_yaw(yaw: float) -> float:
    """Wrap one angle in radians to (-pi, pi]."""
    y = math.remainder(yaw, 2 * math.pi)
    return math.pi if y == -math.pi else y


def compose(pose: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Apply ``delta = [forward, left, dyaw]`` (agent frame) to ``pose``; shapes ``(..., 3)``. Integrating the
    pose head's changes step by step is composing them."""
    x, y, yaw = pose.unbind(-1)
    f, left, dyaw = delta.unbind(-1)
    c, s = yaw.cos(), yaw.sin()
    return torch.stack([x + c * f - s * left, y + s * f + c * left, wrap_angle(yaw + dyaw)], -1)


def relative_pose(other: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``other`` expressed in ``ref``'s frame: ``[forward, left, dyaw]``; broadcasts ``(..., 3)``.
    ``compose(ref, relative_pose(other, ref)) == other``."""
    dx, dy = other[..., 0] - ref[..., 0], other[..., 1] - ref[..., 1]
    c, s = ref[..., 2].cos(), ref[..., 2].sin()
    return torch.stack([c * dx + s * dy, -s * dx + c * dy, wrap_angle(other[..., 2] - ref[..., 2])], -1)


def pose_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared pose distance ``dx^2 + dy^2 + 2 (1 - cos dyaw)`` of poses ``(..., 3)``, broadcast."""
    return (a[..., :2] - b[..., :2]).pow(2).sum(-1) + 2 * (1 - torch.cos(a[..., 2] - b[..., 2]))


def nearest_pose(rel_pose: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The squared pose distance (``pose_distance``) of the valid entry closest to the origin and its index,
    both ``(B,)``, from poses relative to a query ``rel_pose (B, M, 3)`` and ``mask (B, M)`` (inf where none)."""
    dist = rel_pose[..., :2].pow(2).sum(-1) + 2 * (1 - rel_pose[..., 2].cos())
    return dist.masked_fill(~mask, math.inf).min(1)


def pose_change(p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """``(B, 3)`` float32 ``[forward, left, dyaw]`` in the frame of ``p0 (B, 3)`` that takes it to ``p1``: the
    pose head's target, what ``compose`` undoes (numpy ``relative_pose(p1, p0)``)."""
    c, s = np.cos(p0[:, 2]), np.sin(p0[:, 2])
    d = p1[:, :2] - p0[:, :2]
    dyaw = -np.remainder(-(p1[:, 2] - p0[:, 2]) + np.pi, 2 * np.pi) + np.pi
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], dyaw], 1).astype(np.float32)


def stalled(dpose: np.ndarray) -> np.ndarray:
    """``(B,)`` bool: which pose changes ``(B, 3)`` left the pose as it was (``BLOCKED_BELOW``)."""
    return (np.linalg.norm(dpose[:, :2], axis=1) < BLOCKED_BELOW) & (np.abs(dpose[:, 2]) < BLOCKED_BELOW)

"""Field of view of a pose ``[x, y, yaw]`` (``geometry.pose``): the agent looks along ``(cos yaw, sin yaw)``.

The field of view is a wedge of half-angle ``fov/2`` and depth ``view_range``; overlap is
measured by a fixed set of points spread over one wedge and counted inside the other
(walls do not occlude: an approximation that errs towards retrieving more).
"""

from __future__ import annotations

import math

import torch



def view_points(n_angles: int = 8, n_depths: int = 4, fov: float = math.radians(60),
                view_range: float = 6.0) -> torch.Tensor:
    """Fixed points ``(P, 2)`` spread over a view wedge, in the agent frame (forward, left)."""
    ang = (torch.arange(n_angles) + 0.5) / n_angles * fov - fov / 2
    dep = (torch.arange(n_depths) + 0.5) / n_depths * view_range
    a, d = torch.meshgrid(ang, dep, indexing="ij")
    return torch.stack([d * a.cos(), d * a.sin()], -1).reshape(-1, 2)


def visible(points_world: torch.Tensor, pose: torch.Tensor, fov: float, view_range: float) -> torch.Tensor:
    """Which world points ``(..., P, 2)`` lie in the wedge of ``pose (..., 3)``: bool ``(..., P)``."""
    rel = points_world - pose[..., None, :2]
    c, s = pose[..., 2].cos()[..., None], pose[..., 2].sin()[..., None]
    fwd, left = c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1]
    # inside the wedge <=> in range and |angle| <= fov/2, written without sqrt/atan2 (hot in the dream)
    in_range = fwd * fwd + left * left <= view_range * view_range
    if fov < math.pi:
        return in_range & (fwd > 0) & (left.abs() <= fwd * math.tan(fov / 2))
    return in_range


def wedge_points_world(pose: torch.Tensor, fov: float = math.radians(60), view_range: float = 6.0) -> torch.Tensor:
    """The wedge points of ``pose (..., 3)`` in world coordinates ``(..., P, 2)``."""
    pts = view_points(fov=fov, view_range=view_range).to(pose)
    c, s = pose[..., 2].cos()[..., None], pose[..., 2].sin()[..., None]
    x = pose[..., 0:1] + c * pts[:, 0] - s * pts[:, 1]
    y = pose[..., 1:2] + s * pts[:, 0] + c * pts[:, 1]
    return torch.stack([x, y], -1)


def fov_overlap(a: torch.Tensor, b: torch.Tensor, fov: float = math.radians(60), view_range: float = 6.0) -> torch.Tensor:
    """Fraction of ``a``'s view wedge also inside ``b``'s: in [0, 1], broadcasting ``(..., 3)``."""
    a, b = torch.broadcast_tensors(a, b)
    return visible(wedge_points_world(a, fov, view_range), b, fov, view_range).float().mean(-1)

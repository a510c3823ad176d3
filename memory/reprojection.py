"""Re-rendering a stored view at a new heading: a pinhole camera turned about its vertical axis.

A pure rotation moves every pixel by a homography that does not depend on depth (Hartley & Zisserman,
*Multiple View Geometry*, 8.4), so a view stored at the same place under another heading gives the
exact view now wherever the two fields of view overlap. Poses as in ``memory.geometry``; with MiniWorld's
pose frame (mirrored against its 3D one) a larger yaw turns the view towards the image's right, which
``tests/test_memory.py`` checks against ``render_at``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from memory.geometry import wrap_angle


def rotate_view(frames: torch.Tensor, dyaw: torch.Tensor, fov_y: float = math.radians(60)) -> tuple[torch.Tensor, torch.Tensor]:
    """Views ``frames (N, C, H, W)`` (float) turned by ``dyaw (N,)`` = new yaw - stored yaw (radians):
    returns the warped views ``(N, C, H, W)`` (bilinear; zero outside the stored view) and ``valid (N, H, W)``,
    the pixels the stored view sees. ``fov_y``: the camera's vertical field of view (MiniWorld's 60 degrees)."""
    n, _, h, w = frames.shape
    ty = math.tan(fov_y / 2)
    tx = ty * w / h
    # pixel centres in normalised device coordinates (grid_sample, align_corners=False)
    gx = (torch.arange(w, device=frames.device, dtype=frames.dtype) + 0.5) / w * 2 - 1
    gy = (torch.arange(h, device=frames.device, dtype=frames.dtype) + 0.5) / h * 2 - 1
    x = (gx * tx)[None, None, :]                       # ray (x, y, 1) of each new pixel, camera frame
    y = (gy * ty)[None, :, None]
    d = wrap_angle(dyaw.to(frames))[:, None, None]
    c, s = d.cos(), d.sin()
    xs, zs = x * c + s, c - x * s                      # the ray in the stored camera's frame
    ok = zs > 1e-4
    zs = torch.where(ok, zs, torch.ones_like(zs))
    u, v = xs / zs / tx, y / zs / ty                   # (N, 1, W) and (N, H, W)
    u = u.expand(n, h, w)
    ok = ok.expand(n, h, w) & (u.abs() <= 1) & (v.abs() <= 1)
    grid = torch.stack([u, v], -1)
    warped = F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped * ok[:, None], ok


def lay_turned_views(base: torch.Tensor, views: torch.Tensor, dyaw: torch.Tensor, use: torch.Tensor,
                     fov_y: float = math.radians(60)) -> tuple[torch.Tensor, torch.Tensor]:
    """``base (N, C, H, W)`` with stored ``views (N, M, C, H, W)`` turned by ``dyaw (N, M)`` (new - stored
    yaw) painted over it where they see, for the entries where ``use (N, M)``; an earlier entry wins
    where two see the same pixel, so pass them best first. Returns the frames and the share of each
    frame's pixels that came from a stored view ``(N,)``."""
    n, m = use.shape
    turned, ok = rotate_view(views.flatten(0, 1), dyaw.flatten(), fov_y)
    turned, ok = turned.unflatten(0, (n, m)), ok.unflatten(0, (n, m)) & use[..., None, None]
    out, painted = base.clone(), torch.zeros_like(ok[:, 0])
    for j in range(m):
        new = ok[:, j] & ~painted
        out = torch.where(new[:, None], turned[:, j], out)
        painted |= new
    return out, painted.flatten(1).float().mean(1)

"""Re-rendering a stored view from a new pose: turned about its vertical axis (no depth needed), or moved
as well (with its depth).

A pure rotation moves every pixel by a homography that does not depend on depth (Hartley & Zisserman,
*Multiple View Geometry*, 8.4), so a view stored at the same place under another heading gives the
exact view now wherever the two fields of view overlap. Poses as in ``memory.field_of_view``; with MiniWorld's
pose frame (mirrored against its 3D one) a larger yaw turns the view towards the image's right, which
``tests/test_memory.py`` checks against ``render_at``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from geometry import wrap_angle


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


def move_view(frames: torch.Tensor, depth: torch.Tensor, rel_pose: torch.Tensor,
              fov_y: float = math.radians(60), near: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Views ``frames (N, C, H, W)`` (float) with their ``depth (N, H, W)`` (along the optical axis), stored at
    ``rel_pose (N, 3)`` = the stored pose in the new one's frame ``[forward, left, dyaw]`` (``relative_pose``),
    re-rendered from the new pose: the warped views ``(N, C, H, W)`` and ``valid (N, H, W)``.

    Forward-warp the depth, backward-warp the colour (as in depth-image-based rendering, Fehn 2004): each stored
    pixel is lifted to 3D by its depth and splatted, with a z-buffer, onto the 2x2 new pixels around where it
    lands, which gives the new view's depth without cracks; each new pixel then reads its colour bilinearly
    where its 3D point falls in the stored view, kept only if the stored depth there agrees (else the point is
    hidden in the stored view: a disocclusion, left invalid for the caller to draw). With MiniWorld's mirrored
    pose frame the image's right is the pose frame's ``left`` axis (as ``rotate_view``)."""
    n, _, h, w = frames.shape
    ty = math.tan(fov_y / 2)
    tx = ty * w / h
    dt = frames.dtype
    gx = ((torch.arange(w, device=frames.device, dtype=dt) + 0.5) / w * 2 - 1) * tx    # ray slopes of pixel centres
    gy = ((torch.arange(h, device=frames.device, dtype=dt) + 0.5) / h * 2 - 1) * ty
    fwd, left, yaw = (rel_pose.to(frames)[:, i, None, None] for i in range(3))
    c, s = yaw.cos(), yaw.sin()
    z = depth.to(frames)
    xc, yc = gx[None, None, :] * z, gy[None, :, None] * z
    f_new, l_new = fwd + c * z - s * xc, left + s * z + c * xc                          # (N, H, W), new frame
    ok = (f_new > near) & (z > near)
    fz = torch.where(ok, f_new, torch.ones_like(f_new))
    px = (l_new / fz / tx + 1) / 2 * w - 0.5
    py = (yc / fz / ty + 1) / 2 * h - 0.5
    zbuf = torch.full((n, h * w), float("inf"), device=frames.device, dtype=dt)
    x0, y0 = px.floor().long(), py.floor().long()
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            hit = ok & (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            idx = (yi * w + xi).clamp(0, h * w - 1)
            zbuf.scatter_reduce_(1, idx.flatten(1), torch.where(hit, f_new, torch.full_like(f_new, float("inf"))).flatten(1),
                                 reduce="amin")
    d_new = zbuf.view(n, h, w)
    seen = torch.isfinite(d_new)
    d_new = torch.where(seen, d_new, torch.ones_like(d_new))
    # back: the new pixel's 3D point, in the stored frame, projected into the stored view
    bf, bl = d_new - fwd, gx[None, None, :] * d_new - left
    zs, xs = c * bf + s * bl, -s * bf + c * bl
    ys = gy[None, :, None] * d_new
    front = zs > near
    zs = torch.where(front, zs, torch.ones_like(zs))
    u, v = xs / zs / tx, ys / zs / ty
    grid = torch.stack([u, v], -1)
    warped = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    stored_z = F.grid_sample(z[:, None], grid, mode="nearest", padding_mode="border", align_corners=False)[:, 0]
    valid = seen & front & (u.abs() <= 1) & (v.abs() <= 1) & ((stored_z - zs).abs() <= 0.1 * zs + 0.05)
    return warped * valid[:, None], valid


def _paint(base: torch.Tensor, warped: torch.Tensor, ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``base (N, C, H, W)`` with ``warped (N, M, C, H, W)`` painted where ``ok (N, M, H, W)``, earlier entries
    winning; and the share of each frame's pixels painted ``(N,)``."""
    out, painted = base.clone(), torch.zeros_like(ok[:, 0])
    for j in range(ok.shape[1]):
        new = ok[:, j] & ~painted
        out = torch.where(new[:, None], warped[:, j], out)
        painted |= new
    return out, painted.flatten(1).float().mean(1)


def lay_turned_views(base: torch.Tensor, views: torch.Tensor, dyaw: torch.Tensor, use: torch.Tensor,
                     fov_y: float = math.radians(60)) -> tuple[torch.Tensor, torch.Tensor]:
    """``base (N, C, H, W)`` with stored ``views (N, M, C, H, W)`` turned by ``dyaw (N, M)`` (new - stored
    yaw) painted over it where they see, for the entries where ``use (N, M)``; an earlier entry wins
    where two see the same pixel, so pass them best first. Returns the frames and the share of each
    frame's pixels that came from a stored view ``(N,)``."""
    n, m = use.shape
    turned, ok = rotate_view(views.flatten(0, 1), dyaw.flatten(), fov_y)
    return _paint(base, turned.unflatten(0, (n, m)), ok.unflatten(0, (n, m)) & use[..., None, None])


def lay_moved_views(base: torch.Tensor, views: torch.Tensor, depth: torch.Tensor, rel_pose: torch.Tensor,
                    use: torch.Tensor, fov_y: float = math.radians(60)) -> tuple[torch.Tensor, torch.Tensor]:
    """As ``lay_turned_views``, the stored ``views (N, M, C, H, W)`` moved to the new pose by ``move_view`` with
    their ``depth (N, M, H, W)`` and ``rel_pose (N, M, 3)`` (stored pose in the new one's frame)."""
    n, m = use.shape
    moved, ok = move_view(views.flatten(0, 1), depth.flatten(0, 1), rel_pose.flatten(0, 1), fov_y)
    return _paint(base, moved.unflatten(0, (n, m)), ok.unflatten(0, (n, m)) & use[..., None, None])

"""Stateful memory of fixed size: one slot per (spatial cell, heading bin), overwritten on each visit.

Its size depends on the map's extent and the grid, never on the number of steps.
Reads use the field-of-view retriever over the occupied slots.
"""

from __future__ import annotations

import math

import torch

from memory.retrievers import Retrieved, retrieve_fov


class StatefulGridMemory:
    """Slots ``(n_worlds, n_cells_x * n_cells_y * n_headings, ...)`` over a bounded map."""

    def __init__(self, n_worlds: int, latent_shape: tuple[int, ...], bounds: tuple[float, float, float, float],
                 cell: float = 1.5, n_headings: int = 8, device: str | torch.device = "cpu"):
        x0, x1, y0, y1 = bounds
        if cell <= 0 or n_headings < 1 or x1 <= x0 or y1 <= y0:
            raise ValueError(f"bad stateful memory grid: bounds={bounds}, cell={cell}, n_headings={n_headings}")
        self.bounds, self.cell, self.n_headings = bounds, cell, n_headings
        self.nx, self.ny = math.ceil((x1 - x0) / cell), math.ceil((y1 - y0) / cell)
        self.n_worlds, self.capacity = n_worlds, self.nx * self.ny * n_headings
        self.latents = torch.zeros(n_worlds, self.capacity, *latent_shape, device=device)
        self.poses = torch.zeros(n_worlds, self.capacity, 3, device=device)
        self.steps = torch.full((n_worlds, self.capacity), -1, dtype=torch.long, device=device)
        self.valid = torch.zeros(n_worlds, self.capacity, dtype=torch.bool, device=device)

    def slot_of(self, poses: torch.Tensor) -> torch.Tensor:
        """Slot index ``(N,)`` of each pose ``(N, 3)``; poses outside the bounds are clamped to the edge."""
        x0, _, y0, _ = self.bounds
        cx = ((poses[:, 0] - x0) / self.cell).floor().long().clamp(0, self.nx - 1)
        cy = ((poses[:, 1] - y0) / self.cell).floor().long().clamp(0, self.ny - 1)
        h = (((poses[:, 2] + math.pi) / (2 * math.pi)) * self.n_headings).floor().long() % self.n_headings
        return (cx * self.ny + cy) * self.n_headings + h

    def write(self, latents: torch.Tensor, poses: torch.Tensor, steps: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
        """Overwrite each world's slot for its pose; returns the slot index ``(N,)`` (-1 where masked)."""
        w = torch.arange(self.n_worlds, device=self.valid.device)
        if mask is not None:
            w = w[mask]
        slot = self.slot_of(poses[w])
        self.latents[w, slot] = latents[w].to(self.latents.dtype)
        self.poses[w, slot] = poses[w].to(self.poses.dtype)
        self.steps[w, slot] = steps[w]
        self.valid[w, slot] = True
        out = torch.full((self.n_worlds,), -1, dtype=torch.long, device=self.valid.device)
        out[w] = slot
        return out

    def read(self, now: torch.Tensor, query_pose: torch.Tensor, m: int, exclude_recent: int = 0,
             vis: torch.Tensor | None = None) -> Retrieved:
        """M slots covering the query's view (field-of-view retrieval over the slots)."""
        return retrieve_fov(now=now, query_pose=query_pose, query_latent=None, latents=self.latents,
                            poses=self.poses, steps=self.steps, valid=self.valid, m=m, exclude_recent=exclude_recent,
                            vis=vis)

    def reset(self, mask: torch.Tensor | None = None) -> None:
        """Empty the worlds in ``mask`` (all when None)."""
        m = torch.ones(self.n_worlds, dtype=torch.bool, device=self.valid.device) if mask is None else mask
        self.valid[m] = False
        self.steps[m] = -1

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.latents, self.poses, self.steps, self.valid))

"""A bounded, batched memory bank: per world, a ring of ``(latent, pose, step)`` entries."""

from __future__ import annotations

import torch


class MemoryBank:
    """Tensors shaped ``(n_worlds, capacity, ...)``; writes go to each world's ring position.

    The bank never grows: once full, a write replaces the oldest entry of that world.
    """

    def __init__(self, n_worlds: int, capacity: int, latent_shape: tuple[int, ...],
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        if n_worlds < 1 or capacity < 1:
            raise ValueError(f"n_worlds and capacity must be >= 1, got {n_worlds} and {capacity}")
        self.n_worlds, self.capacity = n_worlds, capacity
        self.latents = torch.zeros(n_worlds, capacity, *latent_shape, device=device, dtype=dtype)
        self.poses = torch.zeros(n_worlds, capacity, 3, device=device, dtype=dtype)
        self.steps = torch.full((n_worlds, capacity), -1, dtype=torch.long, device=device)
        self.valid = torch.zeros(n_worlds, capacity, dtype=torch.bool, device=device)
        self.cursor = torch.zeros(n_worlds, dtype=torch.long, device=device)
        self.high = torch.zeros(n_worlds, dtype=torch.long, device=device)    # slots written since the reset

    def used(self) -> int:
        """Slots ``[0, used)`` hold every valid entry of every world: a reader may look at that prefix
        only (a world fills its ring from slot 0 after a reset)."""
        return int(self.high.max())

    def write(self, latents: torch.Tensor, poses: torch.Tensor, steps: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
        """Store ``latents (N, ...)``, ``poses (N, 3)``, ``steps (N,)`` for the worlds in ``mask``.

        Returns the slot index written in each world ``(N,)``.
        """
        w = torch.arange(self.n_worlds, device=self.cursor.device)
        if mask is not None:
            w = w[mask]
        slot = self.cursor[w]
        self.latents[w, slot] = latents[w].to(self.latents.dtype)
        self.poses[w, slot] = poses[w].to(self.poses.dtype)
        self.steps[w, slot] = steps[w]
        self.valid[w, slot] = True
        self.cursor[w] = (slot + 1) % self.capacity
        self.high[w] = torch.maximum(self.high[w], slot + 1)
        out = torch.full((self.n_worlds,), -1, dtype=torch.long, device=slot.device)
        out[w] = slot
        return out

    def reset(self, mask: torch.Tensor | None = None) -> None:
        """Empty the worlds in ``mask (N,)`` bool (all when None): a masked write, nothing reallocated."""
        m = torch.ones(self.n_worlds, dtype=torch.bool, device=self.valid.device) if mask is None else mask
        self.valid[m] = False
        self.steps[m] = -1
        self.cursor[m] = 0
        self.high[m] = 0

    def nbytes(self) -> int:
        """Bytes held by the bank (constant for its life)."""
        return sum(t.numel() * t.element_size() for t in (self.latents, self.poses, self.steps, self.valid, self.cursor,
                                                             self.high))

"""A floor under the contrast of each drawn latent, relative to the frame before it.

A one-step denoiser draws the posterior mean; where it is unsure, the mean is flatter than any real frame, and
each flattened frame, as context, makes the next one flatter still: after ~100 steps the dream is a grey wall
(docs/notebook.md, "Long rollouts"). Holding each latent channel's spatial spread to at least ``keep`` times the
previous frame's stops that ratchet; a real flattening (a wall coming close) still happens, at most by a factor
``keep`` per step. The correction moves only the spread about the channel mean, never the mean itself.
"""

from __future__ import annotations

import torch


def keep_contrast(z: torch.Tensor, prev: torch.Tensor, keep: float) -> torch.Tensor:
    """``z (B, C, H, W)`` with each channel's deviation from its spatial mean scaled up, where needed, so that its
    spatial std is at least ``keep`` times that of ``prev (B, C, H, W)``; unchanged where it already is, or
    ``keep <= 0``."""
    if keep <= 0:
        return z
    mean = z.mean((-2, -1), keepdim=True)
    gain = keep * prev.std((-2, -1), keepdim=True) / z.std((-2, -1), keepdim=True).clamp_min(1e-6)
    return torch.where(gain > 1.0, mean + (z - mean) * gain, z)

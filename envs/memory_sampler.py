"""Memory for world-model training: frames of the target's own episode, retrieved with true poses.

Joins ``memory/`` retrievers with dataset arrays; it is the ``memory_fn`` of
``worldmodels.train.Trainer``. Candidates are the ``window`` frames before the context,
so retrieved frames lie outside the context window, often far outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from memory.geometry import relative_pose
from memory.retrievers import retrieve


@dataclass
class MemorySamplerConfig:
    """Which retriever draws a batch's memory, with what probability (``none``: no memory)."""

    m: int = 4
    window: int = 256
    kinds: dict[str, float] = field(default_factory=lambda: {"fov": 0.6, "none": 0.2, "embedding": 0.1,
                                                             "recency": 0.1})


class EpisodeMemorySampler:
    """``(targets (B,), latents (N, C, H, W), poses (N, 3), episode_starts (B,), rng) -> (mem, rel_pose, mask)``."""

    def __init__(self, cfg: MemorySamplerConfig, context: int):
        self.cfg, self.context = cfg, context
        self.kinds = list(cfg.kinds)
        p = np.array([cfg.kinds[k] for k in self.kinds], dtype=np.float64)
        self.p = p / p.sum()

    def __call__(self, targets: np.ndarray, latents: torch.Tensor, poses: torch.Tensor, ep_starts: np.ndarray,
                 rng: np.random.Generator):
        b, m, w = len(targets), self.cfg.m, self.cfg.window
        kind = self.kinds[int(rng.choice(len(self.kinds), p=self.p))]
        cand = targets[:, None] - self.context - 1 - np.arange(w)[None]          # (B, W), newest first
        valid = cand >= ep_starts[:, None]
        cand_c = np.maximum(cand, 0)
        mem_shape = (b, m, *latents.shape[1:])
        if kind == "none" or not valid.any():
            d = latents.device
            return (torch.zeros(mem_shape, device=d), torch.zeros(b, m, 3, device=d),
                    torch.zeros(b, m, dtype=torch.bool, device=d))
        dev = latents.device
        poses = poses.to(dev)
        cand_t = torch.from_numpy(cand_c).to(dev)
        bank_poses = poses[cand_t]
        query_pose = poses[torch.from_numpy(targets).to(dev)]
        bank_lat = latents[cand_t] if kind == "embedding" else latents.new_zeros(b, w, 1, 1, 1)
        r = retrieve(kind, now=torch.from_numpy(targets - ep_starts).to(dev), query_pose=query_pose,
                     query_latent=latents[torch.from_numpy(targets - 1).to(dev)], latents=bank_lat, poses=bank_poses,
                     steps=torch.from_numpy(cand_c - ep_starts[:, None]).to(dev), valid=torch.from_numpy(valid).to(dev),
                     m=m)
        picked = cand_t.gather(1, r.indices)
        mem = latents[picked] * r.mask[:, :, None, None, None]
        rel = relative_pose(poses[picked], query_pose[:, None]) * r.mask[:, :, None]
        return mem, rel, r.mask

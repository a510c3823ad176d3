"""Memory for world-model training: frames of the target's own episode, retrieved with true poses.

Joins ``memory/`` retrievers with dataset arrays; it is the ``memory_fn`` of
``worldmodels.train.Trainer``. Candidates are the ``window`` frames before the context,
so retrieved frames lie outside the context window, often far outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from memory.scene_map import MAP_STEP
from geometry import pose_distance, relative_pose
from memory.retrievers import retrieve


@dataclass
class MemorySamplerConfig:
    """Which retriever draws a batch's memory, with what probability (``none``: no memory)."""

    m: int = 4
    window: int = 256
    kinds: dict[str, float] = field(default_factory=lambda: {"fov": 0.6, "none": 0.2, "embedding": 0.1,
                                                             "recency": 0.1})
    # scene map (envs/scene_map.py): in this share of batches the candidates also hold the map_candidates
    # map entries nearest the target pose, from other episodes only, as the dream's map holds other episodes'
    map_share: float = 0.0
    map_candidates: int = 16
    # fov also draws from up to this many frames *after* the target (beyond a gap of the context's length): a place
    # is the same whenever it is seen, and where play seldom returns (a new maze every episode) the past alone
    # rarely holds the target's view, so a model trained on it learns to ignore its memory
    future: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.map_share <= 1.0 or self.map_candidates < 1:
            raise ValueError(f"map_share is a share in [0, 1] and map_candidates >= 1, got {self.map_share} "
                             f"and {self.map_candidates}")
        if self.future < 0:
            raise ValueError(f"future is a frame count >= 0, got {self.future}")


class EpisodeMemorySampler:
    """``(targets (B,), latents (N, C, H, W), poses (N, 3), episode_starts (B,), rng) -> (mem, rel_pose, mask)``."""

    def __init__(self, cfg: MemorySamplerConfig, context: int, map_index: np.ndarray | None = None,
                 map_episode_start: np.ndarray | None = None, episode_ends: np.ndarray | None = None):
        """``map_index (P,)``: the frames (global indices) a scene map holds, ``map_episode_start (P,)`` the first
        frame of each one's episode; needed when ``cfg.map_share > 0``. ``episode_ends (E,)``: one past each
        episode's last frame, in order; needed when ``cfg.future > 0``."""
        self.cfg, self.context = cfg, context
        if cfg.future > 0 and episode_ends is None:
            raise ValueError("future > 0 needs the episodes' ends (episode_ends)")
        self.episode_ends = episode_ends
        self.kinds = list(cfg.kinds)
        p = np.array([cfg.kinds[k] for k in self.kinds], dtype=np.float64)
        self.p = p / p.sum()
        if cfg.map_share > 0 and (map_index is None or map_episode_start is None or len(map_index) == 0):
            raise ValueError("map_share > 0 needs the scene map's frames (map_index, map_episode_start)")
        self.map_index, self.map_episode_start = map_index, map_episode_start

    def __call__(self, targets: np.ndarray, latents: torch.Tensor, poses: torch.Tensor, ep_starts: np.ndarray,
                 rng: np.random.Generator):
        b, m, w = len(targets), self.cfg.m, self.cfg.window
        kind = self.kinds[int(rng.choice(len(self.kinds), p=self.p))]
        cand = targets[:, None] - self.context - 1 - np.arange(w)[None]          # (B, W), newest first
        valid = cand >= ep_starts[:, None]
        cand_c = np.maximum(cand, 0)
        steps = cand_c - ep_starts[:, None]
        if self.cfg.future > 0 and kind == "fov":
            ends = self.episode_ends[np.searchsorted(self.episode_ends, targets, side="right")]
            after = targets[:, None] + self.context + 1 + np.arange(self.cfg.future)[None]
            cand_c = np.concatenate([cand_c, np.minimum(after, ends[:, None] - 1)], 1)
            valid = np.concatenate([valid, after < ends[:, None]], 1)
            # aged by their distance in time, as if seen that long before: the retrievers take only past steps
            steps = np.concatenate([steps, 2 * targets[:, None] - after - ep_starts[:, None]], 1)
            w = cand_c.shape[1]
        if self.cfg.map_share > 0 and kind != "none" and rng.random() < self.cfg.map_share:
            extra, ok = self._map_candidates(targets, poses, ep_starts)
            cand_c = np.concatenate([cand_c, extra], 1)
            valid = np.concatenate([valid, ok], 1)
            steps = np.concatenate([steps, np.full_like(extra, MAP_STEP)], 1)
            w = cand_c.shape[1]
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
                     steps=torch.from_numpy(steps).to(dev), valid=torch.from_numpy(valid).to(dev), m=m)
        picked = cand_t.gather(1, r.indices)
        mem = latents[picked] * r.mask[:, :, None, None, None]
        rel = relative_pose(poses[picked], query_pose[:, None]) * r.mask[:, :, None]
        return mem, rel, r.mask

    def _map_candidates(self, targets: np.ndarray, poses: torch.Tensor,
                        ep_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global indices ``(B, map_candidates)`` of the map frames nearest each target's pose and which are
        eligible: none from its own episode (whose frames the map would otherwise hand over at the very pose)."""
        q = poses[torch.from_numpy(targets)].float()
        mp = poses[torch.from_numpy(self.map_index)].float()
        d = pose_distance(mp[None], q[:, None])
        d[torch.from_numpy(self.map_episode_start[None] == ep_starts[:, None])] = float("inf")
        k = min(self.cfg.map_candidates, len(self.map_index))
        val, idx = d.topk(k, dim=1, largest=False)
        return self.map_index[idx.numpy()], torch.isfinite(val).numpy()

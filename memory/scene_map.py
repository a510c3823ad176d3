"""A scene map: recorded views of the scene by pose, read by the dream's memory beside the episode's own.

On a fixed layout the view is a function of the pose, and the frames of recorded play already show most of it:
with no context at all, the nearest-pose training frame predicts a held-out frame better than the dream draws a
place it has not seen in the episode (docs/results.md, "Scene map"). The map keeps one encoded training frame per
(x, y cell, heading bin); a read adds the entries nearest the query pose to the memory's candidates, and the
retriever picks among all. Its file and how it is built from a dataset: ``envs.data.scene_map``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geometry import pose_distance

#: the step a map entry counts as stored at (episodes count from 0): long before, so that among views that
#: cover the query alike the fov retriever's age penalty prefers the episode's own
MAP_STEP = -1000


@dataclass
class SceneMap:
    """``latents (P, C, h, w)`` normalised, ``poses (P, 3)``; ``autoencoder``: the encoder's fingerprint."""

    latents: torch.Tensor
    poses: torch.Tensor
    autoencoder: str

    def __len__(self) -> int:
        return len(self.poses)

    def to(self, device: torch.device | str) -> SceneMap:
        return SceneMap(self.latents.to(device), self.poses.to(device), self.autoencoder)

    def nearest(self, query_pose: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The ``k`` entries nearest each query pose ``(N, 3)``: latents ``(N, k, C, h, w)``, poses ``(N, k, 3)``
        and their indices in the map ``(N, k)``."""
        k = min(k, len(self))
        j = pose_distance(self.poses[None], query_pose[:, None]).topk(k, dim=1, largest=False).indices
        return self.latents[j], self.poses[j], j


def map_cells(poses: np.ndarray, cell: float, yaw_bins: int) -> np.ndarray:
    """Index of the first frame in each (x cell, y cell, heading bin) of ``poses (N, 3)``, in frame order."""
    if cell <= 0 or yaw_bins < 1:
        raise ValueError(f"cell must be > 0 and yaw_bins >= 1, got {cell} and {yaw_bins}")
    key = np.stack([np.floor(poses[:, 0] / cell), np.floor(poses[:, 1] / cell),
                    np.floor((poses[:, 2] + np.pi) / (2 * np.pi) * yaw_bins) % yaw_bins], 1).astype(np.int64)
    return np.sort(np.unique(key, axis=0, return_index=True)[1])

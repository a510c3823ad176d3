"""A scene map: recorded views of the scene by pose, read by the dream's memory beside the episode's own.

MemoryRooms' layout is the same in every episode, so its view is a function of the pose, and the frames of
recorded play already show most of it: with no context at all, the nearest-pose training frame predicts
a held-out frame better than the dream draws a place it has not seen in the episode (figures in
docs/results.md, "a scene map"). The map keeps one encoded training frame per (x, y cell, heading bin); a read
adds the entries nearest the query pose to the memory's candidates, and the retriever picks among all.

File: safetensors (``worldmodels.checkpoint.save_tensors``) with ``latents (P, C, h, w)`` (normalised, as
the denoiser reads them), ``poses (P, 3)`` and the fingerprint of the autoencoder that encoded them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from envs.dataset import FrameArrays
from envs.encoded_dataset import autoencoder_fingerprint
from memory import pose_distance
from worldmodels.autoencoder import encode_raw
from worldmodels.checkpoint import CheckpointError, load_tensors, save_tensors
from worldmodels.world_model import WorldModel

FORMAT = "memworld-scene-map-1"
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

    def check_model(self, model: WorldModel, path: str | Path) -> None:
        if autoencoder_fingerprint(model) != self.autoencoder:
            raise ValueError(f"scene map {path} was encoded by another autoencoder than the dream's model: "
                             f"build one for it with memworld build-map checkpoint=<its checkpoint>")

    def save(self, path: str | Path) -> None:
        save_tensors(path, {"latents": self.latents, "poses": self.poses},
                     {"format": FORMAT, "autoencoder": self.autoencoder})

    @classmethod
    def load(cls, path: str | Path) -> SceneMap:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no scene map at {path}: make one with memworld build-map")
        try:
            t, meta = load_tensors(path)
        except CheckpointError as e:
            raise ValueError(f"{path} is not a readable scene map: {e}") from e
        if meta.get("format") != FORMAT or not {"latents", "poses"} <= set(t):
            raise ValueError(f"{path} is not a scene map (format {meta.get('format')!r}, want {FORMAT!r})")
        return cls(t["latents"].float(), t["poses"].float(), meta["autoencoder"])


def map_cells(poses: np.ndarray, cell: float, yaw_bins: int) -> np.ndarray:
    """Index of the first frame in each (x cell, y cell, heading bin) of ``poses (N, 3)``, in frame order."""
    if cell <= 0 or yaw_bins < 1:
        raise ValueError(f"cell must be > 0 and yaw_bins >= 1, got {cell} and {yaw_bins}")
    key = np.stack([np.floor(poses[:, 0] / cell), np.floor(poses[:, 1] / cell),
                    np.floor((poses[:, 2] + np.pi) / (2 * np.pi) * yaw_bins) % yaw_bins], 1).astype(np.int64)
    return np.sort(np.unique(key, axis=0, return_index=True)[1])


def build_scene_map(model: WorldModel, arrays: FrameArrays, cell: float = 0.5, yaw_bins: int = 16,
                    precision: str = "fp32") -> SceneMap:
    """One frame of ``arrays`` per (cell x cell square, heading bin), encoded by ``model``."""
    pick = map_cells(arrays.poses, cell, yaw_bins)
    z = encode_raw(model.autoencoder, arrays.frames[pick], precision)
    z = (z - model.latent_mean[:, None, None]) / model.latent_std[:, None, None]
    return SceneMap(z, torch.from_numpy(arrays.poses[pick]).float(), autoencoder_fingerprint(model))

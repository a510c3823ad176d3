"""Scene-map files (``memory.scene_map.SceneMap``): built from recorded play by a checkpoint's encoder, saved and
loaded as safetensors (``worldmodels.checkpoint``) with ``latents (P, C, h, w)`` (normalised, as the denoiser
reads them), ``poses (P, 3)`` and the fingerprint of the autoencoder that encoded them."""

from __future__ import annotations

from pathlib import Path

import torch

from envs.data.dataset import FrameArrays
from envs.data.encoded_dataset import autoencoder_fingerprint
from memory.scene_map import SceneMap, map_cells
from worldmodels.autoencoder import encode_raw
from worldmodels.checkpoint import CheckpointError, load_tensors, save_tensors
from worldmodels.world_model import WorldModel

FORMAT = "memworld-scene-map-1"


def save_scene_map(smap: SceneMap, path: str | Path) -> None:
    save_tensors(path, {"latents": smap.latents, "poses": smap.poses}, {"format": FORMAT, "autoencoder": smap.autoencoder})


def load_scene_map(path: str | Path, model: WorldModel | None = None) -> SceneMap:
    """The map at ``path``; with ``model``, also checked to be encoded by that model's autoencoder."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no scene map at {path}: make one with memworld build-map")
    try:
        t, meta = load_tensors(path)
    except CheckpointError as e:
        raise ValueError(f"{path} is not a readable scene map: {e}") from e
    if meta.get("format") != FORMAT or not {"latents", "poses"} <= set(t):
        raise ValueError(f"{path} is not a scene map (format {meta.get('format')!r}, want {FORMAT!r})")
    smap = SceneMap(t["latents"].float(), t["poses"].float(), meta["autoencoder"])
    if model is not None and autoencoder_fingerprint(model) != smap.autoencoder:
        raise ValueError(f"scene map {path} was encoded by another autoencoder than the dream's model: "
                         f"build one for it with memworld build-map checkpoint=<its checkpoint>")
    return smap


def build_scene_map(model: WorldModel, arrays: FrameArrays, cell: float = 0.5, yaw_bins: int = 16,
                    precision: str = "fp32") -> SceneMap:
    """One frame of ``arrays`` per (cell x cell square, heading bin), encoded by ``model``."""
    pick = map_cells(arrays.poses, cell, yaw_bins)
    z = encode_raw(model.autoencoder, arrays.frames[pick], precision)
    z = (z - model.latent_mean[:, None, None]) / model.latent_std[:, None, None]
    return SceneMap(z, torch.from_numpy(arrays.poses[pick]).float(), autoencoder_fingerprint(model))

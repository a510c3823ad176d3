"""A dataset encoded once by a world model's autoencoder: latents in place of frames.

Training a denoiser on a frozen autoencoder only ever reads latents, so the frames (12 KiB each) can
stay behind: an encoded file holds 1 or 2 bytes per latent value (1 KiB or 2 KiB a frame at 16x16x4)
beside the poses, actions, rewards and episode bounds. It names the autoencoder that made it by a
fingerprint of its weights, so latents are never paired with another autoencoder by mistake.

File: one safetensors file (``worldmodels.checkpoint.save_tensors``: written whole or not at all).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from envs.data.dataset import DatasetError, FrameArrays
from worldmodels.autoencoder import encode_raw
from worldmodels.checkpoint import CheckpointError, load_metadata, load_tensors, save_tensors
from worldmodels.world_model import WorldModel

FORMAT = "memworld-encoded-1"
DTYPES = ("float16", "uint8")
_ARRAYS = ("poses", "actions", "rewards", "terminations", "starts", "lengths")


@dataclass
class EncodedDataset:
    """``arrays``: the dataset's ``FrameArrays`` with ``frames=None``; ``latents (N, C, h, w)`` float32,
    raw (not normalised) encoder outputs of its N frames; ``meta``: what the file says of itself."""

    arrays: FrameArrays
    latents: torch.Tensor
    meta: dict[str, Any]


def autoencoder_fingerprint(model: WorldModel) -> str:
    """Hex digest of the encoder's weights and the latent statistics: equal exactly when two models encode
    and normalise alike (a new decoder, from train-decoder, keeps it)."""
    h = hashlib.sha256()
    state = {**model.autoencoder.encoder.state_dict(), "latent_mean": model.latent_mean, "latent_std": model.latent_std}
    for k, v in sorted(state.items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def is_encoded(path: str | Path) -> bool:
    """Whether ``path`` names an encoded file (a dataset folder does not)."""
    return Path(path).suffix == ".safetensors"


def encode_arrays(model: WorldModel, arrays: FrameArrays, precision: str = "fp32",
                   device: str | torch.device = "cpu", progress: bool = False) -> torch.Tensor:
    """Raw latents ``(N, C, h, w)`` float32 of every frame of ``arrays``, on the CPU."""
    return encode_raw(model.autoencoder.to(device), arrays.frames, precision, device, progress=progress).cpu()


def save_encoded(path: str | Path, arrays: FrameArrays, latents: torch.Tensor, meta: dict[str, Any],
                 dtype: str = "float16") -> dict[str, float]:
    """Write ``latents (N, C, h, w)`` with ``arrays``' poses, actions, rewards and episodes to ``path``.

    ``dtype`` float16, or uint8 on each channel's own [min, max] (half the size; the error is
    uniform, std = step / sqrt(12)). Returns ``{"bytes", "rms_error"}`` (rms_error in latent units).
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    if len(latents) != len(arrays.poses):
        raise ValueError(f"{len(latents)} latents for {len(arrays.poses)} frames")
    z = latents.float()
    tensors = {k: torch.from_numpy(np.asarray(getattr(arrays, k))) for k in _ARRAYS}
    if dtype == "uint8":
        lo, hi = z.amin(dim=(0, 2, 3)), z.amax(dim=(0, 2, 3))
        scale = (hi - lo).clamp_min(1e-8) / 255
        q = ((z - lo[:, None, None]) / scale[:, None, None]).round().clamp(0, 255).to(torch.uint8)
        tensors |= {"latents": q, "latent_lo": lo, "latent_scale": scale}
        back = q.float() * scale[:, None, None] + lo[:, None, None]
    else:
        tensors["latents"] = z.half()
        back = z.half().float()
    rms = float((back - z).pow(2).mean().sqrt())
    path = Path(path)
    save_tensors(path, tensors, {**meta, "format": FORMAT, "n_actions": arrays.n_actions, "dtype": dtype,
                                 "rms_error": rms})
    return {"bytes": float(path.stat().st_size), "rms_error": rms}


def read_encoded_meta(path: str | Path) -> dict[str, Any]:
    """The file's own description (``n_actions``, ``source``, ``autoencoder`` fingerprint, ...), header only."""
    if not Path(path).is_file():
        raise DatasetError(f"no encoded dataset at {path}: make one with memworld encode-dataset")
    try:
        meta = load_metadata(path)
    except CheckpointError as e:
        raise DatasetError(f"{path} is not a readable encoded dataset: {e}") from e
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{path} is not an encoded dataset (format {meta.get('format')!r}, want {FORMAT!r})")
    return meta


def load_encoded(path: str | Path) -> EncodedDataset:
    """Read an encoded file written by ``save_encoded``."""
    meta = read_encoded_meta(path)
    try:
        t, _ = load_tensors(path)
    except CheckpointError as e:
        raise DatasetError(f"{path} is not a readable encoded dataset: {e}") from e
    need = ("latents", *_ARRAYS, *(("latent_lo", "latent_scale") if meta.get("dtype") == "uint8" else ()))
    missing = [k for k in need if k not in t]
    if missing:
        raise DatasetError(f"{path} lacks {', '.join(missing)}")
    z = t["latents"].float()
    if t["latents"].dtype == torch.uint8:
        z = z * t["latent_scale"][:, None, None] + t["latent_lo"][:, None, None]
    a = {k: t[k].numpy() for k in _ARRAYS}
    arrays = FrameArrays(None, a["poses"], a["actions"], a["rewards"], a["terminations"], a["starts"], a["lengths"],
                         int(meta["n_actions"]))
    if len(z) != len(arrays.poses) or int(arrays.lengths.sum()) != len(z):
        raise DatasetError(f"{path}: {len(z)} latents, {len(arrays.poses)} poses, episodes of {arrays.lengths.sum()} frames")
    return EncodedDataset(arrays, z, meta)

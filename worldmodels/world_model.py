"""``WorldModel``: autoencoder + EDM denoiser + heads, with latent statistics, sampling and save/load.

A checkpoint is one safetensors file holding every weight and, in its header, the JSON
config (format version, source env, training command, part configs). Written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worldmodels.autoencoder import Autoencoder, AutoencoderConfig, to_uint8, to_unit
from worldmodels.checkpoint import CheckpointError, atomic_write_bytes, load_tensors, save_tensors
from worldmodels.depth import DepthConfig, DepthNet
from worldmodels.edm import EDMLossConfig, EDMPrecond
from worldmodels.heads import DONE_POS_WEIGHT, Heads, HeadsConfig
from worldmodels.sampling import get_sampler, get_sigmas_karras
from worldmodels.unet import DenoiserConfig, DenoiserUNet

FORMAT_VERSION = 1
DONE_THRESHOLD = math.log(DONE_POS_WEIGHT)


@dataclass
class SamplerConfig:
    """Which sampler, how many steps, and the Karras schedule's range."""

    name: str = "euler"
    steps: int = 1
    sigma_min: float = 0.002
    sigma_max: float = 5.0
    rho: float = 7.0

    def __post_init__(self) -> None:
        get_sampler(self.name)
        if self.steps < 1:
            raise ValueError(f"sampler steps must be >= 1, got {self.steps}")


@dataclass
class WorldModelConfig:
    """Everything needed to rebuild a ``WorldModel``."""

    source: str = "miniworld"
    n_actions: int = 3
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    loss: EDMLossConfig = field(default_factory=EDMLossConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)     # disabled: no depth head
    sigma_data: float = 1.0
    memory_m: int = 4                 # memory frames read per step

    def __post_init__(self) -> None:
        if (self.heads.pose_prev or self.heads.blocked) and self.denoiser.context < 2:
            raise ValueError(f"a pose_prev or blocked head reads the previous latent: it needs a context of at least "
                             f"2 frames, got {self.denoiser.context}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorldModelConfig:
        def build(dc, v):
            kw = {}
            for f in dataclasses.fields(dc):
                if f.name in v:
                    val = v[f.name]
                    kw[f.name] = tuple(val) if isinstance(val, list) else val
            return dc(**kw)
        parts = {"autoencoder": AutoencoderConfig, "denoiser": DenoiserConfig, "heads": HeadsConfig,
                 "loss": EDMLossConfig, "sampler": SamplerConfig, "depth": DepthConfig}
        top = {k: v for k, v in d.items() if k not in parts and k in {f.name for f in dataclasses.fields(cls)}}
        if "denoiser" in d:
            # checkpoints written before the memory position code and stacked memory existed have neither
            d = {**d, "denoiser": {"memory_pos": False, "memory_stack": False, **d["denoiser"]}}
        return cls(**top, **{k: build(dc, d.get(k, {})) for k, dc in parts.items()})


class WorldModel(nn.Module):
    """The bundle. Latents are normalised per channel: ``(enc(x) - mean) / std``."""

    def __init__(self, cfg: WorldModelConfig):
        super().__init__()
        self.cfg = cfg
        self.autoencoder = Autoencoder(cfg.autoencoder)
        self.denoiser = EDMPrecond(DenoiserUNet(cfg.denoiser), sigma_data=cfg.sigma_data)
        self.heads = Heads(cfg.heads)
        self.depth_net = DepthNet(cfg.depth) if cfg.depth.enabled else None
        c = cfg.autoencoder.latent_channels
        self.register_buffer("latent_mean", torch.zeros(c))
        self.register_buffer("latent_std", torch.ones(c))
        self.meta: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    @property
    def context(self) -> int:
        return self.cfg.denoiser.context

    # --- frames <-> normalised latents (inference: no autograd graph is kept) ---------------
    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``(..., 64, 64, 3)`` uint8 -> normalised latents ``(..., C, 16, 16)``."""
        lead = frames.shape[:-3]
        z = self.autoencoder.encode(to_unit(frames.reshape(-1, *frames.shape[-3:]).to(self.device)))
        z = (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]
        return z.reshape(*lead, *z.shape[1:])

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``(..., C, 16, 16)`` -> frames ``(..., 64, 64, 3)`` uint8."""
        lead = z.shape[:-3]
        z = z.reshape(-1, *z.shape[-3:]) * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        return to_uint8(self.autoencoder.decode(z)).reshape(*lead, 64, 64, 3)

    @torch.no_grad()
    def predict_depth(self, frames: torch.Tensor) -> torch.Tensor:
        """``(..., 64, 64, 3)`` uint8 (decoded frames) -> depth ``(..., 64, 64)`` float, scene units, from the depth
        head (``memworld train-depth``); ``ValueError`` if this model has none."""
        if self.depth_net is None:
            raise ValueError("this world model has no depth head; fit one with memworld train-depth")
        lead = frames.shape[:-3]
        d = self.depth_net.depth(to_unit(frames.reshape(-1, *frames.shape[-3:]).to(self.device)))
        return d.reshape(*lead, *d.shape[-2:])

    # --- one dream step in latent space ------------------------------------------------
    @torch.no_grad()
    def sample_next(self, context: torch.Tensor, actions: torch.Tensor, memory: torch.Tensor | None = None,
                    memory_pose: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None,
                    sampler: SamplerConfig | None = None, generator: torch.Generator | None = None,
                    aug: torch.Tensor | None = None, denoiser: nn.Module | None = None) -> torch.Tensor:
        """Next latent ``(B, C, H, W)`` from ``context (B, K, C, H, W)`` and ``actions (B, K)``;
        ``aug (B,)``: the context's announced augmentation level (0 when clean); ``denoiser``: another copy
        of this model's denoiser to sample with (training's EMA)."""
        s = sampler or self.cfg.sampler
        b, k, c, h, w = context.shape
        sigmas = get_sigmas_karras(s.steps, s.sigma_min, s.sigma_max, s.rho, device=context.device)
        x = torch.randn((b, c, h, w), generator=generator, device=context.device) * sigmas[0]
        den = self.denoiser if denoiser is None else denoiser
        return get_sampler(s.name)(den, x, sigmas, context=context, actions=actions, aug=aug,
                                   memory=memory, memory_pose=memory_pose, memory_mask=memory_mask)

    @torch.no_grad()
    def predict_next(self, context: torch.Tensor, actions: torch.Tensor, memory: dict[str, torch.Tensor] | None = None,
                     generator: torch.Generator | None = None):
        """Frames in, frame out: ``context (B, K, 64, 64, 3)`` uint8, ``actions (B, K)`` ->
        ``(frame (B, 64, 64, 3) uint8, reward (B,), terminated (B,) bool, dpose (B, 3))``; a move the blocked
        head (if any) stops gives the last frame again and a zero ``dpose``.

        ``memory``, if given: ``{"frames": (B, M, 64, 64, 3) uint8, "rel_pose": (B, M, 3), "mask": (B, M)}``.
        """
        z_ctx = self.encode(context)
        actions = actions.to(self.device).long()
        mem = {}
        if memory is not None:
            mem = {"memory": self.encode(memory["frames"]), "memory_pose": memory["rel_pose"].to(self.device),
                   "memory_mask": memory.get("mask")}
        z_next = self.sample_next(z_ctx, actions, generator=generator, **mem)
        last, a = z_ctx[:, -1], actions[:, -1]
        dpose, blocked = self.heads.move_from_context(z_ctx, actions)
        z_next = torch.where(blocked[:, None, None, None], last, z_next)     # a blocked move shows the same view
        reward, done_logit = self.heads.reward_done(last, a, z_next)
        return self.decode(z_next), reward, done_logit > DONE_THRESHOLD, dpose

    # --- save / load ---------------------------------------------------------------
    def save(self, path: str | Path, **meta: Any) -> None:
        """Write weights + JSON config to ``path`` (safetensors), atomically; a readable ``.json`` beside it."""
        info = {"format_version": FORMAT_VERSION, "source": self.cfg.source, "config": self.cfg.to_dict(),
                **self.meta, **meta}
        save_tensors(path, dict(self.state_dict()), info)
        atomic_write_bytes(Path(str(path) + ".json"), json.dumps(info, indent=2, default=str).encode())

    @classmethod
    def load(cls, path: str | Path, source: str | None = None, device: str | torch.device = "cpu") -> WorldModel:
        """Load a checkpoint; ``CheckpointError`` if it is corrupt, too old, or for another ``source``."""
        tensors, info = load_tensors(path)
        version = info.get("format_version")
        if version != FORMAT_VERSION:
            raise CheckpointError(f"checkpoint {path} has format version {version!r}; this memworld reads "
                                  f"version {FORMAT_VERSION} (retrain or convert it)")
        if source is not None and info.get("source") != source:
            raise CheckpointError(f"checkpoint {path} was trained on source {info.get('source')!r}, not {source!r}")
        model = cls(WorldModelConfig.from_dict(info["config"]))
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"checkpoint {path} does not match its config: missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]}")
        model.meta = {k: v for k, v in info.items() if k not in ("config",)}
        return model.to(device).eval()

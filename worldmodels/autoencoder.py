"""Convolutional autoencoder: ``(B, 3, 64, 64)`` in [-1, 1] <-> latents ``(B, C, 16, 16)``.

The decoder is kept light (it runs every dream step); the encoder runs once per real
frame and may be heavier. Two decoders:

- ``upsample``: nearest upsampling and convolutions at 16, 32 and 64 (16 channels at 64x64);
- ``subpixel``: all its work at 16x16 and 32x32 with wider channels, each 2x step a convolution
  to 4x the channels and a pixel shuffle (Shi et al. 2016), the last one straight to RGB. About the
  same FLOPs, but no 64x64 feature map: its memory-bound norms and activations touch a quarter of
  the data, and it decodes ~1.7x faster on this CPU (``memworld train-decoder`` retrains one on a
  frozen encoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from worldmodels.precision import autocast_for


@dataclass
class AutoencoderConfig:
    """Channels per resolution (64, 32, 16) and latent channels."""

    latent_channels: int = 4
    enc_channels: tuple[int, ...] = (16, 32, 64)
    dec_channels: tuple[int, ...] = (48, 32, 16)  # upsample decoder: at 16, 32, 64
    decoder: str = "upsample"                       # upsample | subpixel (checkpoints without the key: upsample)
    subpixel_channels: tuple[int, ...] = (64, 32)   # subpixel decoder: at 16, 32

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {self.decoder!r}; choose one of {sorted(DECODERS)}")
        if len(self.subpixel_channels) != 2 or min(self.subpixel_channels) < 1:
            raise ValueError(f"subpixel_channels are two channel counts (at 16x16 and 32x32), got {self.subpixel_channels}")


class ResConv(nn.Module):
    """Two 3x3 convs with a residual connection."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
                                  nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        c64, c32, c16 = cfg.enc_channels
        self.net = nn.Sequential(
            nn.Conv2d(3, c64, 3, padding=1), ResConv(c64),
            nn.Conv2d(c64, c32, 4, stride=2, padding=1), ResConv(c32),
            nn.Conv2d(c32, c16, 4, stride=2, padding=1), ResConv(c16), ResConv(c16),
            nn.GroupNorm(min(8, c16), c16), nn.SiLU(), nn.Conv2d(c16, cfg.latent_channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        c16, c32, c64 = cfg.dec_channels
        up = lambda: nn.Upsample(scale_factor=2, mode="nearest")
        self.net = nn.Sequential(
            nn.Conv2d(cfg.latent_channels, c16, 3, padding=1), ResConv(c16),
            up(), nn.Conv2d(c16, c32, 3, padding=1), ResConv(c32),
            up(), nn.Conv2d(c32, c64, 3, padding=1), ResConv(c64),
            nn.GroupNorm(min(8, c64), c64), nn.SiLU(), nn.Conv2d(c64, 3, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class SubpixelDecoder(nn.Module):
    """Two residual blocks at 16x16, one at 32x32, then RGB at 64x64 by a pixel shuffle."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        c16, c32 = cfg.subpixel_channels
        self.net = nn.Sequential(
            nn.Conv2d(cfg.latent_channels, c16, 3, padding=1), ResConv(c16), ResConv(c16),
            nn.Conv2d(c16, 4 * c32, 3, padding=1), nn.PixelShuffle(2), ResConv(c32),
            nn.GroupNorm(min(8, c32), c32), nn.SiLU(), nn.Conv2d(c32, 4 * 3, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


DECODERS = {"upsample": Decoder, "subpixel": SubpixelDecoder}


def build_decoder(cfg: AutoencoderConfig) -> nn.Module:
    return DECODERS[cfg.decoder](cfg)


class Autoencoder(nn.Module):
    """Deterministic autoencoder; ``encode``/``decode`` work on [-1, 1] images."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder, self.decoder = Encoder(cfg), build_decoder(cfg)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, 64, 64)`` -> ``(B, C, 16, 16)``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, C, 16, 16)`` -> ``(B, 3, 64, 64)``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction ``(B, 3, 64, 64)`` and latents ``(B, C, 16, 16)`` (one call, so DDP syncs both)."""
        z = self.encode(x)
        return self.decode(z), z


@torch.no_grad()
def encode_raw(ae: Autoencoder, frames: np.ndarray, precision: str = "fp32", device: str | torch.device = "cpu",
               chunk: int = 512, progress: bool = False) -> torch.Tensor:
    """Encoder latents ``(N, C, 16, 16)`` (raw, not normalised) of uint8 frames ``(N, 64, 64, 3)``, ``chunk`` at a
    time under ``precision``'s autocast; ``ae`` is left in eval mode."""
    ae.eval()
    device = torch.device(device)
    out = []
    for i in tqdm(range(0, len(frames), chunk), desc="encode", disable=not progress):
        with autocast_for(precision, device):
            out.append(ae.encode(to_unit(torch.from_numpy(frames[i:i + chunk]).to(device))).float())
    return torch.cat(out)


def to_unit(frames_uint8: torch.Tensor) -> torch.Tensor:
    """``(..., H, W, 3)`` uint8 -> ``(..., 3, H, W)`` float in [-1, 1]."""
    return frames_uint8.movedim(-1, -3).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` in [-1, 1] -> ``(..., H, W, 3)`` uint8; NaN maps to 0, always valid."""
    x = torch.nan_to_num(x.float(), nan=-1.0, posinf=1.0, neginf=-1.0)   # bf16 cannot hold 0..255 in steps of 1
    return x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).movedim(-3, -1)

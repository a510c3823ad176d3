"""Retrain only the decoder of a trained world model, on latents of its frozen encoder.

The denoiser, heads and latent statistics live in the encoder's latent space, so a new decoder
(e.g. the faster ``subpixel`` one) slots in without touching them: only the frames the dream
shows change, by the difference in reconstruction.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from worldmodels.autoencoder import AutoencoderConfig, build_decoder, encode_raw, to_unit
from worldmodels.precision import autocast_for, check_precision
from worldmodels.world_model import WorldModel


@dataclass
class DecoderTrainConfig:
    decoder: str = "subpixel"
    channels: tuple[int, ...] = (64, 32)   # the subpixel decoder's channels at 16 and 32
    steps: int = 5000
    batch: int = 32
    lr: float = 2e-3
    seed: int = 0
    precision: str = "auto"                # bf16 autocast where the CPU has it; weights and Adam stay fp32

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.lr <= 0:
            raise ValueError(f"steps, batch and lr must be positive, got {self.steps}, {self.batch}, {self.lr}")
        check_precision(self.precision)
        AutoencoderConfig(decoder=self.decoder)         # an unknown decoder is refused before any work


def retrain_decoder(model: WorldModel, frames: np.ndarray, cfg: DecoderTrainConfig,
                    progress: bool = True) -> tuple[WorldModel, float]:
    """A copy of ``model`` with a new ``cfg.decoder`` decoder fitted by pixel MSE to ``frames (N, 64, 64, 3)``
    uint8 from the frozen encoder's latents (the autoencoder's own loss, less its latent penalty, which
    only matters while the latents move). Returns the copy and the seconds spent (encoding included)."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    latents = encode_raw(model.autoencoder, frames, cfg.precision, model.device)
    new = copy.deepcopy(model)
    ae_cfg = copy.deepcopy(model.cfg.autoencoder)
    ae_cfg.decoder = cfg.decoder
    if cfg.decoder == "subpixel":
        ae_cfg.subpixel_channels = tuple(cfg.channels)
    decoder = build_decoder(ae_cfg).to(model.device).train()
    opt = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    bar = tqdm(range(cfg.steps), desc="decoder", disable=not progress)
    for step in bar:
        idx = rng.integers(0, len(frames), cfg.batch)
        x = to_unit(torch.from_numpy(frames[idx]).to(model.device))
        with autocast_for(cfg.precision, model.device):
            rec = decoder(latents[idx].to(model.device))
        loss = F.mse_loss(rec.float(), x)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"decoder loss is {loss.item()} at step {step}; lower lr (now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0:
            bar.set_postfix(psnr=f"{10 * math.log10(4.0 / max(loss.item(), 1e-10)):.1f}")
    new.autoencoder.decoder = decoder.eval()
    new.cfg.autoencoder = ae_cfg
    new.autoencoder.cfg = ae_cfg
    return new.eval(), time.perf_counter() - t0

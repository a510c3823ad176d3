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
from torch import nn
from tqdm import tqdm

from worldmodels.autoencoder import AutoencoderConfig, build_decoder, encode_raw, to_unit
from worldmodels.discriminator import PatchDiscriminator, adaptive_weight, hinge_d_loss
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
    # weight of a patch critic's loss against the pixel MSE (VQGAN's adaptive balance; 0: MSE alone). The critic
    # and its term join after a quarter of the steps (the critic learns from then on; the shipped decoder's recipe)
    adversarial: float = 0.0
    from_current: bool = False             # start from the model's own decoder (same kind and channels)
    # share of each batch decoded from the denoiser's one-step estimate of the frame (from the K real frames and
    # actions before it, no memory) instead of the encoder's latent: the blurred latents the dream decodes
    denoised_share: float = 0.0
    denoised_frames: int = 8192            # frames whose estimate is computed once, before training

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.lr <= 0:
            raise ValueError(f"steps, batch and lr must be positive, got {self.steps}, {self.batch}, {self.lr}")
        if self.adversarial < 0:
            raise ValueError(f"adversarial is a weight >= 0, got {self.adversarial}")
        if not 0.0 <= self.denoised_share <= 1.0:
            raise ValueError(f"denoised_share is a share in [0, 1], got {self.denoised_share}")
        if self.denoised_frames < 1:
            raise ValueError(f"denoised_frames must be >= 1, got {self.denoised_frames}")
        check_precision(self.precision)
        AutoencoderConfig(decoder=self.decoder)         # an unknown decoder is refused before any work


@torch.no_grad()
def one_step_latents(model: WorldModel, latents: torch.Tensor, actions: np.ndarray, window_starts: np.ndarray,
                     n: int, rng: np.random.Generator, chunk: int = 256) -> tuple[np.ndarray, torch.Tensor]:
    """The denoiser's estimate of ``n`` frames drawn at random, each from the K real frames and actions before it
    (the model's own sampler, no memory). ``latents (N, C, 16, 16)``: raw encoder latents of every frame;
    ``actions (N,)``; ``window_starts``: the i whose frames i .. i+K lie in one episode. Returns the targets'
    indices ``(n,)`` and their estimated raw latents ``(n, C, 16, 16)``."""
    k = model.context
    mean, std = model.latent_mean[:, None, None], model.latent_std[:, None, None]
    starts = rng.choice(window_starts, size=min(n, len(window_starts)), replace=False)
    out = []
    for c in range(0, len(starts), chunk):
        win = starts[c:c + chunk, None] + np.arange(k)
        ctx = (latents[torch.from_numpy(win)].to(model.device) - mean) / std
        acts = torch.from_numpy(actions[win]).to(model.device).long()
        out.append(model.sample_next(ctx, acts) * std + mean)
    return starts + k, torch.cat(out).cpu()


def retrain_decoder(model: WorldModel, frames: np.ndarray, cfg: DecoderTrainConfig, progress: bool = True,
                    actions: np.ndarray | None = None,
                    window_starts: np.ndarray | None = None) -> tuple[WorldModel, float]:
    """A copy of ``model`` with a new ``cfg.decoder`` decoder fitted by pixel MSE to ``frames (N, 64, 64, 3)``
    uint8 from the frozen encoder's latents (the autoencoder's own loss, less its latent penalty, which
    only matters while the latents move), plus a patch critic's hinge loss where ``cfg.adversarial > 0``.
    With ``cfg.denoised_share > 0``, ``actions (N,)`` and ``window_starts`` (see ``one_step_latents``) give the
    denoiser's estimates that share of each batch decodes. Returns the copy and the seconds spent (encoding
    and estimates included)."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    latents = encode_raw(model.autoencoder, frames, cfg.precision, model.device)
    if cfg.denoised_share > 0:
        if actions is None or window_starts is None or len(window_starts) == 0:
            raise ValueError("denoised_share > 0 needs the frames' actions and context windows (window_starts)")
        est_idx, est = one_step_latents(model, latents, actions, window_starts, cfg.denoised_frames, rng)
    new = copy.deepcopy(model)
    ae_cfg = copy.deepcopy(model.cfg.autoencoder)
    ae_cfg.decoder = cfg.decoder
    if cfg.decoder == "subpixel":
        ae_cfg.subpixel_channels = tuple(cfg.channels)
    decoder = build_decoder(ae_cfg).to(model.device).train()
    if cfg.from_current:
        if ae_cfg != model.cfg.autoencoder:
            raise ValueError(f"from_current: the model's decoder is {model.cfg.autoencoder.decoder!r} "
                             f"{model.cfg.autoencoder.subpixel_channels}, not the {cfg.decoder!r} {tuple(cfg.channels)} "
                             "asked for")
        decoder.load_state_dict(model.autoencoder.decoder.state_dict())
    opt = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    critic = PatchDiscriminator().to(model.device).train() if cfg.adversarial > 0 else None
    opt_d = torch.optim.AdamW(critic.parameters(), lr=cfg.lr / 4, betas=(0.5, 0.9)) if critic else None
    last = [m for m in decoder.modules() if isinstance(m, nn.Conv2d)][-1].weight
    bar = tqdm(range(cfg.steps), desc="decoder", disable=not progress)
    for step in bar:
        idx = rng.integers(0, len(frames), cfg.batch)
        z = latents[idx]
        if cfg.denoised_share > 0:
            n_est = int(rng.binomial(cfg.batch, cfg.denoised_share))
            pick = rng.integers(0, len(est_idx), n_est)
            idx[:n_est], z[:n_est] = est_idx[pick], est[pick]
        x = to_unit(torch.from_numpy(frames[idx]).to(model.device))
        with autocast_for(cfg.precision, model.device):
            rec = decoder(z.to(model.device))
        rec = rec.float()
        mse = F.mse_loss(rec, x)
        loss = mse
        adversarial = critic is not None and step >= cfg.steps // 4
        if adversarial:
            gen = -critic(rec).mean()
            loss = mse + adaptive_weight(mse, gen, last, cfg.adversarial) * gen
        if not torch.isfinite(loss):
            raise FloatingPointError(f"decoder loss is {loss.item()} at step {step}; lower lr (now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if adversarial:
            d_loss = hinge_d_loss(critic(x), critic(rec.detach()))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        if step % 200 == 0:
            bar.set_postfix(psnr=f"{10 * math.log10(4.0 / max(mse.item(), 1e-10)):.1f}")
    new.autoencoder.decoder = decoder.eval()
    new.cfg.autoencoder = ae_cfg
    new.autoencoder.cfg = ae_cfg
    return new.eval(), time.perf_counter() - t0

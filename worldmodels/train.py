"""Training loops: autoencoder first, then the latent denoiser and the heads together.

Device-agnostic (CUDA when present), resumable from ``<run>/train_state.pt``, EMA of
the denoiser for sampling, NaN guard, clean stop on SIGINT/SIGTERM, and DDP when run
under ``torchrun`` (only rank 0 writes). Memory for each target is drawn by a
retriever callable from the same episode (``retrieve_memory``), so this module does
not import ``memory/``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from worldmodels.autoencoder import encode_raw, to_unit
from worldmodels.checkpoint import weights_fingerprint
from worldmodels.edm import EDMLoss, augment_context, drop_context
from geometry import pose_change, stalled
from worldmodels.heads import DONE_POS_WEIGHT, pose_loss
from worldmodels.precision import autocast_for, check_precision
from worldmodels.prefetch import Prefetcher
from worldmodels.training_state import EMA, StopFlag, check_finite, load_state, save_state
from worldmodels.world_model import WorldModel, WorldModelConfig

#: (targets_global_index (B,), latents, poses, starts) -> (memory (B,M,C,H,W), rel_pose (B,M,3), mask (B,M))
MemoryFn = Callable[[np.ndarray, torch.Tensor, torch.Tensor, np.ndarray, np.ndarray], tuple[torch.Tensor, ...]]


@dataclass
class TrainConfig:
    """Steps and optimisation of each part."""

    ae_steps: int = 3000
    ae_batch: int = 8
    ae_lr: float = 2e-3
    denoiser_steps: int = 5000
    batch: int = 16
    lr: float = 1e-3
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    heldout_episodes: int = 8
    checkpoint_every: int = 250
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    threads: int = 0          # 0: torch's default
    precision: str = "fp32"   # fp32 | bf16 (autocast forward passes; weights, optimiser and EMA stay fp32) | auto
    # self-forcing: a share of each batch sees a context whose last r frames (one r ~ U{1..rollout_max} per
    # batch) the EMA model generated itself, as the dream's context is after r steps, and learns the real next
    # frame from it
    rollout_share: float = 0.0
    rollout_max: int = 4
    # batches made ahead in a background thread while the current one trains (0: none); off with self-forcing,
    # whose batches sample the EMA model that the training step updates
    prefetch: int = 2

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if not 0.0 <= self.rollout_share <= 1.0:
            raise ValueError(f"rollout_share is a share in [0, 1], got {self.rollout_share}")
        if self.rollout_max < 1:
            raise ValueError(f"rollout_max must be >= 1, got {self.rollout_max}")
        for k in ("ae_steps", "denoiser_steps", "prefetch"):
            if getattr(self, k) < 0:
                raise ValueError(f"{k} must be >= 0, got {getattr(self, k)}")
        for k in ("ae_batch", "batch", "checkpoint_every", "log_every"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class DistInfo:
    """Rank and world size; DDP is initialised when torchrun set WORLD_SIZE > 1."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world > 1:
            # batches without memory leave the memory pathway unused
            return torch.nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)
        return module


class Trainer:
    """Trains a ``WorldModel`` on ``FrameArrays`` in ``run_dir``; ``fit()`` runs or resumes."""

    def __init__(self, model_cfg: WorldModelConfig, cfg: TrainConfig, train, heldout, run_dir: str | Path,
                 memory_fn: MemoryFn | None = None, writer=None, meta: dict[str, Any] | None = None,
                 progress: bool = True, init: WorldModel | None = None, autoencoder: WorldModel | None = None,
                 latents: torch.Tensor | None = None):
        self.cfg, self.train, self.heldout = cfg, train, heldout
        self.run = Path(run_dir)
        self.device = pick_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.dist = DistInfo(self.device)
        torch.manual_seed(cfg.seed + self.dist.rank)
        self.rng = np.random.default_rng(cfg.seed + self.dist.rank)
        self.model = WorldModel(model_cfg).to(self.device)
        # the weights this run draws for itself, before any checkpoint is loaded: a run from scratch records them,
        # so that anyone can check that no weight came from a model trained on other data
        fresh = weights_fingerprint(self.model) if init is None and autoencoder is None else None
        self.memory_fn, self.writer, self.progress = memory_fn, writer, progress
        self.meta = {**(meta or {}), "fresh_weights_sha256": fresh}
        self.ema = EMA(self.model.denoiser, cfg.ema_decay)
        self.opt_ae = torch.optim.AdamW(self.model.autoencoder.parameters(), lr=cfg.ae_lr, weight_decay=0.0)
        self.opt_den = torch.optim.AdamW(self.model.denoiser.parameters(), lr=cfg.lr, weight_decay=1e-4)
        self.opt_heads = torch.optim.AdamW(self.model.heads.parameters(), lr=cfg.lr)
        self.ae_step = self.den_step = 0
        self.latents: torch.Tensor | None = None
        self.given_latents = latents    # raw latents of ``train``'s frames, encoded by this autoencoder already
        self.seconds = 0.0
        self.state_path = self.run / "train_state.pt"
        self.keep_latent_stats = False
        # a fine-tune's cost includes that of the checkpoint it starts from
        self.init_minutes = float(init.meta.get("train_minutes_total", init.meta.get("train_minutes", 0.0))) \
            if init is not None else 0.0
        if self.state_path.exists():
            self._resume()
        elif init is not None:
            # fine-tuning: the autoencoder and latent statistics stay as they are; memory parts
            # the config adds (position code, stacked-memory planes) start fresh
            _load_adding(self.model, init.state_dict())
            _load_adding(self.ema.shadow, init.denoiser.state_dict())
            self.model.cfg.sigma_data = init.cfg.sigma_data
            self.ae_step, self.keep_latent_stats = cfg.ae_steps, True
        elif autoencoder is not None:
            # a new denoiser and heads on another model's frozen autoencoder and latent statistics
            self.model.autoencoder.load_state_dict(autoencoder.autoencoder.state_dict())
            self.model.latent_mean.copy_(autoencoder.latent_mean)
            self.model.latent_std.copy_(autoencoder.latent_std)
            self.model.cfg.sigma_data = autoencoder.cfg.sigma_data
            self.ae_step, self.keep_latent_stats = cfg.ae_steps, True
        if latents is not None and init is None and autoencoder is None and not self.state_path.exists():
            raise ValueError("given latents need the autoencoder that encoded them: pass init or autoencoder")
        if latents is not None and len(latents) != len(train.poses):
            raise ValueError(f"given latents must be one per training frame: {len(latents)} for {len(train.poses)}")

    # --- state ------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "ema": self.ema.shadow.state_dict(),
                "opt_ae": self.opt_ae.state_dict(), "opt_den": self.opt_den.state_dict(),
                "opt_heads": self.opt_heads.state_dict(), "ae_step": self.ae_step, "den_step": self.den_step,
                "seconds": self.seconds, "keep_latent_stats": self.keep_latent_stats,
                "sigma_data": self.model.cfg.sigma_data}

    def checkpoint(self) -> None:
        if self.dist.main:
            save_state(self.state_path, self._state())

    def _resume(self) -> None:
        s = load_state(self.state_path)
        self.model.load_state_dict(s["model"])
        self.ema.shadow.load_state_dict(s["ema"])
        self.opt_ae.load_state_dict(s["opt_ae"]), self.opt_den.load_state_dict(s["opt_den"])
        self.opt_heads.load_state_dict(s["opt_heads"])
        self.ae_step, self.den_step, self.seconds = s["ae_step"], s["den_step"], s["seconds"]
        self.keep_latent_stats = s.get("keep_latent_stats", False) or self.den_step > 0
        self.model.cfg.sigma_data = s.get("sigma_data", self.model.cfg.sigma_data)
        self.rng = np.random.default_rng([self.cfg.seed, self.ae_step, self.den_step])
        print(f"resumed from {self.state_path}: autoencoder step {self.ae_step}, denoiser step {self.den_step}")

    def _autocast(self):
        return autocast_for(self.cfg.precision, self.device)

    def _log(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None and self.dist.main:
            self.writer.add_scalar(tag, value, step)

    # --- stage 1: autoencoder ------------------------------------------------------------
    def fit_autoencoder(self, stop: StopFlag) -> None:
        ae = self.dist.wrap(self.model.autoencoder)
        frames = self.train.frames
        bar = tqdm(total=self.cfg.ae_steps, initial=self.ae_step, desc="autoencoder", disable=not self.progress)
        while self.ae_step < self.cfg.ae_steps and not stop.stop:
            t0 = time.perf_counter()
            lr = self.cfg.ae_lr * _cosine(self.ae_step, self.cfg.ae_steps)
            for g in self.opt_ae.param_groups:
                g["lr"] = lr
            idx = self.rng.integers(0, len(frames), self.cfg.ae_batch)
            x = to_unit(torch.from_numpy(frames[idx]).to(self.device))
            with self._autocast():
                rec, z = ae(x)
            rec, z = rec.float(), z.float()
            loss = F.mse_loss(rec, x) + 1e-4 * z.pow(2).mean()
            check_finite(loss, "autoencoder", self.ae_step)
            self.opt_ae.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_ae.step()
            self.ae_step += 1
            self.seconds += time.perf_counter() - t0
            bar.update(1)
            if self.ae_step % self.cfg.log_every == 0:
                psnr = 10 * math.log10(4.0 / max(F.mse_loss(rec.detach().clamp(-1, 1), x).item(), 1e-10))
                bar.set_postfix(loss=f"{loss.item():.5f}", psnr=f"{psnr:.1f}")
                self._log("worldmodel/ae_loss", loss.item(), self.ae_step)
                self._log("worldmodel/ae_train_psnr", psnr, self.ae_step)
            if self.ae_step % self.cfg.checkpoint_every == 0:
                self.checkpoint()
        bar.close()
        self.checkpoint()

    # --- latents and their statistics --------------------------------------------------------
    @torch.no_grad()
    def encode_dataset(self) -> None:
        """Encode every training frame once (the denoiser never runs the encoder) and set the statistics."""
        t0 = time.perf_counter()
        ae = self.model.autoencoder
        if self.given_latents is not None:
            z = self.given_latents.to(self.device)
        else:
            z = encode_raw(ae, self.train.frames, self.cfg.precision, self.device, progress=self.progress)
        if self.den_step == 0:  # encoding is part of training's cost; a resume re-encodes but was paid once
            self.seconds += time.perf_counter() - t0
        if self.den_step == 0 and not self.keep_latent_stats:
            self.model.latent_mean.copy_(z.mean(dim=(0, 2, 3)))
            self.model.latent_std.copy_(z.std(dim=(0, 2, 3)))
        self.latents = (z - self.model.latent_mean[:, None, None]) / self.model.latent_std[:, None, None]
        if not self.keep_latent_stats:
            self.model.cfg.sigma_data = float(self.latents.std())
        self.model.denoiser.sigma_data = self.ema.shadow.sigma_data = self.model.cfg.sigma_data
        ae.train()

    # --- stage 2: denoiser and heads --------------------------------------------------------------
    def batch(self, b: int):
        """A training batch: context, actions, target, memory and head targets at random windows."""
        k = self.model.context
        starts = self._window_starts
        i = starts[self.rng.integers(0, len(starts), b)]
        g = i + k                                                   # target frame (global index)
        win = i[:, None] + np.arange(k)[None]
        lat, tr = self.latents, self.train
        ctx = lat[torch.from_numpy(win)]
        if self.cfg.rollout_share > 0:
            own = np.flatnonzero(self.rng.random(b) < self.cfg.rollout_share)
            if len(own):
                ctx[torch.from_numpy(own)] = self.own_context(g[own], int(self.rng.integers(1, self.cfg.rollout_max + 1)))
        acts = torch.from_numpy(tr.actions[win]).to(self.device)
        target = lat[torch.from_numpy(g)]
        mem = self._memory(g)
        dpose = pose_change(tr.poses[g - 1], tr.poses[g])
        hc = self.model.cfg.heads
        prev = hc.pose_prev or hc.blocked
        heads = {"z": lat[torch.from_numpy(g - 1)], "a": acts[:, -1], "z_next": target,
                 "z_prev": lat[torch.from_numpy(g - 2)] if prev else None, "a_prev": acts[:, -2] if prev else None,
                 "dpose": torch.from_numpy(dpose).to(self.device),
                 "blocked": torch.from_numpy(stalled(dpose).astype(np.float32)).to(self.device) if hc.blocked else None,
                 "reward": torch.from_numpy(tr.rewards[g - 1]).to(self.device),
                 "done": torch.from_numpy(tr.terminations[g - 1].astype(np.float32)).to(self.device)}
        return ctx, acts, target, mem, heads

    def _memory(self, g: np.ndarray) -> dict[str, torch.Tensor]:
        """The denoiser's memory inputs for targets ``g (n,)``, drawn by ``memory_fn`` (none without one)."""
        if self.memory_fn is None:
            return {}
        tr = self.train
        m, rel, mask = self.memory_fn(g, self.latents, torch.from_numpy(tr.poses), tr.starts[tr.episode_of(g)], self.rng)
        return {"memory": m.to(self.device), "memory_pose": rel.to(self.device), "memory_mask": mask.to(self.device)}

    @torch.no_grad()
    def own_context(self, g: np.ndarray, r: int) -> torch.Tensor:
        """The context ``(n, K, C, H, W)`` of targets ``g (n,)`` whose last ``min(r, K)`` frames the EMA denoiser
        generated, one sampler pass each, from the real frames before them with the real actions and memory
        (the dream's situation r steps after its real start). Needs ``g - K - r`` in the targets' episodes.
        With r > K, the real frames g-r .. g-K-1 may also be drawn as memory, where the dream would hold its own."""
        k = self.model.context
        seq = self.latents[torch.from_numpy(g[:, None] - r - k + np.arange(k))]
        for j in range(r):
            t = g - r + j
            acts = torch.from_numpy(self.train.actions[t[:, None] - k + np.arange(k)]).to(self.device)
            with self._autocast():
                z = self.model.sample_next(seq[:, -k:], acts, denoiser=self.ema.shadow, **self._memory(t))
            seq = torch.cat([seq, z.float()[:, None]], 1)
        return seq[:, -k:]

    def fit_denoiser(self, stop: StopFlag) -> None:
        k, r = self.model.context, self.cfg.rollout_max if self.cfg.rollout_share > 0 else 0
        # with self-forcing, every target keeps rollout_max real frames before its context to generate from
        self._window_starts = self.train.window_starts(k + 1 + r) + r
        if len(self._window_starts) == 0:
            raise ValueError(f"no training episode has the {k + 1 + r} frames a sample needs (context {k}, target 1"
                             + (f", {r} to generate the context from: lower train.rollout_max)" if r else ")"))
        den = self.dist.wrap(self.model.denoiser)
        self._heads = self.dist.wrap(self.model.heads)
        loss_fn = EDMLoss(self.model.cfg.loss, self.model.cfg.sigma_data, focus_sigma=self.model.cfg.sampler.sigma_max)
        bar = tqdm(total=self.cfg.denoiser_steps, initial=self.den_step, desc="denoiser", disable=not self.progress)
        depth = self.cfg.prefetch if self.cfg.rollout_share == 0 else 0
        with contextlib.ExitStack() as stack:
            source = stack.enter_context(Prefetcher(lambda: self.batch(self.cfg.batch), depth)).next if depth \
                else lambda: self.batch(self.cfg.batch)
            self._denoiser_steps(stop, den, loss_fn, bar, source)
        bar.close()
        self.checkpoint()

    def _denoiser_steps(self, stop: StopFlag, den, loss_fn: EDMLoss, bar, next_batch: Callable[[], tuple]) -> None:
        while self.den_step < self.cfg.denoiser_steps and not stop.stop:
            t0 = time.perf_counter()
            lr = self.cfg.lr * _cosine(self.den_step, self.cfg.denoiser_steps)
            for opt in (self.opt_den, self.opt_heads):
                for g in opt.param_groups:
                    g["lr"] = lr
            ctx, acts, target, mem, h = next_batch()
            ctx, aug = augment_context(ctx, self.model.cfg.loss.context_aug_max)
            p_drop = self.model.cfg.loss.context_drop
            if p_drop > 0 and mem:
                drop = (torch.rand(len(ctx), device=ctx.device) < p_drop) & mem["memory_mask"].any(1)
                ctx, aug = drop_context(ctx, aug, drop)
            with self._autocast():
                loss, _ = loss_fn(den, target, context=ctx, actions=acts, aug=aug, **mem)
            loss = loss.float()
            check_finite(loss, "denoiser", self.den_step)
            self.opt_den.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.denoiser.parameters(), self.cfg.grad_clip)
            self.opt_den.step()
            self.ema.update(self.model.denoiser)
            hl = self._heads_loss(h)
            check_finite(hl, "heads", self.den_step)
            self.opt_heads.zero_grad(set_to_none=True)
            hl.backward()
            self.opt_heads.step()
            self.den_step += 1
            self.seconds += time.perf_counter() - t0
            bar.update(1)
            if self.den_step % self.cfg.log_every == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", heads=f"{hl.item():.4f}")
                self._log("worldmodel/denoiser_loss", loss.item(), self.den_step)
                self._log("worldmodel/heads_loss", hl.item(), self.den_step)
            if self.den_step % self.cfg.checkpoint_every == 0:
                self.checkpoint()

    def _heads_loss(self, h: dict[str, torch.Tensor]) -> torch.Tensor:
        dpose, reward, done_logit, blocked_logit = self._heads(h["z"], h["a"], h["z_next"], h["z_prev"], h["a_prev"])
        done_loss = F.binary_cross_entropy_with_logits(done_logit, h["done"], pos_weight=torch.tensor(DONE_POS_WEIGHT))
        loss = pose_loss(dpose, h["dpose"]) + F.mse_loss(reward, h["reward"]) + done_loss
        if blocked_logit is not None:
            loss = loss + F.binary_cross_entropy_with_logits(blocked_logit, h["blocked"])
        return loss

    # --- all stages --------------------------------------------------------------------------
    def fit(self) -> WorldModel:
        """Run (or resume) every stage; return the model with EMA denoiser weights."""
        with StopFlag() as stop:
            self.fit_autoencoder(stop)
            if stop.stop:
                raise KeyboardInterrupt(f"stopped during autoencoder training; resume from {self.state_path}")
            self.encode_dataset()
            self.fit_denoiser(stop)
            if stop.stop:
                raise KeyboardInterrupt(f"stopped during denoiser training; resume from {self.state_path}")
        return self.final_model()

    def final_model(self) -> WorldModel:
        """A copy of the model whose denoiser carries the EMA weights."""
        import copy

        final = copy.deepcopy(self.model).eval()
        final.denoiser.load_state_dict(self.ema.shadow.state_dict())
        final.meta = {**self.meta, "train_minutes": self.seconds / 60,
                      "train_minutes_total": self.init_minutes + self.seconds / 60,
                      "ae_steps": self.ae_step, "denoiser_steps": self.den_step}
        return final


def _load_adding(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into a model that may add memory parts: the position code starts fresh and
    a stem with extra input planes (stacked memory) gets zero weights on them, so the model starts
    out computing what the checkpoint computed. Anything else missing or misfitting is an error."""
    own = module.state_dict()
    state = dict(state)
    for k, v in state.items():
        if k.endswith("stem.weight") and k in own and own[k].shape != v.shape:
            if own[k].shape[0] != v.shape[0] or own[k].shape[1] < v.shape[1] or own[k].shape[2:] != v.shape[2:]:
                raise ValueError(f"fine-tuning: checkpoint does not fit the model: {k} {tuple(v.shape)} vs "
                                 f"{tuple(own[k].shape)}")
            grown = torch.zeros_like(own[k])
            grown[:, : v.shape[1]] = v
            state[k] = grown
    missing, unexpected = module.load_state_dict(state, strict=False)
    extra = [k for k in missing if ".memory.pos." not in k]
    if extra or unexpected:
        raise ValueError(f"fine-tuning: checkpoint does not fit the model: missing {extra[:5]}, unexpected {unexpected[:5]}")


def _cosine(step: int, total: int, warmup: int = 100) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup)))) * 0.95 + 0.05

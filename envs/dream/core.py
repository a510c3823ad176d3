"""The batched dream in plain torch: N worlds advance in one denoiser call per sampler step.

Per world: K context latents and actions, the pose (integrated from the pose head), memory, step count, its noise
seed (the noise of a step is a function of the world's seed and step: ``worldmodels.noise``, one call for all
worlds). A step, top to bottom: pose -> memory read at the new pose -> sample the next latent ->
stored views (reuse, blocked, decode, paint) -> reward/termination heads -> task -> memory write. Nothing here
knows about Gymnasium; the files it needs are loaded once, by ``DreamParts.load``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from envs.data.starts import StartSegments
from envs.dream.config import DreamConfig
from envs.dream.memory import DreamMemory, MemoryRead
from envs.dream.stored_views import StoredViews
from envs.sources.base import scene_bounds
from envs.tasks import Task
from geometry import compose
from memory.scene_map import SceneMap
from worldmodels.contrast import keep_contrast
from worldmodels.inference import inference_copy
from worldmodels.noise import counter_normal
from worldmodels.precision import uses_bf16
from worldmodels.sampling import get_sampler, get_sigmas_karras
from worldmodels.world_model import DONE_THRESHOLD, SamplerConfig, WorldModel


ENCODE_CHUNK = 512     # frames per encoder call at a reset


@dataclass
class DreamParts:
    """Everything a dream reads from files: the model (the dream's own inference copy), start segments, the scene
    map, and the scene's bounds."""

    model: WorldModel
    starts: StartSegments
    scene_map: SceneMap | None
    bounds: tuple[float, float, float, float]

    @classmethod
    def load(cls, cfg: DreamConfig, model: WorldModel | None = None, starts: StartSegments | None = None) -> DreamParts:
        """Load what ``cfg`` names (a given ``model``/``starts`` is used instead of its file; the caller's model is
        left as it was: the dream samples from its own copy, rearranged for speed)."""
        from envs.data.scene_map import load_scene_map

        device = torch.device(cfg.device)
        ckpt = cfg.checkpoint_path()
        model = model if model is not None else WorldModel.load(ckpt, source=cfg.source, device=device)
        if model.cfg.source != cfg.source:
            raise ValueError(f"world model is for source {model.cfg.source!r}, not {cfg.source!r}")
        scene_map = None
        if cfg.scene_map:
            if not model.cfg.denoiser.memory:
                raise ValueError(f"scene_map: the checkpoint {ckpt} has no memory pathway to read it with")
            scene_map = load_scene_map(cfg.scene_map, model).to(device)
        if cfg.views.move and model.depth_net is None:
            raise ValueError(f"views.move=true needs a checkpoint with a depth head; {ckpt} has none (memworld train-depth)")
        if starts is None:
            starts = StartSegments.load(Path(cfg.starts) if cfg.starts else StartSegments.path_beside(ckpt),
                                        k=model.context, n=cfg.starts_count, region=cfg.task.start_region)
        if cfg.task.start_region is not None:
            starts = starts.within(cfg.task.start_region)
        # compiled: one graph per batch shape, and the dream's batch is fixed, so one compile serves
        model = inference_copy(model, channels_last=cfg.channels_last, compile=cfg.compile)
        return cls(model, starts, scene_map, scene_bounds(cfg.source))


class DreamCore:
    """``n_worlds`` dream worlds of one ``WorldModel``."""

    def __init__(self, cfg: DreamConfig, n_worlds: int, model: WorldModel | None = None,
                 starts: StartSegments | None = None):
        if n_worlds < 1:
            raise ValueError(f"n_worlds must be >= 1, got {n_worlds}")
        self.cfg, self.n = cfg, n_worlds
        self.device = torch.device(cfg.device)
        parts = DreamParts.load(cfg, model, starts)
        self.model, self.starts = parts.model, parts.starts
        self.bf16 = uses_bf16(cfg.precision, self.device)     # ``auto`` resolved once: recordings store the outcome
        s = self.model.cfg.sampler
        self.sampler = SamplerConfig(cfg.sampler or s.name, cfg.sampler_steps or s.steps, s.sigma_min, s.sigma_max, s.rho)
        # the schedule and sampler are fixed for the dream's life: not rebuilt every step
        self.sigmas = get_sigmas_karras(self.sampler.steps, self.sampler.sigma_min, self.sampler.sigma_max,
                                        self.sampler.rho, device=self.device)
        self.sample_fn = get_sampler(self.sampler.name)
        self.k, self.n_actions = self.model.context, self.model.cfg.n_actions
        mcfg = self.model.cfg
        latent_shape = (mcfg.autoencoder.latent_channels, 16, 16)
        kind = cfg.memory if mcfg.denoiser.memory else "none"
        self.memory = DreamMemory(kind, n_worlds, latent_shape, mcfg.memory_m, cfg.memory_capacity, self.k,
                                  parts.bounds, self.device, scene_map=parts.scene_map, map_candidates=cfg.map_candidates)
        self.views = StoredViews(cfg.views, self.model, n_worlds, self.memory.capacity, parts.scene_map, self.device,
                                 self._autocast)
        self.task = Task(cfg.task, n_worlds, cfg.source, cfg.max_episode_steps, device=self.device)
        self.ctx = torch.zeros(n_worlds, self.k, *latent_shape, device=self.device)
        self.ctx_actions = torch.zeros(n_worlds, self.k, dtype=torch.long, device=self.device)
        self.pose = torch.zeros(n_worlds, 3, device=self.device)
        self.t = torch.zeros(n_worlds, dtype=torch.long, device=self.device)
        self.frames = torch.zeros(n_worlds, 64, 64, 3, dtype=torch.uint8)
        self.noise_seed = torch.zeros(n_worlds, dtype=torch.long, device=self.device)
        self.last_read = torch.full((n_worlds, mcfg.memory_m), -1, dtype=torch.long)

    @torch.no_grad()
    def reset_worlds(self, worlds: list[int], seeds: list[int], contexts: list[dict | None]) -> None:
        """Start each world in ``worlds`` from a given context or a start segment chosen by its seed.

        A context is ``{"frames": (L, 64, 64, 3) uint8, "actions": (L,), "poses": (L, 3)}``, L >= K the same for
        every world, where ``actions[j]`` led into frame j (the first may be 0 if unknown); memory is emptied and
        every context frame written to it (steps -L+1 .. 0), the last K are the denoiser's context.
        """
        segs = [c if c is not None else self.starts.pick(np.random.default_rng(s)) for c, s in zip(contexts, seeds)]
        frames = [torch.as_tensor(np.asarray(c["frames"])) for c in segs]
        n_ctx = len(frames[0])
        if any(f.shape != (n_ctx, 64, 64, 3) or f.dtype != torch.uint8 for f in frames) or n_ctx < self.k:
            raise ValueError(f"context frames must be uint8 (L, 64, 64, 3), L >= {self.k} and the same in every world, "
                             f"got {[(f.dtype, tuple(f.shape)) for f in frames]}")
        acts = torch.stack([torch.as_tensor(np.asarray(c["actions"])).long() for c in segs])
        poses = torch.stack([torch.as_tensor(np.asarray(c["poses"]), dtype=torch.float32) for c in segs]).to(self.device)
        if acts.shape[1:] != (n_ctx,) or poses.shape[1:] != (n_ctx, 3):
            raise ValueError(f"context actions must be ({n_ctx},) and poses ({n_ctx}, 3), as its frames")
        if self.memory.kind not in ("none", "stateful") and n_ctx > self.memory.capacity:   # a ring: it would overwrite
            raise ValueError(f"a context of {n_ctx} frames does not fit a memory of {self.memory.capacity}: raise "
                             f"memory_capacity")
        w = torch.tensor(worlds, dtype=torch.long, device=self.device)
        mask = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        mask[w] = True
        flat = torch.stack(frames).reshape(-1, 64, 64, 3)
        # all worlds' frames in chunks, not one call per world: a long context (the maze's 576 frames) in one call
        # would hold gigabytes of encoder activations
        latents = torch.cat([self.model.encode(c.to(self.device)) for c in flat.split(ENCODE_CHUNK)])
        latents = latents.reshape(len(frames), n_ctx, *latents.shape[1:])
        self.ctx[w] = latents[:, -self.k:]
        self.ctx_actions[w] = acts[:, -self.k:].to(self.device)
        self.pose[w], self.t[w] = poses[:, -1], 0
        self.frames[w.cpu()] = torch.stack([f[-1] for f in frames])
        self.memory.reset(mask)
        slots = []
        for j in range(n_ctx):      # the context frames are memory's first entries, at steps -L+1 .. 0
            lat, pz = torch.zeros_like(self.ctx[:, 0]), self.pose.clone()
            lat[w], pz[w] = latents[:, j], poses[:, j]
            slots.append(self.memory.write(lat, pz, torch.full((self.n,), j - n_ctx + 1, device=self.device), mask)[w])
        self.views.remember_context(w, torch.stack(slots, 1), latents)
        self.task.reset(mask, self.pose)
        self.noise_seed[w] = torch.tensor([int(s) for s in seeds], dtype=torch.long, device=self.device)
        self.last_read[w.cpu()] = -1

    @torch.no_grad()
    def step(self, actions: torch.Tensor, true_pose: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Advance every world by one action ``(N,)``; returns frames, rewards, terminated, truncated, infos.

        ``true_pose (N, 3)``, for diagnostics only: the pose to step to in place of the heads' estimate (a
        move that leaves it unchanged counts as blocked), to tell pose drift from drawing in a benchmark."""
        a = actions.to(self.device).long()
        if a.shape != (self.n,) or (a < 0).any() or (a >= self.n_actions).any():
            raise ValueError(f"actions must be {self.n} integers in [0, {self.n_actions}), got {actions.tolist()}")
        self.ctx_actions = torch.cat([self.ctx_actions[:, 1:], a[:, None]], 1)
        last, heads, now = self.ctx[:, -1], self.model.heads, self.t + 1
        if true_pose is None:
            delta, blocked = heads.move_from_context(self.ctx, self.ctx_actions)
            new_pose = torch.where(blocked[:, None], self.pose, compose(self.pose, delta))  # kept exactly, not re-wrapped
        else:
            new_pose = true_pose.to(self.pose)
            blocked = (new_pose - self.pose).abs().amax(1) < 1e-6
        read = self.memory.read(now, new_pose, last)
        noise = counter_normal(self.noise_seed, now, tuple(last.shape[1:]))
        with self._autocast():
            z = self._sample(noise, read).float()
        z = keep_contrast(z, last, self.cfg.contrast_keep)
        z, reused = self.views.reuse(z, read, self.memory.nearest_stored(new_pose) if self.views.reuses else None)
        z = torch.where(blocked[:, None, None, None], last, z)     # a blocked move shows the same view, as in the real env
        with self._autocast():
            drawn = self.model.decode(z)
        z, drawn = self.views.paint(z, drawn, read, skip=reused | blocked)
        reward_h, done_logit = heads.reward_done(last, a, z)
        reward, terminated = self.task.step(new_pose, now, reward_h, done_logit > DONE_THRESHOLD)
        self.frames = self.task.observe(drawn.cpu())
        self.views.remember(self.memory.write(z, new_pose, now), drawn)
        self.ctx = torch.cat([self.ctx[:, 1:], z[:, None]], 1)
        self.pose, self.t = new_pose, now
        self.last_read = read.indices.cpu()
        truncated = (now >= self.cfg.max_episode_steps) & ~terminated
        return {"frames": self.frames, "reward": reward.cpu(), "terminated": terminated.cpu(),
                "truncated": truncated.cpu(), "pose": new_pose.cpu(), "memory_indices": read.indices.cpu()}

    def _autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _sample(self, noise: torch.Tensor, read: MemoryRead) -> torch.Tensor:
        mem = {} if read.latents is None else {"memory": read.latents, "memory_pose": read.rel_pose,
                                               "memory_mask": read.mask}
        return self.sample_fn(self.model.denoiser, noise * self.sigmas[0], self.sigmas, context=self.ctx,
                              actions=self.ctx_actions, **mem)

    def steps_since_visit(self) -> torch.Tensor:
        return self.memory.steps_since_visit(self.t, self.pose).cpu()

    def memory_frames(self, world: int) -> np.ndarray:
        """Decoded frames ``(M, 64, 64, 3)`` of the memory read at world ``world``'s last step (black if empty)."""
        idx = self.last_read[world]
        out = np.zeros((len(idx), 64, 64, 3), np.uint8)
        ok = idx >= 0
        if ok.any() and self.memory.kind != "none":
            lat = self.memory.store.latents[world, idx[ok].to(self.device)]
            with self._autocast():
                out[ok.numpy()] = self.model.decode(lat).cpu().numpy()
        return out

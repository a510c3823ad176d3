"""The batched dream in plain torch: N worlds advance in one denoiser call per sampler step.

Per world: K context latents and actions, the pose (integrated from the pose head),
memory, step count, its own ``torch.Generator``. A step: pose head (and blocked head) -> memory read at
the new pose -> sample the next latent -> reward/termination heads -> task -> decode ->
memory write. Nothing here knows about Gymnasium.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from envs.dream_memory import DreamMemory, reuse_stored_view, turnable_views
from envs.scene_map import SceneMap
from envs.starts import StartSegments
from envs.tasks import Task, TaskConfig
from memory.geometry import compose
from memory.reprojection import lay_moved_views, lay_turned_views
from worldmodels.inference import inference_copy
from worldmodels.precision import check_precision, uses_bf16
from worldmodels.sampling import get_sampler, get_sigmas_karras
from worldmodels.world_model import DONE_THRESHOLD, SamplerConfig, WorldModel


@dataclass
class DreamConfig:
    """What a dream runs: checkpoint, memory kind, sampler, task, episode length."""

    source: str = "miniworld"
    checkpoint: str | None = None          # default: the shipped checkpoint of the source
    starts: str | None = None              # start segments (.npz) or a dataset folder; default: beside the checkpoint
    starts_count: int = 2048               # segments drawn when ``starts`` is a dataset folder
    memory: str = "fov"                    # none | recency | fov | embedding | stateful
    memory_capacity: int = 320            # >= an episode (300 steps) plus the context
    # a memory frame stored at (nearly) the new pose is reused as the new frame (static scenes only):
    # squared pose distance below this (0.001: ~0.03 units and rad); 0 turns it off (the default)
    reuse_tol: float = 0.0
    # a memory frame stored within this many units of the new place under another heading (at most turn_max_yaw
    # away) is turned to the new heading and painted over the sample where it sees (static scenes only); 0: off.
    # A view under the same heading is turned by zero, i.e. copied whole from up to turn_tol away
    turn_tol: float = 0.0
    turn_max_yaw: float = 0.8
    # turned views are also moved from where they were stored to the new place, by the depth the checkpoint's
    # depth head gives them (memworld train-depth); then turn_tol may reach beyond a step
    move: bool = False
    # recorded views of the scene by pose (memworld build-map) read beside the episode's memory; none by default
    scene_map: str | None = None
    map_candidates: int = 16               # the map's entries nearest the pose that join the retriever's candidates
    sampler: str | None = None             # default: the checkpoint's
    sampler_steps: int | None = None
    max_episode_steps: int = 300
    task: TaskConfig = field(default_factory=TaskConfig)
    device: str = "cpu"
    compile: bool = False                  # torch.compile the denoiser, weights frozen (slow first step, faster after)
    # conv weights in NHWC, oneDNN's own layout on CPU: no re-layout on every call (1.5x steps/s at N = 32 here)
    channels_last: bool = True
    # bf16 autocast of the denoiser and decoder (fp32 | bf16 | auto): on a CPU with AMX 1.2-1.5x steps/s at
    # 64 worlds, frames within ~50 dB PSNR of fp32's; fp32 is the default, the precision the model was judged in
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if isinstance(self.task, dict):
            self.task = TaskConfig(**self.task)
        if self.sampler_steps is not None and self.sampler_steps < 1:
            raise ValueError(f"sampler_steps must be >= 1, got {self.sampler_steps}")
        check_precision(self.precision)
        if self.reuse_tol < 0:
            raise ValueError(f"reuse_tol must be >= 0, got {self.reuse_tol}")
        if self.turn_tol < 0 or not 0 < self.turn_max_yaw < 1.5:
            raise ValueError(f"turn_tol must be >= 0 and turn_max_yaw in (0, 1.5) rad, got {self.turn_tol}, "
                             f"{self.turn_max_yaw}")
        if self.move and self.turn_tol <= 0:
            raise ValueError("move=true moves the turned stored views: it needs turn_tol > 0")
        if self.map_candidates < 1:
            raise ValueError(f"map_candidates must be >= 1, got {self.map_candidates}")
        if self.starts_count < 1:
            raise ValueError(f"starts_count must be >= 1, got {self.starts_count}")
        if self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {self.max_episode_steps}")


DEFAULT_CHECKPOINTS = {"miniworld": "checkpoints/memoryrooms.safetensors"}


def default_checkpoint(source: str) -> Path:
    """The shipped checkpoint for ``source`` (looked up beside the package, then in the cwd)."""
    if source not in DEFAULT_CHECKPOINTS:
        raise FileNotFoundError(f"no shipped checkpoint for source {source!r}; pass checkpoint=<path>")
    rel = DEFAULT_CHECKPOINTS[source]
    for root in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (root / rel).is_file():
            return root / rel
    raise FileNotFoundError(f"shipped checkpoint {rel} not found; train one with memworld train-worldmodel")


class DreamCore:
    """``n_worlds`` dream worlds of one ``WorldModel``."""

    def __init__(self, cfg: DreamConfig, n_worlds: int, model: WorldModel | None = None,
                 starts: StartSegments | None = None):
        if n_worlds < 1:
            raise ValueError(f"n_worlds must be >= 1, got {n_worlds}")
        self.cfg, self.n = cfg, n_worlds
        self.device = torch.device(cfg.device)
        ckpt = Path(cfg.checkpoint) if cfg.checkpoint else default_checkpoint(cfg.source)
        model = model if model is not None else WorldModel.load(ckpt, source=cfg.source, device=self.device)
        if model.cfg.source != cfg.source:
            raise ValueError(f"world model is for source {model.cfg.source!r}, not {cfg.source!r}")
        # the dream samples from its own copy, rearranged for speed; a caller's model is left as it was.
        # Compiled: one graph per batch shape, and the dream's batch is fixed, so one compile serves
        self.model = inference_copy(model, channels_last=cfg.channels_last, compile=cfg.compile)
        self.bf16 = uses_bf16(cfg.precision, self.device)     # ``auto`` resolved once: recordings store the outcome
        if starts is None:
            starts = StartSegments.load(Path(cfg.starts) if cfg.starts else StartSegments.path_beside(ckpt),
                                        k=self.model.context, n=cfg.starts_count, region=cfg.task.start_region)
        self.starts = starts if cfg.task.start_region is None else starts.within(cfg.task.start_region)
        s = self.model.cfg.sampler
        self.sampler = SamplerConfig(cfg.sampler or s.name, cfg.sampler_steps or s.steps,
                                     s.sigma_min, s.sigma_max, s.rho)
        # the schedule and sampler are fixed for the dream's life: not rebuilt every step
        self.sigmas = get_sigmas_karras(self.sampler.steps, self.sampler.sigma_min, self.sampler.sigma_max,
                                        self.sampler.rho, device=self.device)
        self.sample_fn = get_sampler(self.sampler.name)
        self.k = self.model.context
        self.n_actions = self.model.cfg.n_actions
        bounds = _source_bounds(cfg.source)
        mcfg = self.model.cfg
        latent_shape = (mcfg.autoencoder.latent_channels, 16, 16)
        use_memory = cfg.memory != "none" and mcfg.denoiser.memory
        scene_map = None
        if cfg.scene_map:
            if cfg.memory == "none":
                raise ValueError("scene_map needs a memory kind that reads it (recency, fov, embedding), not 'none'")
            if not use_memory:
                raise ValueError(f"scene_map: the checkpoint {ckpt} has no memory pathway to read it with")
            scene_map = SceneMap.load(cfg.scene_map)
            scene_map.check_model(model, cfg.scene_map)
            scene_map = scene_map.to(self.device)
        self.memory = DreamMemory(cfg.memory if use_memory else "none", n_worlds, latent_shape, mcfg.memory_m,
                                  cfg.memory_capacity, self.k, bounds, self.device, scene_map=scene_map,
                                  map_candidates=cfg.map_candidates)
        self.task = Task(cfg.task, n_worlds, cfg.source, cfg.max_episode_steps, device=self.device)
        self.ctx = torch.zeros(n_worlds, self.k, *latent_shape, device=self.device)
        self.ctx_actions = torch.zeros(n_worlds, self.k, dtype=torch.long, device=self.device)
        self.pose = torch.zeros(n_worlds, 3, device=self.device)
        self.t = torch.zeros(n_worlds, dtype=torch.long, device=self.device)
        self.frames = torch.zeros(n_worlds, 64, 64, 3, dtype=torch.uint8)
        self.generators = [torch.Generator(device=self.device) for _ in range(n_worlds)]
        self.last_read = torch.full((n_worlds, mcfg.memory_m), -1, dtype=torch.long)
        # turning stored views works on pixels: each slot's decoded frame is kept beside its latent, so that a
        # turn costs one encode and no decode (12 KiB a slot; only when turn_tol > 0)
        self.slot_frames = torch.zeros(n_worlds, self.memory.capacity if cfg.turn_tol > 0 else 0, 64, 64, 3,
                                       dtype=torch.uint8, device=self.device)
        if cfg.move and self.model.depth_net is None:
            raise ValueError(f"move=true needs a checkpoint with a depth head; {ckpt} has none (memworld train-depth)")
        # a slot's depth is found the first time its view is moved and kept until the slot is written again
        # (16 KiB a slot; only when moving)
        self.slot_depth = torch.zeros(n_worlds, self.memory.capacity if cfg.move else 0, 64, 64, device=self.device)
        self.slot_has_depth = torch.zeros(n_worlds, self.slot_depth.shape[1], dtype=torch.bool, device=self.device)
        # a scene map's entries are decoded (and their depth found) the first time one is turned, and kept: the
        # map does not change (12 KiB an entry, 8 KiB more for depth in half precision)
        n_map = len(scene_map) if scene_map is not None and cfg.turn_tol > 0 else 0
        self.map_frames = torch.zeros(n_map, 64, 64, 3, dtype=torch.uint8, device=self.device)
        self.map_depth = torch.zeros(n_map if cfg.move else 0, 64, 64, dtype=torch.float16, device=self.device)
        self.map_has_frame = torch.zeros(n_map, dtype=torch.bool, device=self.device)
        self.map_has_depth = torch.zeros(self.map_depth.shape[0], dtype=torch.bool, device=self.device)

    @torch.no_grad()
    def reset_worlds(self, worlds: list[int], seeds: list[int], contexts: list[dict | None]) -> None:
        """Start each world in ``worlds`` from a given context or a start segment chosen by its seed.

        A context is ``{"frames": (K, 64, 64, 3) uint8, "actions": (K,), "poses": (K, 3)}`` where
        ``actions[j]`` led into frame j (the first may be 0 if unknown); memory is emptied and the
        context frames are written to it.
        """
        segs = [c if c is not None else self.starts.pick(np.random.default_rng(s)) for c, s in zip(contexts, seeds)]
        frames = torch.stack([torch.as_tensor(np.asarray(c["frames"])) for c in segs])
        if frames.shape[1:] != (self.k, 64, 64, 3) or frames.dtype != torch.uint8:
            raise ValueError(f"context frames must be uint8 ({self.k}, 64, 64, 3), "
                             f"got {frames.dtype} {tuple(frames.shape[1:])}")
        acts = torch.stack([torch.as_tensor(np.asarray(c["actions"])).long() for c in segs])
        poses = torch.stack([torch.as_tensor(np.asarray(c["poses"]), dtype=torch.float32) for c in segs])
        if acts.shape[1:] != (self.k,) or poses.shape[1:] != (self.k, 3):
            raise ValueError(f"context actions must be ({self.k},) and poses ({self.k}, 3)")
        w = torch.tensor(worlds, dtype=torch.long)
        mask = torch.zeros(self.n, dtype=torch.bool)
        mask[w] = True
        self.ctx[w] = self.model.encode(frames.to(self.device))
        self.ctx_actions[w] = acts.to(self.device)
        self.pose[w] = poses[:, -1].to(self.device)
        self.t[w] = 0
        self.frames[w] = frames[:, -1]
        self.memory.reset(mask)
        if self.slot_frames.shape[1]:
            with self._autocast():
                ctx_frames = self.model.decode(self.ctx[w])          # (len(w), K, 64, 64, 3), once per reset
        for j in range(self.k):
            lat = torch.zeros_like(self.ctx[:, 0])
            lat[w] = self.ctx[w, j]
            pz = self.pose.clone()
            pz[w] = poses[:, j].to(self.device)
            slot = self.memory.write(lat, pz, torch.full((self.n,), j - self.k + 1, device=self.device), mask.to(self.device))
            if self.slot_frames.shape[1]:
                self.slot_frames[w, slot[w]] = ctx_frames[:, j]
            if self.slot_depth.shape[1]:
                self.slot_has_depth[w, slot[w]] = False
        self.task.reset(mask, self.pose)
        for i, s in zip(worlds, seeds):
            self.generators[i].manual_seed(int(s))
        self.last_read[w] = -1

    @torch.no_grad()
    def step(self, actions: torch.Tensor, true_pose: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Advance every world by one action ``(N,)``; returns frames, rewards, terminated, truncated, infos.

        ``true_pose (N, 3)``, for diagnostics only: the pose to step to in place of the heads' estimate (a
        move that leaves it unchanged counts as blocked), to tell pose drift from drawing in a benchmark."""
        a = actions.to(self.device).long()
        if a.shape != (self.n,) or (a < 0).any() or (a >= self.n_actions).any():
            raise ValueError(f"actions must be {self.n} integers in [0, {self.n_actions}), got {actions.tolist()}")
        self.ctx_actions = torch.cat([self.ctx_actions[:, 1:], a[:, None]], 1)
        last = self.ctx[:, -1]
        heads = self.model.heads
        if true_pose is None:
            delta, blocked = heads.move_from_context(self.ctx, self.ctx_actions)
            new_pose = torch.where(blocked[:, None], self.pose, compose(self.pose, delta))  # kept exactly, not re-wrapped
        else:
            new_pose = true_pose.to(self.pose)
            blocked = (new_pose - self.pose).abs().amax(1) < 1e-6
        now = self.t + 1
        read = self.memory.read(now, new_pose, last)
        noise = torch.stack([torch.randn(last.shape[1:], generator=g, device=self.device) for g in self.generators])
        with self._autocast():
            z = self._sample(noise, read).float()
        reused = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        if self.cfg.reuse_tol > 0:
            z, reused = reuse_stored_view(z, read, self.cfg.reuse_tol)
        z = torch.where(blocked[:, None, None, None], last, z)     # a blocked move shows the same view, as in the real env
        with self._autocast():
            drawn = self.model.decode(z)
        if self.cfg.turn_tol > 0:
            z, drawn = self._turn_stored_views(z, drawn, read, reused | blocked)
        reward_h, done_logit = heads.reward_done(last, a, z)
        reward, terminated = self.task.step(new_pose, now, reward_h, done_logit > DONE_THRESHOLD)
        self.frames = self.task.observe(drawn.cpu())
        slot = self.memory.write(z, new_pose, now)
        if self.slot_frames.shape[1]:
            self.slot_frames[torch.arange(self.n, device=self.device), slot] = drawn
        if self.slot_depth.shape[1]:
            self.slot_has_depth[torch.arange(self.n, device=self.device), slot] = False
        self.ctx = torch.cat([self.ctx[:, 1:], z[:, None]], 1)
        self.pose, self.t = new_pose, now
        self.last_read = read.indices.cpu()
        truncated = (now >= self.cfg.max_episode_steps) & ~terminated
        return {"frames": self.frames, "reward": reward.cpu(), "terminated": terminated.cpu(),
                "truncated": truncated.cpu(), "pose": new_pose.cpu(), "memory_indices": read.indices.cpu()}

    def _turn_stored_views(self, z: torch.Tensor, drawn: torch.Tensor, read,
                           skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z (N, C, H, W)`` and its decoded ``drawn (N, 64, 64, 3)`` with, in each world not in ``skip`` whose
        read holds a view of this place under another heading, that view turned to the new heading and painted
        over the drawing; the latent of such a world is the painted frame encoded."""
        use, order = turnable_views(read, self.cfg.turn_tol, self.cfg.turn_max_yaw)
        worlds = (use.any(1) & ~skip).nonzero()[:, 0]
        if len(worlds) == 0:
            return z, drawn
        ar = torch.arange(len(worlds), device=self.device)[:, None]
        o = order[worlds]
        idx, rel, use = read.indices[worlds][ar, o].to(self.device), read.rel_pose[worlds][ar, o], use[worlds][ar, o]
        views = self.slot_frames[worlds[:, None], idx.clamp(min=0)]     # advanced indexing: a copy
        from_map = use & (idx < 0)                 # a scene map's entry has no slot: its own cache
        map_j = read.map_indices[worlds][ar, o].to(self.device) if read.map_indices is not None else None
        if from_map.any():
            views[from_map] = self._map_frames(map_j[from_map])
        base, stored = drawn[worlds].permute(0, 3, 1, 2).float(), views.permute(0, 1, 4, 2, 3).float()
        if self.cfg.move:
            depth = self._view_depth(worlds, idx, views, use & ~from_map)
            if from_map.any():
                depth[from_map] = self._map_view_depth(map_j[from_map])
            frames, _ = lay_moved_views(base, stored, depth, rel, use)
        else:   # relative pose: the stored yaw minus the query's, so the turn from stored to now is its negative
            frames, _ = lay_turned_views(base, stored, -rel[..., 2], use)
        frames = frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        z, drawn = z.clone(), drawn.clone()
        with self._autocast():
            z[worlds] = self.model.encode(frames).to(z.dtype)
        drawn[worlds] = frames
        return z, drawn

    def _view_depth(self, worlds: torch.Tensor, idx: torch.Tensor, views: torch.Tensor,
                    use: torch.Tensor) -> torch.Tensor:
        """Depth ``(W, M, 64, 64)`` of the stored ``views (W, M, 64, 64, 3)`` at slots ``idx (W, M)`` of ``worlds``,
        where ``use``: a slot's cached depth, or the depth head's on its view, then cached."""
        slot = idx.clamp(min=0)
        depth = self.slot_depth[worlds[:, None], slot]
        need = use & ~self.slot_has_depth[worlds[:, None], slot]
        if need.any():
            found = self.model.predict_depth(views[need]).float()
            depth[need] = found
            w_need = worlds[:, None].expand_as(idx)[need]
            self.slot_depth[w_need, slot[need]] = found
            self.slot_has_depth[w_need, slot[need]] = True
        return depth

    def _map_frames(self, j: torch.Tensor) -> torch.Tensor:
        """Decoded scene map entries ``j (P,)`` -> ``(P, 64, 64, 3)`` uint8, each decoded once."""
        todo = j.unique()
        todo = todo[~self.map_has_frame[todo]]
        if len(todo):
            with self._autocast():
                self.map_frames[todo] = self.model.decode(self.memory.scene_map.latents[todo])
            self.map_has_frame[todo] = True
        return self.map_frames[j]

    def _map_view_depth(self, j: torch.Tensor) -> torch.Tensor:
        """Depth of scene map entries ``j (P,)`` -> ``(P, 64, 64)``, each found once (after ``_map_frames``)."""
        todo = j.unique()
        todo = todo[~self.map_has_depth[todo]]
        if len(todo):
            self.map_depth[todo] = self.model.predict_depth(self.map_frames[todo]).to(self.map_depth.dtype)
            self.map_has_depth[todo] = True
        return self.map_depth[j].float()

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _sample(self, noise: torch.Tensor, read) -> torch.Tensor:
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


def _source_bounds(source: str) -> tuple[float, float, float, float]:
    import importlib

    from envs.sources import SOURCES

    module, cls = SOURCES[source]
    try:
        return getattr(importlib.import_module(module), cls).map_bounds
    except ImportError:
        return (-10.0, 10.0, -10.0, 10.0)

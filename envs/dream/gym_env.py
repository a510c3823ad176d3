"""Gymnasium adapters over ``DreamCore``: a native ``VectorEnv`` (SAME_STEP autoreset) and a
single-world ``Env``. ``gymnasium.make("memworld/MemoryRooms-Dream-v0", ...)`` gives the
single env; ``gymnasium.make_vec(..., num_envs=N)`` gives the vector env on the batched core.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.dream.config import DreamConfig
from envs.dream.core import DreamCore

OBS_SPACE = spaces.Box(0, 255, (64, 64, 3), np.uint8)


def _config(source: str, kwargs: dict[str, Any]) -> DreamConfig:
    """A ``DreamConfig`` given whole (``config=``) or field by field (``memory="fov"``, ``task={"name": "reach"}``)."""
    if "config" in kwargs:
        cfg = kwargs.pop("config")
        if kwargs or not isinstance(cfg, DreamConfig):
            raise TypeError("config= takes a whole DreamConfig and no other dream option")
        if cfg.source != source:
            raise ValueError(f"config.source is {cfg.source!r} but this env is the {source!r} dream")
        return cfg
    return DreamConfig.from_kwargs(source=source, **kwargs)


def _render_side_by_side(core: DreamCore, world: int) -> np.ndarray:
    """The current frame, then the retrieved memory frames, side by side ``(64, 64 * (1 + M), 3)``."""
    return np.concatenate([core.frames[world].numpy(), *core.memory_frames(world)], axis=1)


class DreamVectorEnv(VectorEnv):
    """N dream worlds stepped in one batch; world i resets with seed ``seed + i``."""

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.SAME_STEP, "render_fps": 15}

    def __init__(self, num_envs: int = 1, source: str = "miniworld", render_mode: str | None = None,
                 render_memory: bool = False, **kwargs: Any):
        self.core = DreamCore(_config(source, dict(kwargs)), num_envs)
        self.num_envs = num_envs
        self.single_observation_space = OBS_SPACE
        self.single_action_space = spaces.Discrete(self.core.n_actions)
        self.observation_space = batch_space(OBS_SPACE, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode, self.render_memory = render_mode, render_memory
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]

    def _world_seed(self, i: int) -> int:
        return int(self._rngs[i].integers(0, 2**62))

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        """Reset all worlds. ``options={"context": {...}}`` starts every world from that real segment
        (``frames (K, 64, 64, 3)``, ``actions (K,)``, ``poses (K, 3)``); or give ``"contexts"``, one per world."""
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            self._rngs = [np.random.default_rng(s) for s in seeds]
        options = options or {}
        ctx = options.get("contexts") or [options.get("context")] * self.num_envs
        self.core.reset_worlds(list(range(self.num_envs)), [self._world_seed(i) for i in range(self.num_envs)], ctx)
        return self.core.frames.numpy().copy(), self._infos()

    def _infos(self, memory_indices: torch.Tensor | None = None) -> dict[str, Any]:
        n = self.num_envs
        idx = self.core.last_read if memory_indices is None else memory_indices
        # copies: the core updates its tensors in place, and numpy() would share their memory
        return {"pose": self.core.pose.cpu().numpy().astype(np.float32, copy=True), "_pose": np.ones(n, bool),
                "memory_indices": idx.numpy().copy(), "_memory_indices": np.ones(n, bool),
                "steps_since_visit": self.core.steps_since_visit().numpy(), "_steps_since_visit": np.ones(n, bool),
                "sampler_steps": np.full(n, self.core.sampler.steps), "_sampler_steps": np.ones(n, bool)}

    def step(self, actions):
        acts = torch.as_tensor(np.asarray(actions)).reshape(-1)
        out = self.core.step(acts)
        obs = out["frames"].numpy().copy()
        reward = out["reward"].numpy().astype(np.float32)
        term, trunc = out["terminated"].numpy(), out["truncated"].numpy()
        infos = self._infos(out["memory_indices"])
        if self.core.task.cfg.pose_defined:   # it ends on arrival: SB3 logs rollout/success_rate
            infos["is_success"], infos["_is_success"] = term.copy(), np.ones(self.num_envs, bool)
        done = np.flatnonzero(term | trunc)
        if len(done):
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in done:
                final_obs[i] = obs[i].copy()
            final_info = {k: v.copy() for k, v in infos.items()}
            for k in list(final_info):
                if k.startswith("_"):
                    final_info[k] = np.isin(np.arange(self.num_envs), done)
            self.core.reset_worlds(done.tolist(), [self._world_seed(i) for i in done], [None] * len(done))
            obs[done] = self.core.frames[done].numpy()
            infos = self._infos()
            infos.update({"final_obs": final_obs, "_final_obs": np.isin(np.arange(self.num_envs), done),
                          "final_info": final_info, "_final_info": np.isin(np.arange(self.num_envs), done)})
        return obs, reward, term, trunc, infos

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self.render_memory:
            return np.stack([_render_side_by_side(self.core, i) for i in range(self.num_envs)])
        return self.core.frames.numpy().copy()


class DreamEnv(gym.Env[np.ndarray, np.int64]):
    """One dream world. ``reset(options={"context": {...}})`` dreams on from a given real segment."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, source: str = "miniworld", render_mode: str | None = None, render_memory: bool = False,
                 **kwargs: Any):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.core = DreamCore(_config(source, dict(kwargs)), 1)
        self.observation_space = OBS_SPACE
        self.action_space = spaces.Discrete(self.core.n_actions)
        self.render_mode, self.render_memory = render_mode, render_memory

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        ctx = (options or {}).get("context")
        self.core.reset_worlds([0], [int(self.np_random.integers(0, 2**62))], [ctx])
        return self.core.frames[0].numpy().copy(), self._info()

    def _info(self) -> dict[str, Any]:
        return {"pose": self.core.pose[0].cpu().numpy().astype(np.float32, copy=True),
                "memory_indices": self.core.last_read[0].numpy().copy(),
                "steps_since_visit": int(self.core.steps_since_visit()[0]),
                "sampler_steps": self.core.sampler.steps}

    def step(self, action):
        a = np.asarray(action)
        if a.size != 1 or not self.action_space.contains(np.int64(a.item())) or a.item() != int(a.item()):
            raise ValueError(f"action {action!r} is outside the action space Discrete({self.action_space.n})")
        out = self.core.step(torch.tensor([int(a.item())]))
        info = self._info()
        if self.core.task.cfg.pose_defined:
            info["is_success"] = bool(out["terminated"][0])
        return (out["frames"][0].numpy().copy(), float(out["reward"][0]), bool(out["terminated"][0]),
                bool(out["truncated"][0]), info)

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return _render_side_by_side(self.core, 0) if self.render_memory else self.core.frames[0].numpy().copy()

"""Stable-Baselines3 ``VecEnv`` over ``DreamVectorEnv``: ``PPO("CnnPolicy", DreamSB3VecEnv(...))``
trains with no wrapper written by the user; ``make_vec_env(dream_id, n_envs=N, vec_env_cls=batched_dream)`` gives
the same batched dream to code that builds its VecEnv from N single envs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from envs.dream.gym_env import DreamEnv, DreamVectorEnv


class DreamSB3VecEnv(VecEnv):
    """SB3's VecEnv API on the batched dream; sets ``terminal_observation`` and ``TimeLimit.truncated``."""

    def __init__(self, num_envs: int = 8, source: str = "miniworld", vec: DreamVectorEnv | None = None,
                 **kwargs: Any):
        self.vec = vec if vec is not None else DreamVectorEnv(num_envs=num_envs, source=source, **kwargs)
        super().__init__(self.vec.num_envs, self.vec.single_observation_space, self.vec.single_action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None
        self.render_mode = self.vec.render_mode

    def reset(self) -> np.ndarray:
        ctxs = [o.get("context") for o in self._options]
        options = {"contexts": ctxs} if any(c is not None for c in ctxs) else None
        obs, infos = self.vec.reset(seed=self._seed, options=options)
        self._seed = None
        self.reset_infos = [self._info_at(infos, i) for i in range(self.num_envs)]
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rew, term, trunc, infos = self.vec.step(self._actions)
        out = []
        for i in range(self.num_envs):
            done = term[i] or trunc[i]
            # SB3 wants the info of the last step; the top-level info of a reset world is the new episode's
            info = self._info_at(infos["final_info"], i) if done else self._info_at(infos, i)
            if done:
                info["terminal_observation"] = infos["final_obs"][i]
                info["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
            out.append(info)
        return obs, rew, term | trunc, out

    @staticmethod
    def _info_at(infos: dict, i: int) -> dict:
        return {k: v[i] for k, v in infos.items()
                if not k.startswith("_") and k not in ("final_obs", "final_info")}

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def close(self) -> None:
        pass

    def get_images(self) -> Sequence[np.ndarray | None]:
        return list(self.vec.core.frames.numpy().copy())

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.vec, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.vec, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self.vec, method_name)(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


#: wrappers ``gym.make`` and ``make_vec_env`` add whose work the batched dream does itself (episode statistics:
#: ``VecMonitor``); any other wrapper would be lost, so it is refused
_ABSORBED = {"Monitor", "OrderEnforcing", "PassiveEnvChecker", "EnvCompatibility"}


def batched_dream(env_fns: Sequence[Callable[[], Any]], **kwargs: Any):
    """A ``vec_env_cls`` for SB3's ``make_vec_env``: the N one-world dreams ``env_fns`` would build, stepped as one
    batched dream of N worlds (one denoiser call a step instead of N), with the first env's dream config and
    render options (``gym.make``'s ``max_episode_steps`` becomes the dream's own limit), and episode statistics as
    ``Monitor`` gives them (``VecMonitor``, with the Monitor's ``info_keywords``; its log files are not written).
    Only the first thunk is called. ``TypeError`` if it does not build a dream, or wraps it in a wrapper the batch
    would drop."""
    from stable_baselines3.common.vec_env import VecMonitor

    if kwargs:
        raise TypeError(f"batched_dream takes no vec_env_kwargs, got {sorted(kwargs)}")
    first = env_fns[0]()
    env, lost, limit, keywords = first, [], None, ()
    while hasattr(env, "env"):
        if isinstance(env, gym.wrappers.TimeLimit):     # gym.make's max_episode_steps: the dream's own limit
            limit = env._max_episode_steps
        elif type(env).__name__ == "Monitor":
            keywords = tuple(getattr(env, "info_keywords", ()))
        elif type(env).__name__ not in _ABSORBED:
            lost.append(type(env).__name__)
        env = env.env
    if not isinstance(env, DreamEnv):
        raise TypeError(f"batched_dream batches memworld dream envs, not {type(env).__name__}")
    if lost:
        raise TypeError(f"batched_dream would drop the wrappers {lost}: wrap the returned VecEnv instead "
                        "(or give the dream its options, e.g. max_episode_steps, as env_kwargs)")
    cfg = env.core.cfg
    if limit is not None and limit < cfg.max_episode_steps:
        cfg = dataclasses.replace(cfg, max_episode_steps=int(limit))
    render_mode, render_memory = env.render_mode, env.render_memory
    first.close()
    vec = DreamSB3VecEnv(num_envs=len(env_fns), source=cfg.source, config=cfg, render_mode=render_mode,
                         render_memory=render_memory)
    return VecMonitor(vec, info_keywords=keywords)

"""Record dream episodes as a Minari dataset that replays bit-exactly on CPU.

``DreamRecorder`` wraps a single ``DreamEnv``: every episode's frames, actions, rewards,
terminations, poses and retrieved memory indices are kept, and ``save(path)`` writes them
with the seed of each episode, the checkpoint and the sampler settings in the dataset
metadata. ``replay(path, i)`` rebuilds the dream from that metadata and the actions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np

from envs.data.dataset import Episode, read_episodes, read_metadata, write_dataset


class DreamRecorder(gym.Wrapper):
    """Keeps the episodes of a ``DreamEnv``; reset it with an explicit ``seed`` to make them replayable."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.episodes: list[Episode] = []
        self.seeds: list[int | None] = []
        self._cur: dict | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._finish()
        if options and "context" in options:
            raise ValueError("episodes started from a given context are not replayable from a seed")
        obs, info = self.env.reset(seed=seed, options=options)
        self._cur = {"frames": [obs], "poses": [info["pose"]], "mem": [info["memory_indices"]], "actions": [],
                     "rewards": [], "terms": [], "truncs": []}
        self.seeds.append(seed)
        return obs, info

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        c = self._cur
        c["frames"].append(obs), c["poses"].append(info["pose"]), c["mem"].append(info["memory_indices"])
        c["actions"].append(int(np.asarray(action).item())), c["rewards"].append(reward)
        c["terms"].append(term), c["truncs"].append(trunc)
        return obs, reward, term, trunc, info

    def _finish(self) -> None:
        c = self._cur
        if c is not None and c["actions"]:
            self.episodes.append(Episode(
                np.stack(c["frames"]), np.stack(c["poses"]).astype(np.float32), np.array(c["actions"]),
                np.array(c["rewards"], np.float32), np.array(c["terms"]), np.array(c["truncs"]),
                seed=self.seeds[-1], extra={"memory_indices": np.stack(c["mem"]).astype(np.int64)}))
        elif c is not None:
            self.seeds.pop()
        self._cur = None

    def save(self, path: str | Path) -> Path:
        """Write the finished episodes (and the one in progress) as a Minari dataset; its metadata holds the
        dream's whole config, with what was left to defaults resolved (checkpoint, sampler, precision)."""
        self._finish()
        core = self.env.unwrapped.core
        cfg = dataclasses.replace(core.cfg, checkpoint=str(core.cfg.checkpoint_path()), sampler=core.sampler.name,
                                  sampler_steps=core.sampler.steps, precision="bf16" if core.bf16 else "fp32")
        meta = {"source": cfg.source, "policy": "dream recording", "dream": True, "dream_config": cfg.to_dict(),
                "episode_seeds": [e.seed for e in self.episodes]}
        return write_dataset(path, self.episodes, core.n_actions, meta)


def replay(path: str | Path, episode: int = 0) -> np.ndarray:
    """Re-dream episode ``episode`` of a recording from its metadata and actions: frames ``(T+1, 64, 64, 3)``."""
    from envs.dream import DreamConfig, DreamEnv

    meta = read_metadata(path)
    if not meta.get("dream"):
        raise ValueError(f"{path} is not a dream recording")
    if "dream_config" not in meta:
        raise ValueError(f"{path} was recorded before recordings stored the whole dream config: record it again")
    seed = meta["episode_seeds"][episode]
    if seed is None:
        raise ValueError(f"episode {episode} of {path} was reset without a seed: it cannot be replayed")
    cfg = DreamConfig.from_dict(meta["dream_config"])
    env = DreamEnv(source=cfg.source, config=cfg)
    ep = read_episodes(path)[episode]
    obs, _ = env.reset(seed=seed)
    frames = [obs] + [env.step(int(a))[0] for a in ep.actions]
    return np.stack(frames)

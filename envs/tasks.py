"""Tasks decide reward and termination, in the dream and in the real env alike.

- ``learned``: the world model's reward and termination heads (the source's own task);
  in the real env, the source's own reward.
- ``reach``: come within ``radius`` of ``goal``; reward ``1 - 0.2 t / T`` on arrival, plus optional
  potential-based shaping ``shaping * (d_prev - d)`` on the distance to the goal (Ng et al. 1999:
  it leaves the optimal policy unchanged).
- ``homing``: go at least ``leave`` away from the start, then come back within ``radius``; the
  optional shaping uses the potential ``d`` (distance from the start) until the agent has left and
  ``2 leave - d`` afterwards, continuous where it leaves, so it is potential-based as well.
  With ``cue`` the observation shows which half of the task the agent is in: once it has left, the
  top ``CUE_ROWS`` rows of every frame it sees turn white (in the dream and the real env alike), so a
  feed-forward policy can tell "going out" from "coming back" at the same place.

Any task may set ``start_region`` ``(x0, x1, y0, y1)``: episodes then start only at poses inside
it, in the real env (resets are redrawn until the start lies inside) and in the dream (start
segments whose last pose lies inside), e.g. the red box's room for ``reach``.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

CUE_ROWS = 3
DEFAULT_GOALS = {"miniworld": (5.0, -5.0), "minigrid": (17.0, 17.0), "vizdoom": (0.0, 0.0)}


@dataclass
class TaskConfig:
    name: str = "learned"
    goal: tuple[float, float] | None = None    # reach: default is the source's goal (MemoryRooms' red box)
    radius: float = 1.5
    leave: float = 3.0
    shaping: float = 0.0                       # weight of the potential-based progress shaping
    start_region: tuple[float, float, float, float] | None = None   # (x0, x1, y0, y1); None: anywhere
    cue: bool = False                          # homing: mark observations once the agent has left

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ValueError(f"unknown task {self.name!r}; choose one of {sorted(TASKS)}")
        if self.radius <= 0 or self.leave <= 0:
            raise ValueError(f"task radius and leave must be > 0, got {self.radius} and {self.leave}")
        if self.start_region is not None:
            r = tuple(float(v) for v in self.start_region)
            if len(r) != 4 or not (r[0] < r[1] and r[2] < r[3]):
                raise ValueError(f"start_region must be (x0, x1, y0, y1) with x0 < x1 and y0 < y1, got {self.start_region}")
            self.start_region = r

    @property
    def pose_defined(self) -> bool:
        """Reward and termination come from poses (reach, homing), so a termination is an arrival, a
        success; ``learned`` takes the source's own, where an episode may also end in failure."""
        return self.name != "learned"


def in_region(xy, region: tuple[float, float, float, float]):
    """Whether points ``xy (..., 2)`` lie inside ``region`` (x0, x1, y0, y1); numpy or torch."""
    return (xy[..., 0] > region[0]) & (xy[..., 0] < region[1]) & (xy[..., 1] > region[2]) & (xy[..., 1] < region[3])


class Task:
    """Batched over worlds: ``reset(mask, pose)``, then ``(reward, terminated) = step(...)``."""

    def __init__(self, cfg: TaskConfig, n_worlds: int, source: str, max_steps: int,
                 device: torch.device | str = "cpu"):
        self.cfg, self.n, self.max_steps = cfg, n_worlds, max_steps
        goal = cfg.goal if cfg.goal is not None else DEFAULT_GOALS.get(source, (0.0, 0.0))
        self.goal = torch.tensor(goal, dtype=torch.float32, device=device)
        self.start = torch.zeros(n_worlds, 2, device=device)
        self.prev_phi = torch.zeros(n_worlds, device=device)
        self.left = torch.zeros(n_worlds, dtype=torch.bool, device=device)

    def reset(self, mask: torch.Tensor, pose: torch.Tensor) -> None:
        self.start[mask] = pose[mask, :2].float()
        self.left[mask] = False
        self.prev_phi[mask] = self._progress(pose)[1][mask]

    def _progress(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(arrived (N,), potential (N,))`` at ``pose (N, 3)``; the shaping pays the potential's change
        (Ng et al. 1999): reach ``-distance to the goal``; homing ``d`` until left, ``2 leave - d`` after."""
        if self.cfg.name == "homing":
            d = (pose[:, :2].float() - self.start).norm(dim=1)
            self.left |= d >= self.cfg.leave
            return self.left & (d < self.cfg.radius), torch.where(self.left, 2 * self.cfg.leave - d, d)
        dist = (pose[:, :2].float() - self.goal).norm(dim=1)
        return dist < self.cfg.radius, -dist

    def observe(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``(N, H, W, 3) uint8`` as the agent sees them: with ``cue``, the top rows of the worlds
        that have left are white. Changes ``frames`` in place and returns it."""
        if self.cfg.cue and self.cfg.name == "homing" and bool(self.left.any()):
            frames[self.left.to(frames.device), :CUE_ROWS] = 255
        return frames

    def step(self, pose: torch.Tensor, step: torch.Tensor, reward_head: torch.Tensor,
             done_head: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cfg.name == "learned":
            return reward_head.float(), done_head.bool()
        arrived, phi = self._progress(pose)
        shaped = self.cfg.shaping * (phi - self.prev_phi)
        self.prev_phi = phi
        bonus = torch.where(arrived, 1.0 - 0.2 * step.float() / self.max_steps, torch.zeros_like(shaped))
        return bonus + shaped, arrived


TASKS = {"learned", "reach", "homing"}


MAX_START_DRAWS = 1000


class RealTaskWrapper(gym.Wrapper):
    """Apply a pose-defined task to a real source env (``learned`` keeps the source's reward).

    With a ``start_region`` the env is reset again (its own random stream continues, so a seed still
    fixes the episode) until the start pose lies inside the region."""

    def __init__(self, env: gym.Env, cfg: TaskConfig, source: str):
        super().__init__(env)
        self.task = Task(cfg, 1, source, getattr(env.unwrapped, "max_episode_steps", 300))
        self.t = 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        region = self.task.cfg.start_region
        if region is not None:
            kwargs.pop("seed", None)
            for _ in range(MAX_START_DRAWS):
                if in_region(np.asarray(info["pose"]), region):
                    break
                obs, info = self.env.reset(**kwargs)
            else:
                raise RuntimeError(f"no start inside start_region {region} in {MAX_START_DRAWS} resets")
        self.t = 0
        self.task.reset(torch.ones(1, dtype=torch.bool), torch.as_tensor(info["pose"])[None])
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.task.cfg.pose_defined:
            r, done = self.task.step(torch.as_tensor(info["pose"])[None], torch.tensor([self.t]),
                                     torch.zeros(1), torch.zeros(1))
            reward, terminated = float(r[0]), bool(done[0])
            info["is_success"] = terminated
            obs = self.task.observe(torch.from_numpy(np.array(obs))[None])[0].numpy()
        else:
            info["is_success"] = bool(terminated)
        return obs, reward, terminated, truncated, info

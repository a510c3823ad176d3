"""Tasks decide reward and termination, in the dream and in the real env alike.

- ``learned``: the world model's reward and termination heads (the source's own task);
  in the real env, the source's own reward.
- ``reach``: come within ``radius`` of ``goal``; reward ``1 - 0.2 t / T`` on arrival, plus optional
  potential-based shaping ``shaping * (d_prev - d)`` on the distance to the goal (Ng et al. 1999:
  it leaves the optimal policy unchanged).
- ``homing``: go at least ``leave`` away from the start, then come back within ``radius``.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch

DEFAULT_GOALS = {"miniworld": (5.0, -5.0), "minigrid": (17.0, 17.0), "vizdoom": (0.0, 0.0)}


@dataclass
class TaskConfig:
    name: str = "learned"
    goal: tuple[float, float] | None = None    # reach: default is the source's goal (MemoryRooms' red box)
    radius: float = 1.5
    leave: float = 3.0
    shaping: float = 0.0                       # reach: weight of the distance-progress shaping

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ValueError(f"unknown task {self.name!r}; choose one of {sorted(TASKS)}")
        if self.radius <= 0 or self.leave <= 0:
            raise ValueError(f"task radius and leave must be > 0, got {self.radius} and {self.leave}")


class Task:
    """Batched over worlds: ``reset(mask, pose)``, then ``(reward, terminated) = step(...)``."""

    def __init__(self, cfg: TaskConfig, n_worlds: int, source: str, max_steps: int,
                 device: torch.device | str = "cpu"):
        self.cfg, self.n, self.max_steps = cfg, n_worlds, max_steps
        goal = cfg.goal if cfg.goal is not None else DEFAULT_GOALS.get(source, (0.0, 0.0))
        self.goal = torch.tensor(goal, dtype=torch.float32, device=device)
        self.start = torch.zeros(n_worlds, 2, device=device)
        self.prev_dist = torch.zeros(n_worlds, device=device)
        self.left = torch.zeros(n_worlds, dtype=torch.bool, device=device)

    def reset(self, mask: torch.Tensor, pose: torch.Tensor) -> None:
        self.start[mask] = pose[mask, :2].float()
        self.left[mask] = False
        self.prev_dist[mask] = (pose[mask, :2].float() - self.goal).norm(dim=1)

    def step(self, pose: torch.Tensor, step: torch.Tensor, reward_head: torch.Tensor,
             done_head: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        name = self.cfg.name
        if name == "learned":
            return reward_head.float(), done_head.bool()
        shaped = torch.zeros(self.n, device=self.goal.device)
        if name == "reach":
            dist = (pose[:, :2].float() - self.goal).norm(dim=1)
            arrived = dist < self.cfg.radius
            shaped = self.cfg.shaping * (self.prev_dist - dist)
            self.prev_dist = dist
        else:  # homing
            d = (pose[:, :2].float() - self.start).norm(dim=1)
            self.left |= d >= self.cfg.leave
            arrived = self.left & (d < self.cfg.radius)
        bonus = torch.where(arrived, 1.0 - 0.2 * step.float() / self.max_steps, torch.zeros_like(shaped))
        return bonus + shaped, arrived


TASKS = {"learned", "reach", "homing"}


class RealTaskWrapper(gym.Wrapper):
    """Apply a pose-defined task to a real source env (``learned`` keeps the source's reward)."""

    def __init__(self, env: gym.Env, cfg: TaskConfig, source: str):
        super().__init__(env)
        self.task = Task(cfg, 1, source, getattr(env.unwrapped, "max_episode_steps", 300))
        self.t = 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.t = 0
        self.task.reset(torch.ones(1, dtype=torch.bool), torch.as_tensor(info["pose"])[None])
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.task.cfg.name != "learned":
            r, done = self.task.step(torch.as_tensor(info["pose"])[None], torch.tensor([self.t]),
                                     torch.zeros(1), torch.zeros(1))
            reward, terminated = float(r[0]), bool(done[0])
            info["is_success"] = terminated
        else:
            info["is_success"] = bool(terminated)
        return obs, reward, terminated, truncated, info

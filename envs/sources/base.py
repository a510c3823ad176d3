"""The contract every real source environment keeps (DESIGN §3).

A source is a ``gymnasium.Env`` with a 64x64x3 uint8 image observation, a discrete
action space, ``info["pose"]`` a float32 ``[x, y, yaw]`` on every reset and step, and
``render_at(pose)`` giving the true view from any reachable pose.

Pose convention shared by all sources and by ``memory/``: the agent looks along
``(cos yaw, sin yaw)`` in the ``(x, y)`` plane; yaw is wrapped to ``(-pi, pi]``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from geometry import wrap_yaw

IMAGE_SIZE = 64


def make_pose(x: float, y: float, yaw: float) -> np.ndarray:
    """A pose array ``float32 [x, y, yaw]`` with yaw wrapped."""
    return np.array([x, y, wrap_yaw(yaw)], dtype=np.float32)


#: (x0, x1, y0, y1) of each source's reachable poses, known without importing its renderer (the dream's stateful
#: memory grid covers it); each source class reads its own row
SCENE_BOUNDS: dict[str, tuple[float, float, float, float]] = {
    "miniworld": (-7.0, 7.0, -7.0, 7.0),
    "minigrid": (0.0, 19.0, 0.0, 19.0),
    "vizdoom": (2.5, 17.5, -11.0, 2.0),
    "memorymaze9": (0.0, 9.0, 0.0, 9.0),   # grid units; a new layout every episode inside it
}


def scene_bounds(source: str) -> tuple[float, float, float, float]:
    """The reachable extent of ``source``'s poses; an unknown source is an error, never a guess."""
    if source not in SCENE_BOUNDS:
        raise ValueError(f"no scene bounds for source {source!r}: add them to envs.sources.base.SCENE_BOUNDS")
    return SCENE_BOUNDS[source]


class PoseOutsideMapError(ValueError):
    """``render_at`` was asked for a pose the agent cannot stand at."""


class SourceEnv(gym.Env[np.ndarray, np.int64]):
    """Base class of the real sources: image observations, discrete actions, poses."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}
    #: Short name used by configs and the registry (``miniworld``, ``minigrid``, ``vizdoom``).
    source_name: str = ""
    #: Turn actions that make a full circle (scripted revisit paths need it).
    turns_per_circle: int = 4
    #: The source's actions for (turn left, turn right, forward), which scripted policies use.
    primitive_actions: tuple[int, int, int] = (0, 1, 2)
    #: (x0, x1, y0, y1): the extent of reachable poses (``SCENE_BOUNDS[source_name]``).
    map_bounds: tuple[float, float, float, float]

    def __init__(self, n_actions: int, render_mode: str | None = None):
        self.observation_space = spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
        self.action_space = spaces.Discrete(n_actions)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self._last_obs: np.ndarray | None = None

    @abstractmethod
    def pose(self) -> np.ndarray:
        """The agent's current pose, ``float32 [x, y, yaw]``."""

    @abstractmethod
    def render_at(self, pose: np.ndarray) -> np.ndarray:
        """The true ``(64, 64, 3)`` uint8 view from ``pose``; the agent's state is unchanged.

        Raises ``PoseOutsideMapError`` for a pose outside the reachable map.
        """

    def depth_at(self, pose: np.ndarray) -> np.ndarray:
        """The true ``(64, 64)`` float32 depth (distance along the optical axis) of the view from ``pose``, for
        the sources that render one (MiniWorld); ``PoseOutsideMapError`` as ``render_at``."""
        raise NotImplementedError(f"source {self.source_name!r} renders no depth (MiniWorld does)")

    def check_action(self, action: Any) -> int:
        """Validate an action and return it as a Python int (one clear error otherwise)."""
        try:
            a = int(np.asarray(action).item())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action must be an integer in [0, {self.action_space.n}), got {action!r}") from exc
        if not self.action_space.contains(np.int64(a)):
            raise ValueError(f"action {a} is outside the action space Discrete({self.action_space.n})")
        return a

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return None if self._last_obs is None else self._last_obs.copy()
        return None

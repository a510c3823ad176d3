"""MiniGrid source: egocentric partial view as a 64x64 image, exact integer poses.

Pure Python and the fastest source, so tests lean on it. Actions are MiniGrid's
first three: 0 turn left, 1 turn right, 2 forward. Pose: grid cell ``(x, y)`` and
``yaw = dir * pi / 2`` (MiniGrid's dir 0 looks along +x, dir 1 along +y).
"""

from __future__ import annotations

import math

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid ids)
import numpy as np
from minigrid.wrappers import RGBImgPartialObsWrapper

from envs.sources.base import IMAGE_SIZE, PoseOutsideMapError, SCENE_BOUNDS, SourceEnv, make_pose

_TILE = 8  # 7 tiles x 8 px = 56 px, upsampled by nearest neighbour to 64


class MiniGridSource(SourceEnv):
    """A MiniGrid task behind the source contract."""

    source_name = "minigrid"
    turns_per_circle = 4
    map_bounds = SCENE_BOUNDS["minigrid"]

    def __init__(self, env_id: str = "MiniGrid-FourRooms-v0", max_episode_steps: int = 300,
                 render_mode: str | None = None):
        base = gym.make(env_id, max_steps=max_episode_steps, disable_env_checker=True)
        self.wrapped = RGBImgPartialObsWrapper(base, tile_size=_TILE)
        self.grid_env = base.unwrapped
        super().__init__(n_actions=3, render_mode=render_mode)
        side = self.grid_env.agent_view_size * _TILE
        self._upsample = (np.arange(IMAGE_SIZE) * side) // IMAGE_SIZE
        self.max_episode_steps = max_episode_steps

    def _image(self, obs: dict) -> np.ndarray:
        img = obs["image"]
        return np.ascontiguousarray(img[self._upsample][:, self._upsample])

    def pose(self) -> np.ndarray:
        x, y = self.grid_env.agent_pos
        return make_pose(float(x), float(y), self.grid_env.agent_dir * math.pi / 2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, _ = self.wrapped.reset(seed=seed)
        self._last_obs = self._image(obs)
        return self._last_obs, {"pose": self.pose()}

    def step(self, action):
        a = self.check_action(action)
        obs, reward, terminated, truncated, _ = self.wrapped.step(a)
        self._last_obs = self._image(obs)
        return self._last_obs, float(reward), bool(terminated), bool(truncated), {"pose": self.pose()}

    def render_at(self, pose: np.ndarray) -> np.ndarray:
        x, y, yaw = (float(v) for v in np.asarray(pose, dtype=np.float64).reshape(3))
        g = self.grid_env
        if not all(math.isfinite(v) for v in (x, y, yaw)):
            raise PoseOutsideMapError(f"pose {[x, y, yaw]} is not finite")
        ix, iy = int(round(x)), int(round(y))
        if not (0 <= ix < g.width and 0 <= iy < g.height):
            raise PoseOutsideMapError(f"pose {[x, y, yaw]} is outside the {g.width}x{g.height} grid")
        cell = g.grid.get(ix, iy)
        if cell is not None and not cell.can_overlap():
            raise PoseOutsideMapError(f"pose {[x, y, yaw]} is inside a {cell.type}")
        saved = (g.agent_pos, g.agent_dir)
        try:
            g.agent_pos, g.agent_dir = (ix, iy), int(round(yaw / (math.pi / 2))) % 4
            return self._image(self.wrapped.observation(g.gen_obs()))
        finally:
            g.agent_pos, g.agent_dir = saved

    def close(self) -> None:
        self.wrapped.close()

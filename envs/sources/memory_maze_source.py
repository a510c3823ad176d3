"""Memory Maze 9x9 source (Pasukonis et al., arXiv 2210.13383): a new maze every episode.

Each episode draws a new 9x9 layout, new wall textures and new target positions; the agent
sees 64x64 first-person frames with the current target's colour as a 2-pixel border and
gets +1 for touching the target of that colour. Episodes last 1,000 steps (4 Hz, 250 s).
The package's dm_env task is wrapped here behind the source contract (``base.py``).

Actions (the package's own set): 0 noop, 1 forward, 2 left, 3 right, 4 forward+left,
5 forward+right. Turning is a torque on a damped hinge, not a fixed angle, so
``turns_per_circle`` is measured: from rest a "left" turns 14.1 degrees, then 18.4 a step, and
20 of them make 363.5 degrees (366.4 once the hinge stops). Forward moves ~0.25 cells a step
and stops within one step of noop.

Pose: ``[x, y, yaw]`` in maze grid units, as the package's ``agent_pos`` (bottom-left
corner (0, 0), top-right (9, 9); one cell is 1 x 1) and ``yaw = atan2(dir_y, dir_x)`` of
its ``agent_dir``, so the agent looks along ``(cos yaw, sin yaw)`` as in every source.
Physics: slide joints ``walker/root_x, root_y`` hold ``(pose - 4.5) * 2`` and the
``walker/steer`` hinge holds ``-yaw``.

Seeds: ``reset(seed=s)`` builds the task with ``memory_maze_9x9(seed=s)`` (about 4 s more
than an unseeded reset), so a seed is a layout; ``reset()`` without a seed draws the next
layout of the current seed's stream. Every reset recompiles the physics (~4 s).

``render_at(pose)`` sets x, y and steer, runs ``physics.forward()``, renders the egocentric
camera and restores the whole state; it adds the border of the *current* target colour
with the env's own wrapper. It differs from the frame the env gave at that pose only by
the ball's small height bob (``root_z``), which the pose does not carry (docs/results.md).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")  # headless; must precede the first mujoco import

with contextlib.redirect_stderr(io.StringIO()):  # memory_maze imports the old gym, which prints a notice
    from memory_maze import tasks as mm_tasks
    from memory_maze.wrappers import TargetColorAsBorderWrapper

from envs.sources.base import PoseOutsideMapError, SCENE_BOUNDS, SourceEnv, make_pose

# dm_control warns on every reset that the (slide-jointed) walker has no free joint to set a velocity on
logging.getLogger("absl").addFilter(lambda record: "no free joint" not in record.getMessage())

MAZE_SIZE = 9
_XY_SCALE = 2.0  # metres per grid cell in the physics
_CAMERA = "walker/egocentric"
ACTIONS = ("noop", "forward", "left", "right", "forward+left", "forward+right")
NOOP, FORWARD, LEFT, RIGHT, FORWARD_LEFT, FORWARD_RIGHT = range(6)


class MemoryMazeSource(SourceEnv):
    """Memory Maze 9x9 behind the source contract (see the module docstring)."""

    source_name = "memorymaze9"
    turns_per_circle = 20  # measured: 20 lefts from rest turn 363.5 degrees (tests/test_memory_maze.py)
    primitive_actions = (LEFT, RIGHT, FORWARD)
    map_bounds = SCENE_BOUNDS["memorymaze9"]
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, max_episode_steps: int = 1000, render_mode: str | None = None):
        super().__init__(n_actions=len(ACTIONS), render_mode=render_mode)
        self.max_episode_steps = max_episode_steps
        self._dm = None          # the dm_env task, built on the first reset
        self._border = None      # the task's TargetColorAsBorderWrapper
        self._obs: dict | None = None
        self._t = 0

    # -- the dm_env task ---------------------------------------------------------------------------
    def _build(self, seed: int) -> None:
        if self._dm is not None:
            self._dm.close()
        self._dm = mm_tasks.memory_maze_9x9(global_observables=True, seed=seed)
        w = self._dm
        while not isinstance(w, TargetColorAsBorderWrapper):
            w = w.env
        self._border = w

    @property
    def physics(self):
        """The MuJoCo physics of the current episode (dm_control ``Physics``)."""
        return self._dm.physics

    @property
    def maze_layout(self) -> np.ndarray:
        """``(9, 9)`` uint8, 1 where the agent can stand; ``layout[iy, ix]`` with (0, 0) bottom-left."""
        if self._obs is None:
            raise RuntimeError("call reset() before reading maze_layout")
        return self._obs["maze_layout"]

    def _image(self, obs: dict) -> np.ndarray:
        return np.ascontiguousarray(obs["image"], dtype=np.uint8).copy()

    def pose(self) -> np.ndarray:
        x, y = (float(v) for v in self._obs["agent_pos"])
        dx, dy = (float(v) for v in self._obs["agent_dir"])
        return make_pose(x, y, math.atan2(dy, dx))

    def _info(self) -> dict:
        return {"pose": self.pose()}

    # -- gymnasium API -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None or self._dm is None:
            self._build(int(seed) if seed is not None else int(self.np_random.integers(2**31)))
        ts = self._dm.reset()
        self._obs, self._t = ts.observation, 0
        self._last_obs = self._image(self._obs)
        return self._last_obs, self._info()

    def step(self, action):
        if self._dm is None:
            raise RuntimeError("call reset() before step()")
        a = self.check_action(action)
        ts = self._dm.step(a)
        self._obs, self._t = ts.observation, self._t + 1
        self._last_obs = self._image(self._obs)
        # Memory Maze never terminates; its 1,000-step time limit (or ours) truncates
        truncated = bool(ts.last()) or self._t >= self.max_episode_steps
        return self._last_obs, float(ts.reward or 0.0), False, truncated, self._info()

    # -- true views ----------------------------------------------------------------------------------
    def check_pose(self, pose: np.ndarray) -> tuple[float, float, float]:
        """``pose`` as floats; ``PoseOutsideMapError`` unless it lies in a free cell of the current maze."""
        x, y, yaw = (float(v) for v in np.asarray(pose, dtype=np.float64).reshape(3))
        if not all(math.isfinite(v) for v in (x, y, yaw)):
            raise PoseOutsideMapError(f"pose {[x, y, yaw]} is not finite")
        if not (0.0 <= x < MAZE_SIZE and 0.0 <= y < MAZE_SIZE) or not self.maze_layout[int(y), int(x)]:
            raise PoseOutsideMapError(f"pose {[x, y, yaw]} is outside the free cells of the {MAZE_SIZE}x{MAZE_SIZE} maze")
        return x, y, yaw

    def render_at(self, pose: np.ndarray, border: bool = True) -> np.ndarray:
        """The view from ``pose`` with the current target's border (``border=False``: the raw camera image)."""
        if self._dm is None:
            raise RuntimeError("call reset() before render_at()")
        x, y, yaw = self.check_pose(pose)
        ph = self.physics
        d = ph.data
        saved = {k: getattr(d, k).copy() for k in ("qpos", "qvel", "act", "qacc_warmstart", "ctrl")}
        saved_time = float(d.time)
        try:
            d.qpos[0] = (x - MAZE_SIZE / 2) * _XY_SCALE
            d.qpos[1] = (y - MAZE_SIZE / 2) * _XY_SCALE
            d.qpos[3] = -yaw
            ph.forward()
            img = np.ascontiguousarray(ph.render(height=64, width=64, camera_id=_CAMERA), dtype=np.uint8).copy()
        finally:
            for k, v in saved.items():
                getattr(d, k)[:] = v
            d.time = saved_time
            ph.forward()
        if border:
            img = self._border.observation({"image": img, "target_color": self._obs["target_color"]})["image"]
        return img

    def close(self) -> None:
        if self._dm is not None:
            self._dm.close()
            self._dm = None

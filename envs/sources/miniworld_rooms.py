"""MiniWorld source: ``MemoryRooms``, the default scene of memworld.

Why our own scene: revisits are only meaningful when places differ. Stock
FourRooms has four rooms with the same concrete walls and floor, so a wrong memory
looks right. MemoryRooms keeps FourRooms' plan but gives each room its own wall and
floor texture and fixed coloured landmarks, keeping the red box as the goal of the
navigation task. The layout is the same in every episode; only the start pose is
random, so a world model can learn the place and a memory can recall it.
"""

from __future__ import annotations

import math

import numpy as np
import pyglet

# Headless rendering through EGL must be chosen before miniworld imports pyglet.gl.
pyglet.options["headless"] = True

from miniworld.entity import Ball, Box, Key
from miniworld.miniworld import MiniWorldEnv

from envs.sources.base import PoseOutsideMapError, SCENE_BOUNDS, SourceEnv, make_pose

ROOM_TEXTURES = [  # (wall, floor) per room, chosen to differ in colour and frequency
    ("brick_wall", "wood_planks"),
    ("wood", "floor_tiles_bw"),
    ("marble", "asphalt"),
    ("cinder_blocks", "grass"),
]


class MemoryRoomsScene(MiniWorldEnv):
    """Four rooms with distinct textures and landmarks; reach the red box for reward."""

    def __init__(self, max_episode_steps: int = 300, **kwargs):
        super().__init__(max_episode_steps=max_episode_steps, **kwargs)
        from gymnasium import spaces

        self.action_space = spaces.Discrete(self.actions.move_forward + 1)

    def _gen_world(self) -> None:
        extents = [(-7, -1, 1, 7), (1, 7, 1, 7), (1, 7, -7, -1), (-7, -1, -7, -1)]
        rooms = [
            self.add_rect_room(min_x=x0, max_x=x1, min_z=z0, max_z=z1, wall_tex=w, floor_tex=f)
            for (x0, x1, z0, z1), (w, f) in zip(extents, ROOM_TEXTURES)
        ]
        self.connect_rooms(rooms[0], rooms[1], min_z=3, max_z=5, max_y=2.2)
        self.connect_rooms(rooms[1], rooms[2], min_x=3, max_x=5, max_y=2.2)
        self.connect_rooms(rooms[2], rooms[3], min_z=-5, max_z=-3, max_y=2.2)
        self.connect_rooms(rooms[3], rooms[0], min_x=-5, max_x=-3, max_y=2.2)
        landmarks = [
            (Box(color="green", size=0.9), (-5.5, 5.5)),
            (Ball(color="blue", size=0.9), (5.5, 5.5)),
            (Key(color="yellow"), (2.5, 2.0)),
            (Box(color="purple", size=0.7), (-2.0, -5.5)),
            (Ball(color="grey", size=0.8), (-5.5, -2.5)),
        ]
        for ent, (x, z) in landmarks:
            self.place_entity(ent, pos=np.array([x, 0.0, z]), dir=0.0)
        self.box = self.place_entity(Box(color="red", size=0.8), pos=np.array([5.0, 0.0, -5.0]), dir=0.0)
        self.place_agent()

    # Agent state is kept on the float32 grid so that the reported float32 pose
    # re-renders bit-exactly in render_at.
    def move_agent(self, fwd_dist, fwd_drift):
        moved = super().move_agent(fwd_dist, fwd_drift)
        self.agent.pos = self.agent.pos.astype(np.float32).astype(np.float64)
        return moved

    def turn_agent(self, turn_angle):
        turned = super().turn_agent(turn_angle)
        self.agent.dir = float(np.float32(math.remainder(self.agent.dir, 2 * math.pi)))
        return turned

    def place_agent(self, *args, **kwargs):
        ent = super().place_agent(*args, **kwargs)
        self.agent.pos = self.agent.pos.astype(np.float32).astype(np.float64)
        self.agent.dir = float(np.float32(math.remainder(self.agent.dir, 2 * math.pi)))
        return ent

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if self.near(self.box):
            reward += self._reward()
            terminated = True
        return obs, reward, terminated, truncated, info


class MiniWorldSource(SourceEnv):
    """``MemoryRooms`` behind the source contract. Actions: 0 left, 1 right, 2 forward.

    Pose: MiniWorld's ground plane is (x, z) and the agent looks along
    ``(cos dir, -sin dir)``; we report ``[x, z, -dir]`` so that it looks along
    ``(cos yaw, sin yaw)`` as every source does.
    """

    source_name = "miniworld"
    turns_per_circle = 24  # 15-degree turns
    map_bounds = SCENE_BOUNDS["miniworld"]

    def __init__(self, max_episode_steps: int = 300, render_mode: str | None = None):
        self.scene = MemoryRoomsScene(max_episode_steps=max_episode_steps, obs_width=64, obs_height=64)
        super().__init__(n_actions=3, render_mode=render_mode)
        self.max_episode_steps = max_episode_steps

    def pose(self) -> np.ndarray:
        a = self.scene.agent
        return make_pose(float(a.pos[0]), float(a.pos[2]), -float(a.dir))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, _ = self.scene.reset(seed=seed)
        self._last_obs = obs
        return obs, {"pose": self.pose()}

    def step(self, action):
        a = self.check_action(action)
        obs, reward, terminated, truncated, _ = self.scene.step(a)
        self._last_obs = obs
        return obs, float(reward), bool(terminated), bool(truncated), {"pose": self.pose()}

    def render_at(self, pose: np.ndarray) -> np.ndarray:
        return self._at(pose, self.scene.render_obs)

    def depth_at(self, pose: np.ndarray) -> np.ndarray:
        # MiniWorld's depth buffer, linearised: distance along the optical axis
        return self._at(pose, lambda: self.scene.render_depth()[..., 0].astype(np.float32))

    def _at(self, pose: np.ndarray, render):
        x, y, yaw = (float(v) for v in np.asarray(pose, dtype=np.float64).reshape(3))
        s = self.scene
        p = np.array([x, 0.0, y])
        if not all(math.isfinite(v) for v in (x, y, yaw)) or not any(r.point_inside(p) for r in s.rooms):
            raise PoseOutsideMapError(f"pose {[x, y, yaw]} is outside the MemoryRooms map")
        saved_pos, saved_dir = s.agent.pos.copy(), s.agent.dir
        try:
            s.agent.pos, s.agent.dir = p, -yaw
            return render()
        finally:
            s.agent.pos, s.agent.dir = saved_pos, saved_dir

    def close(self) -> None:
        self.scene.close()
